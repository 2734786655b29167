"""The sales import pages: upload → background job → its page with counts, row errors (also as a file),
a dry run imported for real with one click; Parquet accepted; scoping and the capability."""

from __future__ import annotations

import io

import polars as pl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from kehu.customers.services import customer_create
from kehu.jobs.models import Job
from kehu.metrics.catalogues import CATALOGUES
from kehu.metrics.models import SalesFact
from kehu.metrics.services import products_load
from kehu.testing.factories import sign_in

pytestmark = pytest.mark.django_db

TXN_HEADER = "txn_id,customer_code,date,product,quantity,amount,unit_code\n"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def storage(settings, tmp_path):
    settings.KEHU_FACTS_DIR = str(tmp_path / "facts")
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def customers(org, people):
    products_load(acting_user=people.sysadmin, products=CATALOGUES["fuel-retail"])

    def make(unit, name):
        return customer_create(acting_user=people.head_p, name=name, kind="institution", owning_unit=unit,
                               division_code=unit.division_code, duplicate_reason="test")  # fmt: skip

    return make(org.a1, "历下物流有限公司"), make(org.b1, "市南出租车公司")


def upload(client, capture, name: str, content: bytes, **fields):
    with capture(execute=True):
        response = client.post("/sales/import/", {"file": SimpleUploadedFile(name, content), **fields})
    assert response.status_code == 302, response.content.decode()
    return Job.objects.get(pk=int(response["Location"].rstrip("/").split("/")[-1]))


def test_dry_run_then_import_for_real(client, people, customers, django_capture_on_commit_callbacks):
    a1, _b1 = customers
    sign_in(client, people.head_a)
    rows = "".join(f"T{i:03d},{a1.code},2025-09-{1 + i % 28:02d},gasoline,0.1,780.10,A1\n" for i in range(50))
    job = upload(client, django_capture_on_commit_callbacks, "pos.csv", (TXN_HEADER + rows).encode(),
                 kind="transactions", source="pos", dry_run="on")  # fmt: skip
    assert job.status == "succeeded" and job.kind == "transactions_import" and job.params["source"] == "pos"
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Dry run" in page and 'data-testid="import-run"' in page and "2025-09" in page
    assert not SalesFact.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/sales/import/{job.pk}/run/")
    real = Job.objects.exclude(pk=job.pk).get()
    assert response["Location"] == f"/jobs/{real.pk}/" and real.result["new"] == 50
    fact = SalesFact.objects.get()
    assert fact.quantity_milli == 5000 and fact.source == "pos"  # fifty 0.1 t are exactly 5 t
    assert "Import done" in client.get(f"/jobs/{real.pk}/").content.decode()


def test_row_errors_are_listed_and_downloadable(
    client, people, customers, django_capture_on_commit_callbacks
):
    a1, b1 = customers
    sign_in(client, people.head_a)
    rows = (
        f"T1,{a1.code},2025-09-31,gasoline,1,10,A1\n"  # no such day
        f"T2,{a1.code},2025-09-01,kerosene,1,10,A1\n"  # unknown product
        f"T3,{b1.code},2025-09-01,gasoline,-1,10,B1\n"  # outside head_a's scope, negative
    )
    job = upload(client, django_capture_on_commit_callbacks, "bad.csv", (TXN_HEADER + rows).encode(),
                 kind="transactions")  # fmt: skip
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-testid="import-errors"' in page and "Nothing was imported" in page
    assert "kerosene" in page and b1.code in page
    errors = client.get(f"/sales/import/{job.pk}/errors.csv")
    body = errors.content.decode("utf-8-sig")
    assert errors["Content-Type"].startswith("text/csv") and body.startswith("row,column,value,problem")
    assert {line.split(",")[0] for line in body.splitlines()[1:]} == {"2", "3", "4"}
    assert not SalesFact.objects.exists()


def test_monthly_facts_as_parquet(client, people, customers, django_capture_on_commit_callbacks):
    a1, _b1 = customers
    sign_in(client, people.head_p)
    frame = pl.DataFrame({"customer_code": [a1.code], "month": ["2025-08"], "product": ["card"],
                          "quantity": ["0"], "amount": ["100000.00"], "txn_count": ["3"]})  # fmt: skip
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    job = upload(
        client, django_capture_on_commit_callbacks, "facts.parquet", buffer.getvalue(), kind="monthly_facts"
    )
    assert job.kind == "monthly_facts_import" and job.params["source"] == "monthly", job.result
    assert SalesFact.objects.get().amount_fen == 10_000_000


def test_the_page_refuses_other_files_and_roles(client, people, customers):
    sign_in(client, people.head_p)
    form = client.get("/sales/import/")
    assert form.status_code == 200 and 'data-testid="sales-import-form"' in form.content.decode()
    wrong = client.post("/sales/import/", {"kind": "transactions", "file": SimpleUploadedFile("a.txt", b"x")})
    assert wrong.status_code == 200 and "Upload a .csv, .xlsx or .parquet file." in wrong.content.decode()
    assert not Job.objects.exists()
    client.logout()
    sign_in(client, people.alice)  # a customer manager imports no sales
    assert client.get("/sales/import/").status_code == 403
    assert client.post("/sales/import/", {"kind": "transactions"}).status_code == 403


def test_someone_elses_import_job_is_404(client, people, customers, django_capture_on_commit_callbacks):
    a1, _b1 = customers
    sign_in(client, people.head_p)
    job = upload(client, django_capture_on_commit_callbacks, "t.csv",
                 (TXN_HEADER + f"T1,{a1.code},2025-09-01,gasoline,1,10,A1\n").encode(),
                 kind="transactions", dry_run="on")  # fmt: skip
    client.logout()
    sign_in(client, people.head_a)
    assert client.get(f"/sales/import/{job.pk}/errors.csv").status_code == 404
    assert client.post(f"/sales/import/{job.pk}/run/").status_code == 404
