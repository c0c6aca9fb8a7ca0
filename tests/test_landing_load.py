"""Landing loads against the real PostgreSQL: every contract rule, row accounting, idempotency, atomicity.

Each rule of CONTRACT.md §1.2/§2 gets a file that breaks it; the test checks
the row is rejected with the right reason, locator and raw text, that nothing
is coerced, and that rows_in = loaded + rejected + duplicate in ops.load_audit.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from acme_pipelines.accounting import AuditEntry, LoadFailedError
from acme_pipelines.backends import load_partition
from acme_pipelines.contract import EVENTS, PAYMENTS, POS
from acme_pipelines.readers import SourceFileError
from acme_sample_data.build import build
from acme_sample_data.generator import GeneratorConfig
from conftest import ROOT, query, table_checksum

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 1)
HEADER = "payment_id,order_id,amount,currency,method,status,paid_at"
GOOD = "1,10,12.50,USD,card,captured,2026-11-01T10:00:00Z"
EVENT = {
    "event_id": "0b6f1c1e-3a4f-4b8e-9a7e-2f1d5c6b7a80",
    "event_type": "page_view",
    "occurred_at": "2026-11-01T10:00:00Z",
    "session_id": "s1",
    "customer_id": 7,
    "product_id": None,
}


def audit(run_id: str = "run-1", source: str = "landing:payments", day: date = DAY) -> AuditEntry:
    return AuditEntry("test", "load", run_id, source, "core.fact_payments", day.isoformat(), datetime.now(UTC))


def add_fx(hook, day: date = DAY) -> None:
    with hook.scoped_connection() as conn, conn.cursor() as cur:
        for code, rate in (("USD", 1.0), ("EUR", 0.8), ("GBP", 0.5)):
            cur.execute(
                "INSERT INTO core.fx_rates VALUES (%s, %s, %s, 'fx', now()) ON CONFLICT DO NOTHING", (day, code, rate)
            )
        conn.commit()


def write(root: Path, source: str, name: str, text: str | bytes, day: date = DAY, gz: bool = False) -> Path:
    folder = root / source / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    path = folder / name
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def load_payments(hook, root, day=DAY, run_id="run-1", ratio=1.0, **kwargs):
    add_fx(hook, day)
    return load_partition(hook, PAYMENTS, root, day, audit(run_id, day=day), max_reject_ratio=ratio, **kwargs).counts


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("2,10,12.5O,USD,card,captured,2026-11-01T10:00:00Z", "bad_type:amount"),
        ("2,10,-3.00,USD,card,captured,2026-11-01T10:00:00Z", "out_of_range:amount"),
        ("2,10,10.125,USD,card,captured,2026-11-01T10:00:00Z", "bad_precision:amount"),
        ("2,10,1.00,USD,card,captured,", "missing:paid_at"),
        ("2,10,1.00,USD,card,captured,31/12/2026 10:00", "bad_type:paid_at"),
        ("2,10,1.00,USD,card,captured,2026-02-30T10:00:00Z", "bad_type:paid_at"),
        ("2,10,1.00,USD,bitcoin,captured,2026-11-01T10:00:00Z", "bad_enum:method"),
        ("2,10,1.00,USD,card,pending,2026-11-01T10:00:00Z", "bad_enum:status"),
        ("2,10,1.00,usd,card,captured,2026-11-01T10:00:00Z", "bad_format:currency"),
        ("2,,1.00,USD,card,captured,2026-11-01T10:00:00Z", "missing:order_id"),
        ("P-2,10,1.00,USD,card,captured,2026-11-01T10:00:00Z", "bad_type:payment_id"),
        ("2;10;1.00", "malformed_line"),
        ("1,10,99.00,USD,card,captured,2026-11-01T10:00:00Z", "duplicate_key:payment_id"),
    ],
)
def test_each_payment_rule_rejects_with_its_reason(warehouse, tmp_path, bad_line, reason):
    path = write(tmp_path, "payments", "part-000.csv", f"{HEADER}\n{GOOD}\n{bad_line}\n")
    counts = load_payments(warehouse, tmp_path)
    assert (counts.rows_in, counts.rows_loaded, counts.rows_rejected, counts.rows_duplicate) == (2, 1, 1, 0)
    rejected = query(warehouse.dsn, "SELECT locator, reason, raw_record FROM ops.rejected_rows")
    assert rejected == [(f"{path}:3", reason, bad_line)]
    published = query(warehouse.dsn, "SELECT payment_id, amount FROM core.fact_payments")
    assert [(pid, str(amount)) for pid, amount in published] == [(1, "12.50")], "the bad row is not loaded"
    [audit_row] = query(
        warehouse.dsn, "SELECT rows_in, rows_loaded, rows_rejected, rows_duplicate, status FROM ops.load_audit"
    )
    assert audit_row == (2, 1, 1, 0, "success")


def test_exact_duplicate_is_counted_not_rejected(warehouse, tmp_path):
    write(tmp_path, "payments", "part-000.csv", f"{HEADER}\n{GOOD}\n{GOOD}\n")
    counts = load_payments(warehouse, tmp_path)
    assert (counts.rows_in, counts.rows_loaded, counts.rows_rejected, counts.rows_duplicate) == (3 - 1, 1, 0, 1)
    assert query(warehouse.dsn, "SELECT count(*) FROM ops.rejected_rows") == [(0,)]


def test_timestamps_columns_order_gzip_and_usd(warehouse, tmp_path):
    write(
        tmp_path,
        "payments",
        "part-000.csv.gz",
        "paid_at,status,method,currency,amount,order_id,payment_id\n"
        "2026-11-01 10:00:00,captured,card,EUR,10.00,1,1\n"
        '"2026-11-01T10:00:00+01:00",refunded,paypal,GBP,"5.5",2,2\n',
        gz=True,
    )
    load_payments(warehouse, tmp_path)
    rows = query(
        warehouse.dsn,
        "SELECT payment_id, paid_at, amount_usd::text, dt FROM core.fact_payments ORDER BY 1",
    )
    assert rows == [
        (1, datetime(2026, 11, 1, 10, 0, tzinfo=UTC), "12.50", DAY),  # naive is UTC; 10 EUR / 0.8 per USD
        (2, datetime(2026, 11, 1, 9, 0, tzinfo=UTC), "11.00", DAY),  # offset honoured; 5.5 GBP / 0.5
    ]


MANY = "".join(f"{i},10,1.00,USD,card,captured,2026-11-01T10:00:00Z\n" for i in range(100, 20_100))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("part-001.csv", b"payment_id,amount\n1,2\n", "does not match the contract columns"),
        ("part-001.csv", b"", "empty file, no header row"),  # zero bytes: not even a header
        ("part-001.csv.gz", f"{HEADER}\n{GOOD}\n".encode(), "not gzip"),
        ("part-001.csv.gz", b"", "not gzip"),
        ("part-001.csv.gz", gzip.compress(f"{HEADER}\n{MANY}".encode())[:-2000], "cannot be read: Compressed file"),
    ],
    ids=["header", "zero-byte", "not-gzip", "zero-byte-gzip", "truncated-gzip"],
)
def test_unreadable_file_fails_the_load_naming_it_and_publishes_nothing(warehouse, tmp_path, name, content, message):
    write(tmp_path / "before", "payments", "part-000.csv", f"{HEADER}\n{GOOD}\n")
    load_payments(warehouse, tmp_path / "before")
    before = table_checksum(warehouse.dsn, "core.fact_payments", "payment_id")
    # a good file first, so rows are already on their way when the bad one is reached
    write(tmp_path / "bad", "payments", "part-000.csv", f"{HEADER}\n{GOOD.replace('12.50', '99.00')}\n{MANY}")
    path = write(tmp_path / "bad", "payments", name, content)
    with pytest.raises(SourceFileError, match=message) as raised:
        load_payments(warehouse, tmp_path / "bad", run_id="run-2")
    assert str(path) in str(raised.value)
    assert table_checksum(warehouse.dsn, "core.fact_payments", "payment_id") == before


def test_reject_ratio_fails_after_recording_rejects(warehouse, tmp_path):
    bad = "\n".join(f"{i},10,1.00,USD,bitcoin,captured,2026-11-01T10:00:00Z" for i in range(2, 5))
    write(tmp_path, "payments", "part-000.csv", f"{HEADER}\n{GOOD}\n{bad}\n")
    with pytest.raises(LoadFailedError, match="max_reject_ratio"):
        load_payments(warehouse, tmp_path, ratio=0.5)
    assert query(warehouse.dsn, "SELECT count(*) FROM core.fact_payments") == [(0,)], "nothing published"
    assert query(warehouse.dsn, "SELECT count(*), min(reason) FROM ops.rejected_rows") == [(3, "bad_enum:method")]
    assert query(warehouse.dsn, "SELECT rows_in, rows_rejected, status FROM ops.load_audit") == [(4, 3, "failed")]


def test_missing_fx_rate_fails_loudly(warehouse, tmp_path):
    write(tmp_path, "payments", "part-000.csv", f"{HEADER}\n1,10,1.00,JPY,card,captured,2026-11-01T10:00:00Z\n")
    with pytest.raises(LoadFailedError, match="no FX rate for JPY"):
        load_payments(warehouse, tmp_path)
    assert query(warehouse.dsn, "SELECT count(*) FROM core.fact_payments") == [(0,)]


def test_no_files_is_an_error(warehouse, tmp_path):
    with pytest.raises(LoadFailedError, match="no payments files"):
        load_payments(warehouse, tmp_path)


def test_newer_partition_wins_and_an_older_rerun_does_not_revert(warehouse, tmp_path):
    day2 = date(2026, 11, 2)
    write(tmp_path, "payments", "part-000.csv", f"{HEADER}\n{GOOD}\n")
    write(tmp_path, "payments", "part-000.csv", f"{HEADER}\n1,10,20.00,USD,card,refunded,2026-11-02T10:00:00Z\n", day2)
    load_payments(warehouse, tmp_path, DAY)
    load_payments(warehouse, tmp_path, day2, run_id="run-2")
    load_payments(warehouse, tmp_path, DAY, run_id="run-3")  # rerun of the older day
    rows = query(warehouse.dsn, "SELECT payment_id, amount::text, status, dt FROM core.fact_payments")
    assert rows == [(1, "20.00", "refunded", day2)]


def test_events_rules(warehouse, tmp_path):
    lines = [
        json.dumps(EVENT),
        json.dumps({**EVENT, "event_id": "not-a-uuid"}),
        json.dumps({**EVENT, "event_id": "1b6f1c1e-3a4f-4b8e-9a7e-2f1d5c6b7a80", "customer_id": "7"}),
        json.dumps({**EVENT, "event_id": "2b6f1c1e-3a4f-4b8e-9a7e-2f1d5c6b7a80", "properties": "x"}),
        json.dumps({**EVENT, "event_id": "3b6f1c1e-3a4f-4b8e-9a7e-2f1d5c6b7a80", "session_id": ""}),
        '{"event_id": "truncated',
        json.dumps({**EVENT, "session_id": "other"}),
        json.dumps(EVENT),
        json.dumps({**EVENT, "event_id": "4b6f1c1e-3a4f-4b8e-9a7e-2f1d5c6b7a80", "properties": {"k": [1, 2]}}),
        # an impossible time and, in a later column, a wrong type: the reason is the first rule broken
        json.dumps(
            {
                **EVENT,
                "event_id": "5b6f1c1e-3a4f-4b8e-9a7e-2f1d5c6b7a80",
                "occurred_at": "2026-02-30T10:00:00Z",
                "customer_id": "7",
            }
        ),
    ]
    path = write(tmp_path, "events", "part-000.jsonl", "\n".join(lines) + "\n")
    counts = load_partition(warehouse, EVENTS, tmp_path, DAY, audit(source="landing:events"), max_reject_ratio=1).counts
    assert (counts.rows_in, counts.rows_loaded, counts.rows_rejected, counts.rows_duplicate) == (10, 2, 7, 1)
    assert query(warehouse.dsn, "SELECT locator, reason FROM ops.rejected_rows ORDER BY locator") == [
        (f"{path}:10", "bad_type:occurred_at"),  # (locators sort as text)
        (f"{path}:2", "bad_format:event_id"),
        (f"{path}:3", "bad_type:customer_id"),  # a string is not an integer, even "7"
        (f"{path}:4", "bad_type:properties"),
        (f"{path}:5", "missing:session_id"),
        (f"{path}:6", "malformed_line"),
        (f"{path}:7", "duplicate_key:event_id"),
    ]
    props = query(warehouse.dsn, "SELECT properties FROM core.fact_events WHERE properties IS NOT NULL")
    assert props == [({"k": [1, 2]},)]


def generated(tmp_path: Path, days: int = 2) -> tuple[Path, dict]:
    config = GeneratorConfig(start=DAY, days=days, scale=0.3, bad_share=0.004, seed=11)
    result = build(config, tmp_path / "landing", None)
    return tmp_path / "landing", json.loads(result.manifest_path.read_text())["days"]


def test_generated_days_load_exactly_as_the_manifest_says(warehouse, tmp_path):
    root, manifest = generated(tmp_path)
    for day_text, expected in manifest.items():
        day = date.fromisoformat(day_text)
        for spec in (PAYMENTS, EVENTS, POS):
            add_fx(warehouse, day)
            got = load_partition(
                warehouse, spec, root, day, audit(source=f"landing:{spec.name}", day=day), max_reject_ratio=0.05
            ).counts
            want = expected[spec.name]
            assert (got.rows_in, got.rows_loaded, got.rows_rejected, got.rows_duplicate) == (
                want["rows_in"],
                want["rows_loaded"],
                want["rows_rejected"],
                want["rows_duplicate"],
            ), f"{spec.name} {day}"
            assert got.rejected_by_reason == want["rejected_by_reason"]
    for spec in (PAYMENTS, EVENTS, POS):
        total = sum(d[spec.name]["rows_loaded"] for d in manifest.values())
        assert query(warehouse.dsn, f"SELECT count(*) FROM {spec.target}") == [(total,)], spec.target


def test_rerunning_a_day_gives_the_same_published_state(warehouse, tmp_path):
    root, _ = generated(tmp_path, days=1)
    write(root, "payments", "part-002.csv", f"{HEADER}\n9999999,10,1.00,USD,bitcoin,captured,2026-11-01T10:00:00Z\n")
    states = []
    for run in ("run-1", "run-2"):
        load_payments(warehouse, root, run_id=run, ratio=0.05)
        states.append(
            (
                table_checksum(warehouse.dsn, "core.fact_payments", "payment_id"),
                query(warehouse.dsn, "SELECT count(*), count(DISTINCT run_id) FROM ops.rejected_rows"),
            )
        )
    assert states[0][0] == states[1][0]
    assert states[1][1][0][1] == 1, "the day's rejects are replaced, not doubled"
    assert states[0][1][0][0] == states[1][1][0][0]


def test_failure_after_staging_leaves_the_published_day_and_the_retry_succeeds(warehouse, tmp_path):
    write(tmp_path / "v1", "payments", "part-000.csv", f"{HEADER}\n{GOOD}\n")
    write(tmp_path / "v2", "payments", "part-000.csv", f"{HEADER}\n{GOOD.replace('12.50', '13.00')}\n")
    load_payments(warehouse, tmp_path / "v1")
    before = table_checksum(warehouse.dsn, "core.fact_payments", "payment_id")
    with pytest.raises(RuntimeError, match="injected failure after staging"):
        load_payments(warehouse, tmp_path / "v2", run_id="run-2", fail_after_staging=True)
    assert table_checksum(warehouse.dsn, "core.fact_payments", "payment_id") == before
    load_payments(warehouse, tmp_path / "v2", run_id="run-3")
    assert query(warehouse.dsn, "SELECT amount::text FROM core.fact_payments") == [("13.00",)]


KILL_SCRIPT = """
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from acme_pipelines.contract import PAYMENTS
from acme_pipelines.backends import load_partition
from acme_pipelines.accounting import AuditEntry
from acme_pipelines.warehouse import WarehouseHook
hook = WarehouseHook(dsn=sys.argv[1])
audit = AuditEntry("t", "t", "killed", "landing:payments", "core.fact_payments", "2026-11-01", datetime.now(UTC))
load_partition(hook, PAYMENTS, Path(sys.argv[2]), date(2026, 11, 1), audit, max_reject_ratio=1, batch_rows=2000)
"""


def test_killed_load_leaves_the_published_day_and_the_rerun_succeeds(warehouse, tmp_path):
    write(tmp_path / "v1", "payments", "part-000.csv", f"{HEADER}\n{GOOD}\n")
    load_payments(warehouse, tmp_path / "v1")
    before = table_checksum(warehouse.dsn, "core.fact_payments", "payment_id")
    rows = "".join(f"{i},10,1.00,USD,card,captured,2026-11-01T10:00:00Z\n" for i in range(1, 400_001))
    write(tmp_path / "v2", "payments", "part-000.csv", HEADER + "\n" + rows)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}  # a worker's path: runtime code only
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, warehouse.dsn, str(tmp_path / "v2")], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill -9 while a COPY of this load is moving rows
        copying = query(
            warehouse.dsn,
            "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy WHERE datname = current_database()",
        )
        if copying[0][0] > 0 or proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the load was killed before it finished"
    assert table_checksum(warehouse.dsn, "core.fact_payments", "payment_id") == before
    counts = load_payments(warehouse, tmp_path / "v2", run_id="rerun")
    assert counts.rows_loaded == 400_000
    assert query(warehouse.dsn, "SELECT count(*) FROM core.fact_payments") == [(400_000,)]


def test_direct_and_staged_paths_publish_the_same_rows(make_database, tmp_path, monkeypatch, caplog):
    import logging

    from acme_pipelines import landing_load

    caplog.set_level(logging.INFO, logger="acme_pipelines.landing_load")
    from acme_pipelines.migrations import upgrade
    from acme_pipelines.warehouse import WarehouseHook

    rows = [f"{i},{i % 7},{i % 1000}.{i % 100:02d},{('USD', 'EUR', 'GBP')[i % 3]},card,captured,2026-11-01T10:00:00Z"
            for i in range(1, 2001)]  # fmt: skip
    rows[10] = "11,1,1.00,USD,bitcoin,captured,2026-11-01T10:00:00Z"  # a reject, but no repeated key
    write(tmp_path, "payments", "part-000.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    results = []
    for force_staged in (False, True):
        hook = WarehouseHook(dsn=make_database())
        upgrade(hook)
        if force_staged:
            monkeypatch.setattr(landing_load, "_load_direct", lambda *args, **kwargs: None)
        counts = load_payments(hook, tmp_path, ratio=0.01)
        results.append(
            (
                counts.rows_in,
                counts.rows_loaded,
                counts.rows_rejected,
                table_checksum(hook.dsn, "core.fact_payments", "payment_id"),
                query(hook.dsn, "SELECT locator, reason, raw_record FROM ops.rejected_rows"),
                # planner statistics of the new partition, from the load's ANALYZE (not autovacuum's, minutes later)
                query(hook.dsn, "SELECT count(*) > 0 FROM pg_stats WHERE tablename = 'fact_payments_p20261101'"),
            )
        )
    assert results[0][-1] == [(True,)]
    assert results[0] == results[1]
    assert results[0][:3] == (2000, 1999, 1)
    assert [r.message.split(": ")[1].split(" ")[0] for r in caplog.records if "rows directly" in r.message or
            "staged 2000 rows" in r.message] == ["published", "staged"]  # fmt: skip
