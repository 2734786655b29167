"""``kehu gen-data`` sales (a month of transactions as CSV, history facts) and the import job kinds."""

from __future__ import annotations

import io
from datetime import date

import polars as pl
import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from kehu.accounts.models import RoleAssignment, User
from kehu.core.gendata import generate_customers, generate_org
from kehu.customers.models import Customer
from kehu.jobs.models import Job
from kehu.jobs.registry import JOB_KINDS
from kehu.metrics.imports import transactions_import
from kehu.metrics.models import FactMonth, SalesFact
from kehu.metrics.selectors import facts_frame
from kehu.metrics.services import snapshot_from_db
from kehu.org.models import Unit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def facts_dir(settings, tmp_path):
    settings.KEHU_FACTS_DIR = str(tmp_path / "facts")
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def generated():
    generate_org(units=30, people_per_leaf=1, seed=5, prefix="S")
    generate_customers(customers=300, prefix="S", seed=5, phone_share=0, contact_share=0, agreement_share=0,
                       branch_share=0)  # fmt: skip
    root = Unit.objects.filter(code__startswith="S-").order_by("depth", "pk").first()
    analyst = User.objects.create(
        username="s.analyst", full_name="分析", unit=root, must_change_password=False
    )
    RoleAssignment.objects.create(user=analyst, role="analyst", scope="subtree")
    return analyst


def test_gen_data_writes_a_month_of_transactions_and_history(generated, tmp_path):
    path = tmp_path / "txns.csv"
    out = io.StringIO()
    call_command("gen_data", "--units", "0", "--prefix", "S", "--seed", "5", "--transactions", "5000", "--month",
                 "2026-10", "--transactions-file", str(path), "--history-months", "3", stdout=out)  # fmt: skip
    assert "5000 transactions of 2026-10" in out.getvalue()
    frame = pl.read_csv(path, infer_schema=False)
    assert frame.columns == ["txn_id", "customer_code", "date", "product", "quantity", "amount", "unit_code"]
    assert frame.height == 5000 and frame["txn_id"].n_unique() == 5000
    assert set(frame["product"].unique()) == {"gasoline", "diesel", "card"}
    assert frame["date"].str.starts_with("2026-10-").all()
    fuel = frame.filter(pl.col("product") != "card")
    assert fuel["quantity"].str.contains(r"^\d+\.\d{3}$").all()
    assert frame.filter(pl.col("product") == "card")["amount"].str.contains(r"^\d+\.\d{2}$").all()
    # Skewed: the busiest tenth of the customers make far more than a tenth of the transactions.
    per_customer = frame.group_by("customer_code").len().sort("len", descending=True)["len"]
    assert per_customer.head(max(1, per_customer.len() // 10)).sum() > 0.25 * 5000

    history = [date(2026, 7, 1), date(2026, 8, 1), date(2026, 9, 1)]
    assert {m.month for m in FactMonth.objects.all()} == set(history)
    assert SalesFact.objects.filter(source="history").count() > 0
    for month in history:
        assert sorted(facts_frame(months=[month]).collect().rows()) == sorted(
            snapshot_from_db(month).drop("source").rows()
        )

    result = transactions_import(acting_user=generated, path=path)
    assert result.ok, result.errors[:3]
    assert result.new == 5000 and result.months == ["2026-10"]
    expected = fuel.select(
        (pl.col("quantity").str.replace(".", "", literal=True).cast(pl.Int64)).sum()
    ).item()  # fmt: skip
    stored = sum(
        f.quantity_milli for f in SalesFact.objects.filter(source="default").exclude(product__code="card")
    )
    assert stored == expected

    # The same seed writes the same file.
    again = tmp_path / "again.csv"
    call_command("gen_data", "--units", "0", "--prefix", "S", "--seed", "5", "--transactions", "5000", "--month",
                 "2026-10", "--transactions-file", str(again), stdout=io.StringIO())  # fmt: skip
    assert again.read_bytes() == path.read_bytes()


def test_gen_data_sales_options_need_a_month(generated, tmp_path):
    with pytest.raises(CommandError, match="--month"):
        call_command("gen_data", "--units", "0", "--prefix", "S", "--transactions", "10",
                     "--transactions-file", str(tmp_path / "x.csv"), stdout=io.StringIO())  # fmt: skip


def test_transactions_import_job(generated, tmp_path):
    customer_code = Customer.objects.order_by("pk").first().code
    content = (
        f"txn_id,customer_code,date,product,quantity,amount\nJ1,{customer_code},2026-10-02,diesel,1.5,12.00\n"
    )
    from kehu.metrics.catalogues import CATALOGUES
    from kehu.metrics.models import Product

    for item in CATALOGUES["fuel-retail"]:
        Product.objects.create(code=item["code"], name=item["name"], unit=item["unit"], group=item["group"],
                               quantity_decimals=item["scale"])  # fmt: skip
    job = Job.objects.create(kind="transactions_import", created_by=generated, params={"source": "card"},
                             input_name="sales.csv")  # fmt: skip
    job.input_file.save("sales.csv", ContentFile(content.encode()), save=True)
    seen = []
    data = JOB_KINDS["transactions_import"].handler(job, lambda done, total: seen.append((done, total)))
    assert data["ok"] and data["new"] == 1 and data["message"] == ""
    assert seen[-1] == (1, 1)
    assert SalesFact.objects.get().source == "card"
    job.refresh_from_db()
    assert not job.input_file  # imported: the upload is not kept

    bad = Job.objects.create(kind="monthly_facts_import", created_by=generated, input_name="m.csv")
    bad.input_file.save("m.csv", ContentFile(b"customer_code,month,product,quantity,amount\nX,2026-13,diesel,1,1\n"),
                        save=True)  # fmt: skip
    data = JOB_KINDS["monthly_facts_import"].handler(bad, lambda done, total: None)
    assert not data["ok"] and "nothing was changed" in data["message"]
    assert {e["field"] for e in data["errors"]} == {"customer_code", "month"}
