"""Customers, their contacts and agreements, and the counters that hand out customer ids."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kehu.core.crypto import EncryptedTextField
from kehu.core.scoping import ScopedQuerySet, ScopePolicy


class CustomerKind(models.TextChoices):
    INSTITUTION = "institution", _("Institution (机构)")
    INDIVIDUAL = "individual", _("Individual (个人)")


class CustomerStatus(models.TextChoices):
    PROSPECT = "prospect", _("Prospect")
    REGISTERED = "registered", _("Registered")
    ACTIVE = "active", _("Active")
    DORMANT = "dormant", _("Dormant")
    LOST = "lost", _("Lost")


class PaymentProfile(models.TextChoices):
    FUEL_CARD = "fuel_card", _("Fuel card")
    BANK_CARD = "bank_card", _("Bank card")
    CASH = "cash", _("Cash")


class CustomerSubType(models.Model):
    """The deployment's vocabulary of customer sub-types (private car, taxi, freight fixed-route…)."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=50)
    kind = models.CharField(_("kind"), max_length=16, choices=CustomerKind.choices, blank=True)

    class Meta:
        verbose_name = _("customer sub-type")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class DivisionSequence(models.Model):
    """The last customer sequence handed out in a division. Only ever grows: codes are never reused."""

    division_code = models.CharField(max_length=6, primary_key=True)
    last_sequence = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("customer sequence of a division")

    def __str__(self) -> str:
        return f"{self.division_code}: {self.last_sequence}"


class RetiredCustomerCode(models.Model):
    """The code of a customer that was deleted (merged into another): never handed out again.

    The counters stop new codes from reusing it; this stops a *given* code (an import of an existing
    archive, which may lie below the counters) from taking it.
    """

    code = models.CharField(max_length=14, primary_key=True)
    retired_at = models.DateTimeField(default=timezone.now)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = _("retired customer code")

    def __str__(self) -> str:
        return self.code


class CustomerQuerySet(ScopedQuerySet):
    pass


class Customer(models.Model):
    code = models.CharField(_("customer code"), max_length=14, unique=True)
    name = models.CharField(_("name"), max_length=200)
    short_name = models.CharField(_("short name"), max_length=100, blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=CustomerKind.choices)
    sub_type = models.ForeignKey(CustomerSubType, verbose_name=_("sub-type"), on_delete=models.PROTECT,
                                 null=True, blank=True, related_name="customers")  # fmt: skip
    credit_code = models.CharField(_("unified social credit code"), max_length=18, blank=True)
    legal_representative = models.CharField(_("legal representative or owner"), max_length=100, blank=True)
    # The representative's or the individual's ID card number: encrypted at rest, searchable by blind index.
    id_number = EncryptedTextField(_("ID card number"), blank=True, purpose="customers.customer.id_number")
    id_number_index = models.CharField(max_length=32, blank=True, db_index=True, editable=False)
    address = models.CharField(_("address"), max_length=300, blank=True)
    division_code = models.CharField(_("division code"), max_length=6)
    latitude = models.DecimalField(_("latitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(_("longitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    payment_profile = models.CharField(
        _("payment"), max_length=16, choices=PaymentProfile.choices, blank=True
    )
    business_scope = models.TextField(_("business scope"), blank=True)
    floor_area = models.DecimalField(
        _("floor area (m²)"), max_digits=10, decimal_places=2, null=True, blank=True
    )
    parent = models.ForeignKey("self", verbose_name=_("head office"), on_delete=models.PROTECT, null=True,
                               blank=True, related_name="branches")  # fmt: skip
    last_branch = models.PositiveSmallIntegerField(default=0, editable=False)
    status = models.CharField(_("status"), max_length=16, choices=CustomerStatus.choices,
                              default=CustomerStatus.PROSPECT)  # fmt: skip
    owning_unit = models.ForeignKey("org.Unit", verbose_name=_("owning unit"), on_delete=models.PROTECT,
                                    related_name="customers")  # fmt: skip
    # Indexed by customer_path_status_kind, which also answers counts by status and kind in a subtree.
    unit_path = models.CharField(max_length=240, editable=False)
    lead_manager = models.ForeignKey("accounts.User", verbose_name=_("lead manager (A)"), on_delete=models.PROTECT,
                                     null=True, blank=True, related_name="customers_led")  # fmt: skip
    backup_manager = models.ForeignKey("accounts.User", verbose_name=_("backup manager (B)"),
                                       on_delete=models.PROTECT, null=True, blank=True,
                                       related_name="customers_backed")  # fmt: skip
    tags = models.JSONField(_("tags"), default=list, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    # The outputs of the latest monthly close (size, level, grade…) and the unit level it makes responsible:
    # written by kehu.policies.close for the customers whose values changed; history in CloseResult.
    standing = models.JSONField(_("classification"), default=dict, blank=True, editable=False)
    standing_month = models.DateField(_("classified for"), null=True, blank=True, editable=False)
    responsible_level = models.CharField(_("responsible level"), max_length=16, blank=True, editable=False)
    # The name reduced for duplicate checks (width, spaces, brackets, legal-form suffixes): see duplicates.py.
    name_key = models.CharField(max_length=200, db_index=True, editable=False, default="")
    # Space-separated search tokens (bigrams, pinyin, initials, tags) kept by the services: see search.py.
    search_tokens = models.TextField(editable=False, default="")
    created_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    updated_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    objects = CustomerQuerySet.as_manager()
    audit_exclude = ("name_key", "search_tokens", "standing", "standing_month", "responsible_level")

    scope_policy = ScopePolicy(
        unit="owning_unit", unit_path="unit_path", owners=("lead_manager", "backup_manager")
    )

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(
                fields=["credit_code"], condition=~Q(credit_code=""), name="customer_credit_code_unique"
            ),  # fmt: skip
            # Digits are checked by the services; the length here holds for any database client.
            models.CheckConstraint(condition=Exact(Length("code"), 14), name="customer_code_14_characters"),
        ]
        indexes = [
            models.Index(fields=["owning_unit", "status"], name="customer_unit_status"),
            models.Index(fields=["lead_manager"], name="customer_lead"),
            models.Index(fields=["backup_manager"], name="customer_backup"),
            models.Index(fields=["name", "id"], name="customer_name"),
            models.Index(fields=["-updated_at", "id"], name="customer_updated"),
            models.Index(fields=["unit_path", "status", "kind"], name="customer_path_status_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


# Contacts, agreements and phones are seen by whoever sees their customer, through its path copy.
CUSTOMER_CHILD_SCOPE = ScopePolicy(
    unit="customer__owning_unit",
    unit_path="customer__unit_path",
    owners=("customer__lead_manager", "customer__backup_manager"),
)


class DecisionRole(models.TextChoices):
    DECISION_MAKER = "decision_maker", _("Decision maker")
    INFLUENCER = "influencer", _("Influencer")
    USER = "user", _("User")
    PAYER = "payer", _("Payer")


class Contact(models.Model):
    """A person at the customer: who decides, their relations, preferences and important dates."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(_("name"), max_length=100)
    title = models.CharField(_("title"), max_length=100, blank=True)
    decision_role = models.CharField(_("role in decisions"), max_length=16, choices=DecisionRole.choices,
                                     blank=True)  # fmt: skip
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    important_dates = models.JSONField(_("important dates"), default=list, blank=True)
    preferences = models.TextField(_("preferences"), blank=True)
    relations = models.TextField(_("relations"), blank=True)
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    scope_policy = CUSTOMER_CHILD_SCOPE

    class Meta:
        verbose_name = _("contact")
        ordering = ["customer", "name"]

    def __str__(self) -> str:
        return self.name


class SigningLevel(models.TextChoices):
    PROVINCE = "province", _("Province")
    CITY = "city", _("City")
    COUNTY = "county", _("County")
    STATION = "station", _("Station")


class AgreementStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ACTIVE = "active", _("In force")
    ENDED = "ended", _("Ended")
    TERMINATED = "terminated", _("Terminated")


class Agreement(models.Model):
    """A supply or framework agreement; later rules ask "has an agreement signed at level X"."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="agreements")
    number = models.CharField(_("number"), max_length=64)
    agreement_type = models.CharField(_("type"), max_length=32, default="supply")
    signing_unit = models.ForeignKey("org.Unit", verbose_name=_("signing unit"), on_delete=models.PROTECT,
                                     null=True, blank=True, related_name="+")  # fmt: skip
    signing_level = models.CharField(_("signing level"), max_length=16, choices=SigningLevel.choices)
    parties = models.TextField(_("parties"), blank=True)
    start_date = models.DateField(_("start date"))
    end_date = models.DateField(_("end date"), null=True, blank=True, help_text=_("empty: open-ended"))
    status = models.CharField(_("status"), max_length=16, choices=AgreementStatus.choices,
                              default=AgreementStatus.ACTIVE)  # fmt: skip
    attachment = models.FileField(_("attachment"), upload_to="agreements/%Y/%m/", blank=True, max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    scope_policy = CUSTOMER_CHILD_SCOPE

    class Meta:
        verbose_name = _("agreement")
        ordering = ["customer", "-start_date"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "number"], name="agreement_number_per_customer"),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="agreement_ends_after_start",
            ),  # fmt: skip
        ]

    def __str__(self) -> str:
        return self.number


class CustomerPhone(models.Model):
    """A phone number of a customer (or of one of its contacts): encrypted, found by its blind index."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="phones")
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, null=True, blank=True, related_name="phones"
    )
    label = models.CharField(_("label"), max_length=32, blank=True)
    number = EncryptedTextField(_("phone"), purpose="customers.customerphone.number")
    # One number, one customer (a second customer with it is a collision): unique across the archive.
    number_index = models.CharField(max_length=32, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    scope_policy = CUSTOMER_CHILD_SCOPE

    class Meta:
        verbose_name = _("phone")

    def __str__(self) -> str:
        from kehu.core.crypto import mask_phone

        return mask_phone(self.number)


class CustomerPhoto(models.Model):
    """A photo of the customer's premises (门头, 场地): the archive's image information."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="photos")
    image = models.ImageField(_("photo"), upload_to="customers/photos/%Y/%m/", max_length=200)
    caption = models.CharField(_("caption"), max_length=200, blank=True)
    uploaded_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    scope_policy = CUSTOMER_CHILD_SCOPE

    class Meta:
        verbose_name = _("photo")
        ordering = ["customer", "-created_at"]

    def __str__(self) -> str:
        return self.caption or self.image.name
