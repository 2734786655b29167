"""The product catalogue and the sales facts the monthly close reads.

* ``Product`` — what a deployment sells (fuel-retail: gasoline, diesel, card); loaded from a pack.
* ``SalesFact`` — one row per (source, customer, month, product): exact integer quantity (× 1000) and
  amount (fen), the number of transactions and, for facts built from transactions, the first and last
  day with a purchase (the refuelling cycle of the tracking tables).
* ``FactBatch`` — one import run, with its counts (the audit event repeats them).
* ``FactMonth`` — per month: a version bumped whenever a fact of the month changes, and the Parquet
  snapshot of all the month's facts that the close reads (``storage.py``).
* ``TransactionLedger`` — per (source, month): the Parquet file of the transaction ids already counted,
  which makes a transactions import idempotent.

The design is recorded in docs/decisions/0007-sales-facts-storage.md.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kehu.core.scoping import ScopedQuerySet
from kehu.customers.models import CUSTOMER_CHILD_SCOPE

MAX_QUANTITY_DECIMALS = 3  # quantities are stored × 1000


class Product(models.Model):
    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    unit = models.CharField(_("unit"), max_length=16, help_text=_("Display unit of the quantity: t, ¥, 条…"))
    group = models.CharField(_("group"), max_length=32, blank=True)
    quantity_decimals = models.PositiveSmallIntegerField(_("quantity decimals"), default=3)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("product")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity_decimals__lte=MAX_QUANTITY_DECIMALS), name="product_decimals_max3"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class BatchKind(models.TextChoices):
    TRANSACTIONS = "transactions", _("Transactions")
    MONTHLY_FACTS = "monthly_facts", _("Monthly facts")


class FactBatch(models.Model):
    """One import run: what file, what it touched, what it counted."""

    kind = models.CharField(_("kind"), max_length=16, choices=BatchKind.choices)
    source = models.CharField(_("source"), max_length=32)
    file_name = models.CharField(_("file"), max_length=255)
    sha256 = models.CharField(max_length=64)
    months = models.JSONField(_("months"), default=list)  # ["2026-10", …]
    rows_read = models.PositiveBigIntegerField(default=0)
    rows_new = models.PositiveBigIntegerField(default=0)
    rows_duplicate = models.PositiveBigIntegerField(default=0)
    facts_written = models.PositiveBigIntegerField(default=0)
    facts_unchanged = models.PositiveBigIntegerField(default=0)
    facts_deleted = models.PositiveBigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True,
                                   related_name="+")  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("sales import")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.source} {self.file_name}"


class SalesFact(models.Model):
    source = models.CharField(_("source"), max_length=32)
    # The foreign keys are checked by the imports (customers in scope, the catalogue, the run) and by
    # Django's PROTECT on delete, not by database constraints: a month's import writes millions of rows,
    # and a constraint check per row and key was a fifth of the write on PostgreSQL. No separate indexes
    # either: the unique key starts with the customer (it serves a customer's lookups), and products and
    # batches are deleted rarely enough to scan for.
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="sales_facts",
                                 db_index=False, db_constraint=False)  # fmt: skip
    month = models.DateField(_("month"))  # the 1st of the month
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="facts", db_index=False,
                                db_constraint=False)  # fmt: skip
    quantity_milli = models.BigIntegerField(default=0)  # quantity × 1000, exact
    amount_fen = models.BigIntegerField(default=0)  # yuan × 100, exact
    txn_count = models.PositiveIntegerField(default=0)
    first_date = models.DateField(null=True, blank=True)
    last_date = models.DateField(null=True, blank=True)
    batch = models.ForeignKey(FactBatch, on_delete=models.PROTECT, related_name="facts", db_index=False,
                              db_constraint=False)  # fmt: skip

    objects = ScopedQuerySet.as_manager()
    scope_policy = CUSTOMER_CHILD_SCOPE

    class Meta:
        verbose_name = _("sales fact")
        constraints = [
            models.UniqueConstraint(fields=["customer", "source", "month", "product"], name="sales_fact_key"),
        ]
        indexes = [models.Index(fields=["month"], name="sales_fact_month")]

    def __str__(self) -> str:
        return f"{self.source} {self.customer_id} {self.month:%Y-%m} {self.product_id}"


class FactMonth(models.Model):
    """A month's facts as a whole: their version and the Parquet snapshot the close reads."""

    month = models.DateField(unique=True)
    version = models.PositiveIntegerField(default=0)  # bumped whenever any fact of the month changes
    snapshot_file = models.CharField(max_length=200, blank=True)
    snapshot_version = models.PositiveIntegerField(default=0)  # the version the snapshot was written at
    rows = models.PositiveBigIntegerField(default=0)
    quantity_milli = models.BigIntegerField(default=0)
    amount_fen = models.BigIntegerField(default=0)
    txn_count = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("sales month")
        ordering = ["month"]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} v{self.version}"


class TransactionLedger(models.Model):
    """The transactions already counted for one source and month (ids and content hashes, in Parquet)."""

    source = models.CharField(max_length=32)
    month = models.DateField()
    file_name = models.CharField(max_length=200)
    rows = models.PositiveBigIntegerField(default=0)
    version = models.PositiveIntegerField(default=0)
    hash_scheme = models.CharField(max_length=64, blank=True)  # how the file's id_hash column was made

    class Meta:
        verbose_name = _("transaction ledger")
        constraints = [models.UniqueConstraint(fields=["source", "month"], name="txn_ledger_key")]

    def __str__(self) -> str:
        return f"{self.source} {self.month:%Y-%m} ({self.rows})"
