"""Versioned policy documents, the months they apply from, the monthly close and its results.

A ``Policy`` is one version of a YAML document (see docs/policy-language.md); versions are never edited,
a change is a new version. A ``PolicyActivation`` says which version applies from which month on. A
``CloseRun`` evaluates the policy that applies to a month for every customer (``kehu close``); each
customer gets one ``CloseResult`` per month, and each change of an output against the previous month
is a ``CloseChange``. An ``Override`` forces an output's value for one customer once a second person
of the required level approved it, until it is revoked.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kehu.core.scoping import ScopedQuerySet, ScopePolicy
from kehu.customers.models import CUSTOMER_CHILD_SCOPE

# Policy documents are the deployment's published rules: everyone signed in may read them.
# (An empty Q() would vanish when OR-ed with the scope's "nothing": every row matches pk IS NOT NULL.)
EVERYONE = ScopePolicy(extra=lambda user: Q(pk__isnull=False))


class Policy(models.Model):
    name = models.SlugField(_("name"), max_length=64)
    version = models.PositiveIntegerField(_("version"))
    title = models.CharField(_("title"), max_length=200, blank=True)
    document = models.TextField(_("document"))
    sha256 = models.CharField(max_length=64, editable=False)
    comment = models.TextField(_("comment"), blank=True)
    # Empty for the versions ``kehu setup`` installs before any account exists.
    created_by = models.ForeignKey(
        "accounts.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    scope_policy = EVERYONE

    class Meta:
        verbose_name = _("policy")
        verbose_name_plural = _("policies")
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="policy_name_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class PolicyActivation(models.Model):
    """From ``valid_from`` (a month) on, ``policy`` decides the close; the latest earlier one before that."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="activations")
    valid_from = models.DateField(_("valid from"))
    comment = models.TextField(_("comment"), blank=True)
    activated_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="+")  # fmt: skip
    activated_at = models.DateTimeField(_("activated at"), default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    scope_policy = EVERYONE

    class Meta:
        verbose_name = _("policy activation")
        ordering = ["-valid_from"]
        constraints = [models.UniqueConstraint(fields=["valid_from"], name="policy_activation_month")]

    def __str__(self) -> str:
        return f"{self.policy} from {self.valid_from:%Y-%m}"


class CloseStatus(models.TextChoices):
    RUNNING = "running", _("running")
    SUCCEEDED = "succeeded", _("done")
    FAILED = "failed", _("failed")


class CloseRun(models.Model):
    month = models.DateField(_("month"))
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="+")
    unit = models.ForeignKey("org.Unit", verbose_name=_("unit"), on_delete=models.PROTECT, null=True, blank=True,
                             related_name="+", help_text=_("empty: every customer"))  # fmt: skip
    status = models.CharField(
        _("status"), max_length=16, choices=CloseStatus.choices, default=CloseStatus.RUNNING
    )
    started_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    job = models.ForeignKey("jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    customers = models.PositiveIntegerField(_("customers"), default=0)
    changes = models.PositiveIntegerField(_("changes"), default=0)
    summary = models.JSONField(_("summary"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)

    objects = ScopedQuerySet.as_manager()
    # A run is seen by the people who can see its unit's subtree (a whole-deployment run: by everyone
    # with a close capability, checked by the selectors) and by who started it.
    scope_policy = ScopePolicy(unit="unit", extra=lambda user: Q(started_by=user) | Q(unit__isnull=True))

    class Meta:
        verbose_name = _("monthly close")
        ordering = ["-started_at"]
        constraints = [
            # Two closes of one month never run at once: the second insert fails on this index.
            models.UniqueConstraint(
                fields=["month"], condition=Q(status="running"), name="close_one_running_per_month"
            ),
        ]

    def __str__(self) -> str:
        return f"close {self.month:%Y-%m} #{self.pk} ({self.status})"


class CloseResult(models.Model):
    """One customer's outputs for one month, with the metric values they used and why."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="close_results")
    month = models.DateField(_("month"))
    run = models.ForeignKey(CloseRun, on_delete=models.PROTECT, related_name="+")
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="+")
    outputs = models.JSONField(_("outputs"), default=dict)
    responsible_level = models.CharField(_("responsible level"), max_length=16, blank=True)
    metrics = models.JSONField(_("metric values"), default=dict)
    explanation = models.TextField(_("explanation"), blank=True)

    objects = ScopedQuerySet.as_manager()
    scope_policy = CUSTOMER_CHILD_SCOPE

    class Meta:
        verbose_name = _("close result")
        constraints = [models.UniqueConstraint(fields=["month", "customer"], name="close_result_per_month")]
        indexes = [models.Index(fields=["customer", "month"], name="close_result_customer")]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.month:%Y-%m}"


class ChangeKind(models.TextChoices):
    UPGRADE = "upgrade", _("upgrade")
    DOWNGRADE = "downgrade", _("downgrade")
    NEW = "new", _("new")
    LOST = "lost", _("lost")
    CHANGED = "changed", _("changed")


class CloseChange(models.Model):
    """An output of a customer that differs from the previous month's (choice and yes/no outputs)."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="close_changes")
    month = models.DateField(_("month"))
    output = models.CharField(_("output"), max_length=64)
    before = models.CharField(_("before"), max_length=64, blank=True)
    after = models.CharField(_("after"), max_length=64, blank=True)
    kind = models.CharField(_("change"), max_length=16, choices=ChangeKind.choices)
    run = models.ForeignKey(CloseRun, on_delete=models.PROTECT, related_name="+")

    objects = ScopedQuerySet.as_manager()
    scope_policy = CUSTOMER_CHILD_SCOPE

    class Meta:
        verbose_name = _("close change")
        constraints = [
            models.UniqueConstraint(fields=["month", "customer", "output"], name="close_change_per_output")
        ]
        indexes = [models.Index(fields=["customer", "month"], name="close_change_customer")]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.month:%Y-%m} {self.output}: {self.before} → {self.after}"


class OverrideStatus(models.TextChoices):
    PENDING = "pending", _("awaiting approval")
    APPROVED = "approved", _("in force")
    REFUSED = "refused", _("refused")
    REVOKED = "revoked", _("revoked")


class Override(models.Model):
    """A value forced on one output of one customer ("special customer made diamond"), kept across closes."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="overrides")
    output = models.CharField(_("output"), max_length=64)
    value = models.CharField(_("value"), max_length=64, blank=True)
    reason = models.TextField(_("reason"))
    approval_depth = models.PositiveSmallIntegerField(
        _("approval level"), help_text=_("depth of the unit level that must approve: 0 province, 1 city…")
    )
    status = models.CharField(_("status"), max_length=16, choices=OverrideStatus.choices,
                              default=OverrideStatus.PENDING)  # fmt: skip
    requested_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)
    decided_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")  # fmt: skip
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_note = models.TextField(_("decision note"), blank=True)
    revoked_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")  # fmt: skip
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    objects = ScopedQuerySet.as_manager()
    scope_policy = CUSTOMER_CHILD_SCOPE

    class Meta:
        verbose_name = _("override")
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "output"],
                condition=Q(status__in=["pending", "approved"]),
                name="override_one_open_per_output",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.output}={self.value} ({self.status})"
