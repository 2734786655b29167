"""Realistic monthly sales for the demo customers, per industry pack (``kehu demo --pack NAME``).

Seeded, vectorised (numpy + Polars): each customer gets a size drawn from a long-tailed distribution
(institutions larger than individuals, a few very large accounts), the products its kind uses, a
seasonal pattern, a trend (growing, steady, declining) and for a few a collapse in the last months
(churn). The months end with the month before today, so the demo's close shows history, upgrades,
downgrades and churn. The file goes through the real monthly-facts import, as an analyst's would.
"""

from __future__ import annotations

import math
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

DEMO_MONTHS = 24
SEED = 20261

# Per pack and product: (share of institutions using it, share of individuals using it,
# median monthly quantity for an institution / an individual, price per unit in yuan or None when the
# quantity is money, quantity decimals).
PROFILES: dict[str, dict[str, tuple[float, float, float, float, float | None, int]]] = {
    "fuel-retail": {
        "gasoline": (0.8, 0.9, 1.2, 0.35, 8800.0, 3),
        "diesel": (0.45, 0.15, 9.0, 3.0, 7900.0, 3),
        "card": (0.35, 0.05, 6000.0, 800.0, None, 2),
    },
    "postal-key-accounts": {
        "savings_remittance": (0.5, 0.6, 900.0, 300.0, None, 2),
        "bills": (0.25, 0.02, 2500.0, 300.0, None, 2),
        "letters": (0.45, 0.1, 700.0, 80.0, None, 2),
        "philately": (0.1, 0.08, 1800.0, 400.0, None, 2),
        "express": (0.6, 0.3, 1500.0, 150.0, None, 2),
        "logistics": (0.2, 0.02, 4500.0, 500.0, None, 2),
        "parcels": (0.35, 0.3, 600.0, 90.0, None, 2),
        "newspapers": (0.3, 0.1, 900.0, 120.0, None, 2),
    },
    "tobacco-retail": {
        "cigarettes": (0.95, 0.95, 160.0, 60.0, 230.0, 0),
    },
}


def demo_months(today: date, months: int = DEMO_MONTHS) -> list[date]:
    """The ``months`` months before today's month, oldest first."""
    index = today.year * 12 + today.month - 1
    return [date((index - k) // 12, (index - k) % 12 + 1, 1) for k in range(months, 0, -1)]


def demo_sales_frame(
    customers: pl.DataFrame, pack: str, months: list[date], *, seed: int = SEED
) -> pl.DataFrame:
    """``customers``: ``customer_code``, ``kind``. Answers monthly facts as the import reads them:
    ``customer_code, month, product, quantity, amount, txn_count`` (text, exact decimals)."""
    profile = PROFILES[pack]
    rng = np.random.default_rng(seed)
    n, m = customers.height, len(months)
    institution = (customers["kind"] == "institution").to_numpy()
    # A customer's own scale: log-normal with a long tail (a few key accounts 20-50× the median).
    scale = np.exp(rng.normal(0.0, 0.9, n)) * np.where(rng.random(n) < 0.03, rng.uniform(8, 40, n), 1.0)
    trend = rng.choice([-0.03, 0.0, 0.0, 0.02, 0.04], n)  # monthly growth
    churn_from = np.where(rng.random(n) < 0.06, rng.integers(m - 4, m, n), m + 1)
    month_index = np.arange(m)
    season = 1 + 0.12 * np.sin((np.array([d.month for d in months]) - 3) / 12 * 2 * math.pi)
    parts = []
    for product, (inst_share, indiv_share, inst_median, indiv_median, price, decimals) in profile.items():
        uses = rng.random(n) < np.where(institution, inst_share, indiv_share)
        median = np.where(institution, inst_median, indiv_median)
        base = median * scale  # per customer
        level = base[:, None] * season[None, :] * (1 + trend[:, None]) ** month_index[None, :]
        noise = np.exp(rng.normal(0, 0.25, (n, m)))
        churned = month_index[None, :] >= churn_from[:, None]
        quantity = level * noise * np.where(churned, 0.15, 1.0)
        active = uses[:, None] & (rng.random((n, m)) < 0.93)  # a month without purchases now and then
        quantity = np.round(np.where(active, quantity, 0.0), decimals)
        amount = np.round(quantity * price, 2) if price is not None else quantity
        txns = np.maximum(1, np.round(quantity / (median[:, None] / 12 + 1e-9))).astype(np.int64)
        rows, cols = np.nonzero(quantity > 0)
        parts.append(
            pl.DataFrame(
                {
                    "customer_code": customers["customer_code"].gather(rows),
                    "month": [f"{months[c]:%Y-%m}" for c in cols],
                    "product": product,
                    "quantity": [f"{q:.{decimals}f}" for q in quantity[rows, cols]],
                    "amount": [f"{a:.2f}" for a in amount[rows, cols]],
                    "txn_count": txns[rows, cols],
                }
            )
        )
    return pl.concat(parts) if parts else pl.DataFrame()


def demo_sales_load(*, acting_user, pack: str, today: date, stdout=None) -> dict:
    """Import the demo's monthly sales for every customer (through the real import) and close each month."""
    from kehu.customers.models import Customer
    from kehu.metrics.imports import monthly_facts_import
    from kehu.metrics.models import SalesFact
    from kehu.policies.close import close_run

    months = demo_months(today)
    loaded = set(
        SalesFact.objects.filter(source="demo", month=months[-1])
        .values_list("product__code", flat=True)
        .distinct()
    )
    if loaded == set(
        PROFILES[pack]
    ):  # this pack's demo sales are there already: running again changes nothing
        return {"facts": 0, "months": len(months), "closed": 0}
    rows = list(Customer.objects.order_by("code").values_list("code", "kind"))
    customers = pl.DataFrame(rows, schema={"customer_code": pl.Utf8, "kind": pl.Utf8}, orient="row")
    frame = demo_sales_frame(customers, pack, months)
    # Through the real import, as an analyst's file would go (checked, audited, snapshots kept).
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"demo-{pack}.csv"
        frame.write_csv(path)
        result = monthly_facts_import(acting_user=acting_user, path=path, filename=path.name, source="demo")
    if result.errors:
        raise RuntimeError(f"demo sales refused: {result.errors[:3]}")
    closed = 0
    for month in months:
        close_run(acting_user=acting_user, month=month)
        closed += 1
        if stdout is not None:
            stdout.write(f"  close {month:%Y-%m}")
    return {"facts": frame.height, "months": len(months), "closed": closed}
