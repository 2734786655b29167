"""The policy packs shipped with Kehu (one per industry) and setting a deployment up with one."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from django.db import transaction
from django.utils.translation import gettext as _

from kehu.core.errors import ServiceError

PACK_DIR = Path(__file__).resolve().parent / "packs"
PACKS = ("fuel-retail", "postal-key-accounts", "tobacco-retail")
DEFAULT_PACK = "fuel-retail"
# "Active from the start": the pack's policy applies to every month a deployment can close.
FROM_THE_START = date(2000, 1, 1)


def pack_text(name: str) -> str:
    if name not in PACKS:
        raise ServiceError(_("Unknown pack “%(p)s”; the packs are %(all)s.") % {"p": name, "all": ", ".join(PACKS)},
                           field="pack")  # fmt: skip
    return (PACK_DIR / f"{name}.yaml").read_text(encoding="utf-8")


def pack_install(*, acting_user, name: str) -> dict:
    """The pack's product catalogue and its policy, active from the start: idempotent."""
    from kehu.metrics.catalogues import CATALOGUES
    from kehu.metrics.services import products_load
    from kehu.policies.services import policy_activate, policy_load

    text = pack_text(name)
    with transaction.atomic():
        products = products_load(acting_user=acting_user, products=CATALOGUES[name])
        policy, created = policy_load(
            acting_user=acting_user, text=text, comment=_("pack %(p)s") % {"p": name}
        )
        policy_activate(acting_user=acting_user, name=policy.name, version=policy.version, valid_from=FROM_THE_START,
                        comment=_("pack %(p)s") % {"p": name})  # fmt: skip
    return {"pack": name, "policy": str(policy), "policy_created": created, "products": products}
