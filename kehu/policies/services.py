"""Writing policies: loading a document as a new version, activating a version from a month on, and
manual overrides (request, approve or refuse, revoke). The monthly close itself is in ``close.py``."""

from __future__ import annotations

import hashlib
from datetime import date

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.audit.services import audit_record, snapshot
from kehu.core.errors import NotAllowed, ServiceError, require
from kehu.policies.language import policy_parse
from kehu.policies.models import Override, OverrideStatus, Policy, PolicyActivation

LEVEL_DEPTHS = {"province": 0, "city": 1, "county": 2, "station": 3}


def parse_month(text: str, *, field: str = "month") -> date:
    """``YYYY-MM`` → the month's first day, or a ServiceError saying what is wrong."""
    value = (text or "").strip()
    try:
        year, month = value.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError
        return date(int(year), int(month), 1)
    except ValueError:
        raise ServiceError(
            _("“%(v)s” is not a month: write YYYY-MM, e.g. 2026-10.") % {"v": value}, field=field
        ) from None


def policy_load(*, acting_user, text: str, comment: str = "") -> tuple[Policy, bool]:
    """Store ``text`` as the next version of the policy it names: (policy, created).

    The document is validated first (every problem reported, nothing stored). Loading the same text as
    the latest version again changes nothing and answers that version.
    """
    if acting_user is not None:  # None: the installation itself (kehu setup on the server console)
        require(acting_user, Capability.MANAGE_POLICIES, _("You may not load policies."))
    parsed = policy_parse(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    for _attempt in range(3):
        try:
            with transaction.atomic():
                latest = Policy.objects.filter(name=parsed.name).order_by("-version").first()
                if latest is not None and latest.sha256 == digest:
                    return latest, False
                version = (Policy.objects.filter(name=parsed.name).aggregate(v=Max("version"))["v"] or 0) + 1
                policy = Policy.objects.create(
                    name=parsed.name, version=version, title=parsed.title[:200], document=text, sha256=digest,
                    comment=comment, created_by=acting_user,
                )  # fmt: skip
                audit_record(actor=acting_user, actor_username="" if acting_user else "kehu setup",
                             action="policy.load", obj=policy,
                             extra={"name": policy.name, "version": version, "sha256": digest, "comment": comment})  # fmt: skip
                return policy, True
        except IntegrityError:  # another load took this version number at the same moment: take the next
            continue
    raise ServiceError(_("Could not store the policy; try again."))


def policy_activate(
    *, acting_user, name: str, version: int, valid_from: date, comment: str = ""
) -> PolicyActivation:
    """From ``valid_from`` on, closes use this version (until a later activation)."""
    if acting_user is not None:  # None: the installation itself (kehu setup on the server console)
        require(acting_user, Capability.MANAGE_POLICIES, _("You may not activate policies."))
    policy = Policy.objects.filter(name=name, version=version).first()
    if policy is None:
        raise ServiceError(
            _("There is no policy %(n)s version %(v)s.") % {"n": name, "v": version}, field="version"
        )
    valid_from = valid_from.replace(day=1)
    with transaction.atomic():
        activation = PolicyActivation.objects.select_for_update().filter(valid_from=valid_from).first()
        if activation is None:
            activation = PolicyActivation.objects.create(
                policy=policy, valid_from=valid_from, comment=comment, activated_by=acting_user
            )
            changes = None
        elif activation.policy_id == policy.pk:
            return activation  # already so: nothing changes, nothing to audit
        else:
            before = snapshot(activation, ["policy", "comment"])
            activation.policy, activation.comment = policy, comment
            activation.activated_by, activation.activated_at = acting_user, timezone.now()
            activation.save()
            changes = {"before": before, "after": snapshot(activation, ["policy", "comment"])}
        audit_record(actor=acting_user, actor_username="" if acting_user else "kehu setup",
                     action="policy.activate", obj=activation, changes=changes,
                     extra={"policy": str(policy), "valid_from": f"{valid_from:%Y-%m}"})  # fmt: skip
    return activation


# ---------------------------------------------------------------------------------------------------
# Overrides


def _override_values(output) -> list[str] | None:
    """The values an override of ``output`` may force ("" = not applicable); None: any number."""
    if output.type == "choice":
        return [*output.values, ""]
    if output.type == "boolean":
        return ["true", "false", ""]
    return None


def override_request(*, acting_user, customer, output: str, value: str, reason: str) -> Override:
    """Ask for ``output`` of ``customer`` to be ``value`` from the next close on; someone else approves.

    The policy in force names the outputs and values; it may say which unit level must approve
    (``overrides: {grade: province}``), otherwise the top level (province) approves.
    """
    from kehu.customers.models import Customer
    from kehu.policies.selectors import policy_in_force

    require(acting_user, Capability.REQUEST_OVERRIDE, _("You may not request overrides."))
    if not Customer.objects.visible_to(acting_user).filter(pk=customer.pk).exists():
        raise ServiceError(_("No such customer within your scope."), field="customer")
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError(_("Give the reason for the override."), field="reason")
    policy_row = policy_in_force(month=timezone.localdate().replace(day=1))
    if policy_row is None:
        raise ServiceError(_("No policy is active: there is nothing to override."), field="output")
    parsed = policy_parse(policy_row.document)
    outputs = {o.name: o for o in parsed.outputs}
    if output not in outputs:
        raise ServiceError(
            _("The policy has no output “%(o)s”; it has %(all)s.") % {"o": output, "all": ", ".join(outputs)},
            field="output",
        )
    value = (value or "").strip()
    allowed = _override_values(outputs[output])
    if allowed is not None and value not in allowed:
        raise ServiceError(
            _("“%(v)s” is not a value of %(o)s; choose one of %(all)s.")
            % {"v": value, "o": output, "all": ", ".join(a or '""' for a in allowed)},
            field="value",
        )
    depth = LEVEL_DEPTHS["province"]  # "approval from the top" (domain.md §5)
    try:
        with transaction.atomic():
            override = Override.objects.create(
                customer=customer, output=output, value=value, reason=reason, approval_depth=depth,
                requested_by=acting_user,
            )  # fmt: skip
            audit_record(actor=acting_user, action="override.request", obj=override,
                         extra={"customer": customer.code, "output": output, "value": value, "reason": reason})  # fmt: skip
    except IntegrityError:
        raise ServiceError(
            _(
                "%(o)s of this customer already has an override awaiting approval or in force; revoke it first."
            )
            % {"o": output},
            field="output",
        ) from None
    return override


def _locked_override(override: Override) -> Override:
    return Override.objects.select_for_update().select_related("customer").get(pk=override.pk)


def override_decide(*, acting_user, override: Override, approve: bool, note: str = "") -> Override:
    """Approve or refuse a pending override: by someone other than the requester, whose unit is at the
    required level or above and who can see the customer."""
    from kehu.customers.models import Customer

    require(acting_user, Capability.APPROVE_OVERRIDE, _("You may not approve overrides."))
    with transaction.atomic():
        override = _locked_override(override)
        if not Customer.objects.visible_to(acting_user).filter(pk=override.customer_id).exists():
            raise ServiceError(_("No such override within your scope."))
        if override.status != OverrideStatus.PENDING:
            raise ServiceError(_("This override is not awaiting a decision (it is %(s)s).")
                               % {"s": override.get_status_display()})  # fmt: skip
        if override.requested_by_id == acting_user.pk:
            raise NotAllowed(_("Someone other than the requester must decide on an override."))
        unit = acting_user.unit
        if approve and (unit is None or unit.depth > override.approval_depth):
            level = {v: k for k, v in LEVEL_DEPTHS.items()}.get(
                override.approval_depth, str(override.approval_depth)
            )
            raise NotAllowed(
                _("This override needs approval at %(level)s level or above.") % {"level": _(level)}
            )
        before = snapshot(override, ["status"])
        override.status = OverrideStatus.APPROVED if approve else OverrideStatus.REFUSED
        override.decided_by, override.decided_at, override.decision_note = (
            acting_user,
            timezone.now(),
            note.strip(),
        )
        override.save()
        audit_record(actor=acting_user, action="override.approve" if approve else "override.refuse", obj=override,
                     changes={"before": before, "after": snapshot(override, ["status"])},
                     extra={"customer": override.customer.code, "note": note})  # fmt: skip
    return override


def override_revoke(*, acting_user, override: Override, reason: str = "") -> Override:
    """End an override (pending or in force): the next close computes the output by the rules again."""
    from kehu.customers.models import Customer

    if not (acting_user.can(Capability.APPROVE_OVERRIDE) or override.requested_by_id == acting_user.pk):
        raise NotAllowed(_("You may not revoke this override."))
    with transaction.atomic():
        override = _locked_override(override)
        if not Customer.objects.visible_to(acting_user).filter(pk=override.customer_id).exists():
            raise ServiceError(_("No such override within your scope."))
        if override.status not in (OverrideStatus.PENDING, OverrideStatus.APPROVED):
            raise ServiceError(_("This override has already ended."))
        before = snapshot(override, ["status"])
        override.status = OverrideStatus.REVOKED
        override.revoked_by, override.revoked_at = acting_user, timezone.now()
        override.save()
        audit_record(actor=acting_user, action="override.revoke", obj=override,
                     changes={"before": before, "after": snapshot(override, ["status"])},
                     extra={"customer": override.customer.code, "reason": reason})  # fmt: skip
    return override
