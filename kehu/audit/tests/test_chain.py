"""The audit trail's hash chain and ``kehu audit verify``."""

from __future__ import annotations

import hashlib
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import translation

from kehu.audit.models import AuditChainHead, AuditEvent
from kehu.audit.selectors import audit_chain_verify
from kehu.audit.services import GENESIS_HASH, HASHED_FIELDS, _canonical, audit_record, event_hash

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def append(n: int, *, who: str = "system", start: int = 0) -> list[AuditEvent]:
    return [
        audit_record(actor=None, actor_username=who, action="test.event", object_type="test.thing",
                     object_id=start + i, object_repr=f"物件 {start + i}",
                     changes={"n": [start + i, start + i + 1], "名称": "测试"}, extra={"i": start + i})
        for i in range(n)
    ]  # fmt: skip


def verify(*args, **kwargs) -> tuple[int, str, str]:
    """Run ``kehu audit verify``; returns (exit status, stdout, stderr)."""
    out, err = StringIO(), StringIO()
    try:
        call_command("audit", "verify", *args, stdout=out, stderr=err, **kwargs)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), err.getvalue() + str(exc)
    return 0, out.getvalue(), err.getvalue()


def plain_sha256(event: AuditEvent) -> str:
    """What a forger without the key would compute."""
    return hashlib.sha256(_canonical({f: getattr(event, f) for f in HASHED_FIELDS})).hexdigest()


# ---------------------------------------------------------------- clean trails


def test_empty_trail_verifies():
    assert verify() == (0, "OK: 0 events verified\n", "")


def test_clean_trail_verifies():
    append(20)
    status, out, err = verify()
    assert (status, out.strip(), err) == (0, "OK: 20 events verified", "")


def test_events_form_a_linked_chain():
    events = append(5)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
    head = AuditChainHead.objects.get()
    assert (head.seq, head.hash) == (5, events[-1].hash)
    # what is stored hashes the same as what was written
    for stored in AuditEvent.objects.all():
        assert event_hash({f: getattr(stored, f) for f in HASHED_FIELDS}) == stored.hash


@pytest.mark.parametrize("batch_size", [1, 7, 19, 20, 21])
def test_verify_across_batches(batch_size):
    append(20)
    result = audit_chain_verify(batch_size=batch_size)
    assert result.ok and result.checked == 20
    assert verify(batch_size=batch_size)[:2] == (0, "OK: 20 events verified\n")
    assert verify("--batch-size", str(batch_size))[:2] == (0, "OK: 20 events verified\n")


def test_verify_does_not_write_to_the_trail():
    append(3)
    verify()
    assert AuditEvent.objects.count() == 3


# ---------------------------------------------------------------- tampering


def test_row_edited_in_the_database_is_detected():
    append(20)
    AuditEvent.objects.filter(seq=5).update(object_repr="nothing to see")
    status, out, err = verify(batch_size=7)
    assert status == 1
    assert "OK" not in out
    assert "event #5 (test.event) was altered" in err


@pytest.mark.parametrize(
    "field,value",
    [
        ("actor_username", "someone_else"),
        ("outcome", "failure"),
        ("changes", {"n": [0, 0], "名称": "测试"}),
        ("extra", {}),
        ("ip", "10.0.0.1"),
        ("object_id", "999"),
    ],
)
def test_any_hashed_field_edit_is_detected(field, value):
    append(10)
    AuditEvent.objects.filter(seq=8).update(**{field: value})
    result = audit_chain_verify()
    assert result.problems == ["event #8 (test.event) was altered after it was written"]


def test_time_edit_is_detected():
    events = append(10)
    from datetime import timedelta

    AuditEvent.objects.filter(seq=3).update(at=events[2].at - timedelta(hours=1))
    assert verify()[0] == 1


def test_row_deleted_in_the_middle_is_detected():
    append(20)
    AuditEvent.objects.filter(seq=10).delete()
    status, _out, err = verify(batch_size=7)
    assert status == 1
    assert "events #10..#10 are missing (deleted)" in err
    assert "event #11 does not link to the event before it" in err


def test_rows_deleted_across_a_batch_boundary_are_detected():
    append(20)
    AuditEvent.objects.filter(seq__in=[7, 8]).delete()
    result = audit_chain_verify(batch_size=7)
    assert "events #7..#8 are missing (deleted)" in result.problems
    assert result.checked == 18


def test_newest_row_deleted_is_detected():
    append(20)
    AuditEvent.objects.filter(seq=20).delete()
    status, _out, err = verify()
    assert status == 1
    assert "the newest events #20..#20 are missing (deleted)" in err


def test_whole_trail_deleted_is_detected():
    append(5)
    AuditEvent.objects.all().delete()
    status, _out, err = verify()
    assert status == 1
    assert "#1..#5 are missing" in err


def test_newest_rows_and_the_chain_head_deleted_is_detected():
    append(20)
    AuditEvent.objects.filter(seq__gte=18).delete()
    AuditChainHead.objects.all().delete()
    assert verify()[0] == 1


def test_forged_row_with_a_plain_sha256_is_detected():
    """A forger edits an event and rebuilds the rest of the chain with SHA-256: without the key it fails."""
    append(20)
    prev = AuditEvent.objects.get(seq=6).hash
    for ev in AuditEvent.objects.filter(seq__gte=7).order_by("seq"):
        if ev.seq == 7:
            ev.actor_username = "innocent"
        ev.prev_hash = prev
        ev.hash = plain_sha256(ev)
        ev.save()
        prev = ev.hash
    AuditChainHead.objects.filter(pk=1).update(seq=20, hash=prev)
    status, _out, err = verify()
    assert status == 1
    for seq in range(7, 21):
        assert f"event #{seq} (test.event) was altered" in err
    assert "does not link" not in err  # the links are consistent; the keyed hashes are not


def test_forged_row_appended_at_the_end_is_detected():
    append(5)
    head = AuditChainHead.objects.get()
    forged = AuditEvent(**{**{f: getattr(AuditEvent.objects.get(seq=5), f) for f in HASHED_FIELDS},
                           "seq": 6, "action": "user.create", "prev_hash": head.hash})  # fmt: skip
    forged.hash = plain_sha256(forged)
    forged.save()
    AuditChainHead.objects.filter(pk=1).update(seq=6, hash=forged.hash)
    result = audit_chain_verify()
    assert result.problems == ["event #6 (user.create) was altered after it was written"]


def test_inserted_row_is_detected():
    append(5)
    AuditEvent.objects.filter(seq=5).update(seq=6)
    ev = AuditEvent.objects.get(seq=4)
    ev.pk, ev.seq, ev.action = None, 5, "test.inserted"
    ev.prev_hash = ev.hash
    ev.hash = plain_sha256(ev)
    ev.save()
    assert not audit_chain_verify().ok


def test_the_key_matters(settings):
    append(3)
    settings.KEHU_AUDIT_KEY = "a different key"
    result = audit_chain_verify()
    assert len([p for p in result.problems if "altered" in p]) == 3


def test_unknown_subcommand_is_an_error():
    with pytest.raises(CommandError):
        call_command("audit", "frobnicate")
    with pytest.raises(CommandError):
        call_command("audit")


# ---------------------------------------------------------------- concurrency


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: SQLite serialises writers")
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_the_chain_linear():
    """Several connections append at once, starting from a fresh install (no chain head yet)."""
    threads_n, per_thread = 4, 15
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with transaction.atomic():
                    append(1, who=f"worker{k}", start=k * 100 + i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    assert not AuditChainHead.objects.exists()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    total = threads_n * per_thread
    assert sorted(AuditEvent.objects.values_list("seq", flat=True)) == list(range(1, total + 1))
    assert AuditEvent.objects.values("prev_hash").distinct().count() == total
    times = list(AuditEvent.objects.order_by("seq").values_list("at", flat=True))
    assert times == sorted(times), "a later event must not carry an earlier time"
    result = audit_chain_verify(batch_size=7)
    assert result.ok, result.problems
    assert result.checked == total
