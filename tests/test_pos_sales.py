"""Point-of-sale files (docs/contract.md §1.4): one SQLite database per day, rows in table ``sales``.

Reading is the unit tier (``readers.read_batches``, no services): values as the
text a CSV would hold, so the same rules reject the same values; bounded
batches; a file that is not a database, is corrupt or lacks the table fails
naming it. Loading a day into PostgreSQL, from S3 and into Snowflake (the
fakesnow server) is the integration tier: every row loaded or rejected, a rerun
changes nothing, no staging table is left.
"""

from __future__ import annotations

import codecs
import json
import sqlite3
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from acme_pipelines.accounting import AuditEntry
from acme_pipelines.contract import POS
from acme_pipelines.readers import BAD_ENCODING, SourceFileError, data_files, read_batches
from acme_pipelines.validation import validate

DAY = date(2026, 11, 1)
# Columns in another order than the contract's, and one the contract does not name: both are fine.
DDL = (
    "CREATE TABLE sales (register_id TEXT, sold_at TEXT, sale_id INTEGER, store_id INTEGER, product_id INTEGER, "
    "quantity INTEGER, amount NUMERIC, currency TEXT)"
)
COLUMNS = ("sale_id", "store_id", "product_id", "quantity", "amount", "currency", "sold_at")


def sale(i: int, **changes) -> dict:
    return {"sale_id": i, "store_id": 3, "product_id": 7, "quantity": 2, "amount": "12.50", "currency": "EUR",
            "sold_at": "2026-11-01T10:00:00Z"} | changes  # fmt: skip


def sales_file(path: Path, rows: list[dict], ddl: str = DDL) -> Path:
    """A SQLite database at ``path`` whose table (``ddl``) holds ``rows`` (dicts of contract columns; a value
    ``("text", b"...")`` is stored as TEXT with exactly those bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute(ddl)
        for row in rows:
            names = [*row, "register_id"]
            marks = ["CAST(? AS TEXT)" if isinstance(v, tuple) else "?" for v in row.values()] + ["'R1'"]
            values = [v[1] if isinstance(v, tuple) else v for v in row.values()]
            conn.execute(f"INSERT INTO sales ({', '.join(names)}) VALUES ({', '.join(marks)})", values)
        conn.commit()
    finally:
        conn.close()
    return path


def day_file(root: Path, rows: list[dict], name: str = "sales.sqlite", day: date = DAY) -> Path:
    return sales_file(root / "pos" / f"dt={day.isoformat()}" / name, rows)


def read_all(path: Path, batch_rows: int = 20_000) -> tuple[list[dict], list[int], list[str], list[tuple]]:
    """Every row (contract columns as text), its line (rowid), its raw record, and every row that is not one."""
    rows, lines, raws, others = [], [], [], []
    for batch in read_batches(path, POS, batch_rows):
        rows += batch.columns.to_pylist()
        lines += batch.lines.to_pylist()
        raws += batch.raw_records().to_pylist()
        others += [(m.line, m.reason, m.text) for m in batch.malformed]
    return rows, lines, raws, others


# -- reading (unit) ----------------------------------------------------------------------


@pytest.mark.unit
def test_a_good_file_reads_its_values_as_text_in_rowid_order(tmp_path):
    path = day_file(tmp_path, [sale(1), sale(2, amount="3", currency="USD", sold_at="2026-11-01 10:00:00+01:00"),
                               sale(3, amount=4.25, quantity=1)])  # fmt: skip
    rows, lines, raws, others = read_all(path)
    assert others == []
    assert lines == [1, 2, 3], "a row's line is its rowid"
    assert rows == [
        # NUMERIC affinity stores '12.50' as the REAL 12.5: read back as the shortest text of that number
        {"sale_id": "1", "store_id": "3", "product_id": "7", "quantity": "2", "amount": "12.5", "currency": "EUR",
         "sold_at": "2026-11-01T10:00:00Z"},
        {"sale_id": "2", "store_id": "3", "product_id": "7", "quantity": "2", "amount": "3", "currency": "USD",
         "sold_at": "2026-11-01 10:00:00+01:00"},
        {"sale_id": "3", "store_id": "3", "product_id": "7", "quantity": "1", "amount": "4.25", "currency": "EUR",
         "sold_at": "2026-11-01T10:00:00Z"},
    ]  # fmt: skip
    assert json.loads(raws[0]) == {
        "sale_id": 1, "store_id": 3, "product_id": 7, "quantity": 2, "amount": 12.5, "currency": "EUR",
        "sold_at": "2026-11-01T10:00:00Z",
    }, "the raw record: the contract columns as stored, not the extra register_id"  # fmt: skip
    assert validate(next(read_batches(path, POS)).columns, POS).reasons.null_count == 3, "all three are valid"


@pytest.mark.unit
def test_the_table_is_read_in_bounded_batches(tmp_path):
    path = day_file(tmp_path, [sale(i) for i in range(1, 1001)])
    sizes, lines = [], []
    for batch in read_batches(path, POS, batch_rows=64):
        sizes.append(batch.num_rows)
        lines += batch.lines.to_pylist()
    assert max(sizes) == 64
    assert sum(sizes) == 1000
    assert lines == list(range(1, 1001))


@pytest.mark.unit
def test_values_of_the_wrong_type_are_rejected_with_the_rule_they_break(tmp_path):
    cases = [
        (sale(2, sale_id="S-2"), "bad_type:sale_id"),
        (sale(3, store_id=None), "missing:store_id"),
        (sale(4, product_id=b"\x07"), "bad_type:product_id"),  # a BLOB is no contract column's type
        (sale(5, quantity=2.5), "bad_type:quantity"),  # a REAL in an INTEGER column: not an integer
        (sale(6, quantity=0), "out_of_range:quantity"),
        (sale(7, amount="12.5O"), "bad_type:amount"),  # not a number: NUMERIC affinity keeps it as TEXT
        (sale(8, amount=-3), "out_of_range:amount"),
        (sale(9, amount=10.125), "bad_precision:amount"),
        (sale(10, amount=0.1 + 0.2), "bad_precision:amount"),  # 0.30000000000000004: never rounded
        (sale(11, currency="usd"), "bad_format:currency"),
        (sale(12, currency=978), "bad_format:currency"),
        (sale(13, sold_at=1762000000), "bad_type:sold_at"),  # a Unix time is not ISO 8601
        (sale(14, sold_at="2026-02-30T10:00:00Z"), "bad_type:sold_at"),
        (sale(15, sold_at=None), "missing:sold_at"),
        (sale(16, quantity=2**31), "out_of_range:quantity"),
        (sale(17, sale_id=2**62 * 3 // 2), "bad_type:sale_id"),  # 19 digits: more than the contract's integer
    ]
    path = day_file(tmp_path, [sale(1)] + [row for row, _ in cases])
    reasons = []
    for batch in read_batches(path, POS, batch_rows=5):
        reasons += validate(batch.columns, POS).reasons.to_pylist()
    assert reasons == [None] + [reason for _, reason in cases]


@pytest.mark.unit
def test_text_that_is_not_utf8_rejects_its_row_with_the_bytes_and_the_rest_reads(tmp_path):
    path = day_file(tmp_path, [sale(1), sale(2, currency=("text", b"\xffUR")), sale(3)])
    rows, lines, _, others = read_all(path, batch_rows=2)
    assert lines == [1, 3]
    assert [r["sale_id"] for r in rows] == ["1", "3"]
    [(line, reason, raw)] = others
    assert (line, reason) == (2, BAD_ENCODING)
    currency = json.loads(raw)["currency"]
    assert codecs.escape_decode(currency.encode())[0] == b"\xffUR", "the bytes are kept, escaped"


@pytest.mark.unit
def test_a_table_without_rows_is_a_file_of_zero_rows(tmp_path):
    path = day_file(tmp_path, [])
    assert read_all(path) == ([], [], [], [])


def _corrupt(path: Path) -> Path:
    """Every page after the first (the schema) overwritten with zeros: the table is there, its rows are not."""
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096
    data[4096:] = bytes(len(data) - 4096)
    path.write_bytes(bytes(data))
    return path


def _not_sqlite(path: Path) -> None:
    path.write_text("sale_id,store_id\n1,2\n")


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _no_sales_table(path: Path) -> None:
    sales_file(path, [], ddl="CREATE TABLE receipts (sale_id INTEGER)")


def _missing_columns(path: Path) -> None:
    sales_file(path, [], ddl="CREATE TABLE sales (sale_id INTEGER, store_id INTEGER, amount NUMERIC)")


def _corrupt_file(path: Path) -> None:
    _corrupt(sales_file(path, [sale(i) for i in range(5000)]))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_not_sqlite, "cannot be read as a SQLite database: file is not a database"),
        (_corrupt_file, "cannot be read as a SQLite database: database disk image is malformed"),
        (_no_sales_table, r"no table 'sales' in this SQLite database \(its tables: \['receipts'\]\)"),
        (_zero_bytes, r"no table 'sales' in this SQLite database \(its tables: \[\]\)"),  # zero bytes: no tables
        (_missing_columns, "table 'sales' has no column product_id, quantity, currency, sold_at"),
    ],
    ids=["not-sqlite", "corrupt", "no-table", "zero-byte", "missing-columns"],
)
def test_a_file_that_cannot_be_read_fails_naming_it(tmp_path, make, message):
    path = tmp_path / "pos" / f"dt={DAY}" / "sales.sqlite"
    path.parent.mkdir(parents=True)
    make(path)
    with pytest.raises(SourceFileError, match=message) as raised:
        read_all(path)
    assert str(raised.value).startswith(f"{path}: ")


@pytest.mark.unit
def test_reading_changes_nothing_beside_the_file_and_only_sqlite_files_count(tmp_path):
    path = day_file(tmp_path, [sale(1)])
    (path.parent / "sales.sqlite.part").write_bytes(b"still uploading")
    (path.parent / "old.sqlite.gz").write_bytes(b"")
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in path.parent.iterdir()}
    read_all(path)
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in path.parent.iterdir()} == before
    assert [p.name for p in data_files(path.parent, POS)] == ["sales.sqlite"]


# -- loading (integration) -------------------------------------------------------------------


def audit(run_id: str = "run-1", day: date = DAY) -> AuditEntry:
    return AuditEntry("test", "load_pos", run_id, "landing:pos", POS.target, day.isoformat(), datetime.now(UTC))


def add_fx(hook, day: date = DAY) -> None:
    with hook.scoped_connection() as conn, conn.cursor() as cur:
        for code, rate in (("USD", 1.0), ("EUR", 0.8), ("GBP", 0.5)):
            cur.execute("INSERT INTO core.fx_rates VALUES (%s, %s, %s, 'fx', now()) ON CONFLICT DO NOTHING",
                        (day, code, rate))  # fmt: skip
        conn.commit()


# A day of two files: 1,000 good sales, 4 broken rows, a repeated key, a byte-identical repeat.
BROKEN = [sale(2001, quantity=0), sale(2002, amount="12.5O"), sale(2003, sold_at=None),
          sale(2004, currency=("text", b"E\xffR"))]  # fmt: skip


def a_day(root: Path) -> dict:
    first = day_file(root, [sale(i) for i in range(1, 501)] + BROKEN, "a-sales.sqlite")
    second = day_file(root, [sale(i) for i in range(501, 1001)] + [sale(1, quantity=9), sale(600)], "b-sales.sqlite")
    return {"first": first, "second": second, "counts": (1006, 1000, 5, 1)}  # in, loaded, rejected, duplicate


def counted(counts) -> tuple[int, int, int, int]:
    return counts.rows_in, counts.rows_loaded, counts.rows_rejected, counts.rows_duplicate


@pytest.mark.integration
def test_a_day_loads_into_postgres_every_row_accounted_and_a_rerun_changes_nothing(warehouse, tmp_path):
    from acme_pipelines.backends import load_partition
    from conftest import query, table_checksum

    files = a_day(tmp_path)
    add_fx(warehouse)
    states = []
    for run_id in ("run-1", "run-2"):
        counts = load_partition(warehouse, POS, tmp_path, DAY, audit(run_id), max_reject_ratio=0.01).counts
        assert counted(counts) == files["counts"]
        assert counts.rejected_by_reason == {"out_of_range:quantity": 1, "bad_type:amount": 1, "missing:sold_at": 1,
                                             BAD_ENCODING: 1, "duplicate_key:sale_id": 1}  # fmt: skip
        states.append((
            table_checksum(warehouse.dsn, POS.target, "sale_id"),
            query(warehouse.dsn, "SELECT locator, reason FROM ops.rejected_rows ORDER BY reason"),
        ))  # fmt: skip
    assert states[0] == states[1], "the rerun published the same rows and replaced the rejects"
    first, second = files["first"], files["second"]
    assert states[1][1] == [
        (f"{first}:504", BAD_ENCODING),
        (f"{first}:502", "bad_type:amount"),
        (f"{second}:501", "duplicate_key:sale_id"),  # sale 1 again, other values: the first file's row wins
        (f"{first}:503", "missing:sold_at"),
        (f"{first}:501", "out_of_range:quantity"),
    ]
    assert query(warehouse.dsn, "SELECT count(*), count(DISTINCT sale_id), sum(quantity) FROM core.fact_pos_sales "
                 "WHERE dt = %s", (DAY,)) == [(1000, 1000, 2000)]  # fmt: skip
    [row] = query(warehouse.dsn, "SELECT amount::text, currency, sold_at, amount_usd::text, _run_id FROM "
                  "core.fact_pos_sales WHERE sale_id = 1")  # fmt: skip
    assert row == ("12.50", "EUR", datetime(2026, 11, 1, 10, tzinfo=UTC), "15.63", "run-2")  # 12.50 EUR / 0.8
    assert query(warehouse.dsn, "SELECT rows_in, rows_loaded, rows_rejected, rows_duplicate, status FROM "
                 "ops.load_audit ORDER BY load_id") == [(*files["counts"], "success")] * 2  # fmt: skip
    assert query(warehouse.dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'staging'") == [(0,)]
    [(raw,)] = query(warehouse.dsn, "SELECT raw_record FROM ops.rejected_rows WHERE reason = 'bad_type:amount'")
    assert json.loads(raw) == {**sale(2002, amount="12.5O")}


@pytest.mark.integration
def test_a_clean_day_takes_the_direct_path_and_a_corrupt_file_fails_naming_it(warehouse, tmp_path, caplog):
    import logging

    from acme_pipelines.backends import load_partition
    from conftest import query, table_checksum

    caplog.set_level(logging.INFO, logger="acme_pipelines.landing_load")
    day_file(tmp_path / "v1", [sale(i) for i in range(1, 201)])
    add_fx(warehouse)
    counts = load_partition(warehouse, POS, tmp_path / "v1", DAY, audit(), max_reject_ratio=0.01).counts
    assert counted(counts) == (200, 200, 0, 0)
    assert any("published 200 rows directly" in r.message for r in caplog.records)
    before = table_checksum(warehouse.dsn, POS.target, "sale_id")
    day_file(tmp_path / "v2", [sale(i, quantity=5) for i in range(1, 5001)], "a.sqlite")  # good, read first
    bad = _corrupt(day_file(tmp_path / "v2", [sale(i) for i in range(6000, 9000)], "b.sqlite"))
    with pytest.raises(SourceFileError, match="cannot be read as a SQLite database") as raised:
        load_partition(warehouse, POS, tmp_path / "v2", DAY, audit("run-2"), max_reject_ratio=0.01)
    assert str(bad) in str(raised.value)
    assert table_checksum(warehouse.dsn, POS.target, "sale_id") == before, "nothing of the day was published"
    assert query(warehouse.dsn, "SELECT count(*) FROM ops.load_audit WHERE run_id = 'run-2'") == [(0,)]


@pytest.mark.integration
def test_a_day_loads_from_s3(warehouse, tmp_path, s3_server, s3_bucket, monkeypatch):
    """SQLite reads local files: an object on S3 is copied to a temporary file, read, and removed."""
    from airflow.sdk import ObjectStoragePath

    from acme_pipelines.backends import load_partition
    from conftest import query

    files = a_day(tmp_path / "local")
    client = s3_server.client()
    for path in (files["first"], files["second"]):
        client.upload_file(str(path), s3_bucket, f"landing/pos/dt={DAY}/{path.name}")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", s3_server.connection_uri())
    add_fx(warehouse)
    root = ObjectStoragePath(f"s3://aws_test@{s3_bucket}/landing")
    counts = load_partition(warehouse, POS, root, DAY, audit(), max_reject_ratio=0.01).counts
    assert counted(counts) == files["counts"]
    [(locator,)] = query(warehouse.dsn, "SELECT locator FROM ops.rejected_rows WHERE reason = 'missing:sold_at'")
    assert locator.startswith("s3://")
    assert locator.endswith(f"{s3_bucket}/landing/pos/dt={DAY}/a-sales.sqlite:503")


@pytest.mark.integration
def test_a_day_loads_into_snowflake_as_into_postgres(fakesnow_server, tmp_path, monkeypatch):
    import snowflake.connector

    from acme_localdev.warehouse_compare import fakesnow_connection
    from acme_pipelines.migrations import upgrade
    from acme_pipelines.snowflake_loads import load_partition
    from acme_pipelines.warehouse_hooks import warehouse_hook

    database = f"POS_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", fakesnow_connection(fakesnow_server, database))
    hook = warehouse_hook("warehouse")
    upgrade(hook)
    conn = snowflake.connector.connect(**fakesnow_server, database=database)
    try:
        cur = conn.cursor()
        for code, rate in (("USD", 1.0), ("EUR", 0.8), ("GBP", 0.5)):
            cur.execute("INSERT INTO core.fx_rates VALUES (%s, %s, %s, 'fx', CURRENT_TIMESTAMP())", (DAY, code, rate))
        files = a_day(tmp_path)
        for run_id in ("run-1", "run-2"):
            result = load_partition(hook, POS, tmp_path, DAY, audit(run_id), max_reject_ratio=0.01, batch_rows=300)
            assert counted(result.counts) == files["counts"]
        cur.execute("SELECT COUNT(*), COUNT(DISTINCT sale_id), SUM(quantity) FROM core.fact_pos_sales")
        assert cur.fetchall() == [(1000, 1000, 2000)]
        cur.execute("SELECT amount, amount_usd FROM core.fact_pos_sales WHERE sale_id = 1")
        assert [(str(a), str(u)) for a, u in cur.fetchall()] == [("12.50", "15.63")]
        cur.execute("SELECT reason, COUNT(*) FROM ops.rejected_rows GROUP BY reason ORDER BY reason")
        assert cur.fetchall() == [(BAD_ENCODING, 1), ("bad_type:amount", 1), ("duplicate_key:sale_id", 1),
                                  ("missing:sold_at", 1), ("out_of_range:quantity", 1)]  # fmt: skip
    finally:
        conn.close()
