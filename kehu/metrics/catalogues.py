"""The product catalogues of the three industry packs, as data for ``services.products_load``.

``kehu setup --pack NAME`` loads ``CATALOGUES[NAME]``. ``quantity_decimals`` is how many decimals a
quantity may carry in an import: tonnes to the kilogram (3), yuan to the fen (2), whole cartons (0).
Money-only products (the postal lines, the anonymous fuel card) count their quantity in yuan, the same
figure as their amount.
"""

from __future__ import annotations

CATALOGUES: dict[str, list[dict]] = {
    "fuel-retail": [
        {"code": "gasoline", "name": "汽油", "unit": "t", "group": "fuel", "scale": 3},
        {"code": "diesel", "name": "柴油", "unit": "t", "group": "fuel", "scale": 3},
        {"code": "card", "name": "非实名加油卡", "unit": "¥", "group": "card", "scale": 2},
    ],
    "postal-key-accounts": [
        {"code": "savings_remittance", "name": "储蓄汇兑", "unit": "¥", "group": "finance", "scale": 2},
        {"code": "bills", "name": "票据", "unit": "¥", "group": "finance", "scale": 2},
        {"code": "letters", "name": "函件", "unit": "¥", "group": "mail", "scale": 2},
        {"code": "philately", "name": "集邮", "unit": "¥", "group": "mail", "scale": 2},
        {"code": "express", "name": "速递(EMS)", "unit": "¥", "group": "parcels", "scale": 2},
        {"code": "logistics", "name": "物流", "unit": "¥", "group": "parcels", "scale": 2},
        {"code": "parcels", "name": "包裹", "unit": "¥", "group": "parcels", "scale": 2},
        {"code": "newspapers", "name": "报刊", "unit": "¥", "group": "press", "scale": 2},
    ],
    "tobacco-retail": [
        {"code": "cigarettes", "name": "卷烟", "unit": "条", "group": "tobacco", "scale": 0},
    ],
}
