"""Landing files as real systems write them (CONTRACT.md §1.2 and §2), plain and gzip.

Spreadsheet tools and payment processors write byte-order marks, CRLF line
ends and quoted fields; some files have a header and no rows; now and then a
row holds bytes that are not UTF-8. The reading of such files is the unit tier
(``readers.read_batches``, no services); their loads into PostgreSQL and into
Snowflake (the fakesnow server) are the integration tier.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from acme_pipelines.contract import EVENTS, PAYMENTS
from acme_pipelines.readers import (
    BAD_ENCODING,
    CSV_BLOCK_BYTES,
    MALFORMED_LINE,
    SourceFileError,
    _Utf8Checked,
    escape_bytes,
    read_batches,
)

BOM = codecs.BOM_UTF8
DAY = date(2026, 11, 1)
HEADER = b"payment_id,order_id,amount,currency,method,status,paid_at"
GZ = pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])


def payment(i: int, amount: str = "1.00") -> bytes:
    return b"%d,10,%s,USD,card,captured,2026-11-01T10:00:00Z" % (i, amount.encode())


def event(i: int) -> bytes:
    return json.dumps(
        {"event_id": str(uuid.UUID(int=i)), "event_type": "page_view", "occurred_at": "2026-11-01T10:00:00Z",
         "session_id": "s1", "customer_id": i, "product_id": None}
    ).encode()  # fmt: skip


def put(root: Path, source: str, name: str, data: bytes, gz: bool = False) -> Path:
    """``data`` as ``<root>/<source>/dt=DAY/<name>`` (gzip-compressed, with ``.gz`` added, when ``gz``)."""
    folder = root / source / f"dt={DAY.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{name}.gz" if gz else name)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def read_all(path: Path, spec=PAYMENTS, batch_rows: int = 20_000) -> tuple[list[dict], list[int], list[tuple]]:
    """Every row (contract columns), its line, and every record that is not a row as (line, reason, text)."""
    rows, lines, others = [], [], []
    for batch in read_batches(path, spec, batch_rows):
        rows += batch.columns.to_pylist()
        lines += batch.lines.to_pylist()
        others += [(m.line, m.reason, m.text) for m in batch.malformed]
    return rows, lines, others


def unescaped(text: str) -> bytes:
    """The bytes an escaped raw record (``escape_bytes``) stands for."""
    return codecs.escape_decode(text.encode("utf-8"))[0]


# -- reading (unit) ----------------------------------------------------------------------


@pytest.mark.unit
@GZ
def test_bom_crlf_and_quoted_fields_read_as_the_plain_file_does(tmp_path, gz):
    records = [
        (b'"payment_id","order_id",amount,currency,method,status,paid_at', None),
        (payment(1), 1),
        (b'"2","10","1.00","USD","card","captured","2026-11-01T10:00:00Z"', 1),  # every field quoted
        (b'3,10,1.00,USD,"ca""rd, x",captured,2026-11-01T10:00:00Z', 1),  # a quote and a comma inside quotes
        (b'4,10,1.00,USD,card,"capt\r\nured",2026-11-01T10:00:00Z', 2),  # a line break inside quotes
        (payment(5), 1),
    ]
    text = BOM + b"\r\n".join(r for r, _ in records) + b"\r\n"
    path = put(tmp_path, "payments", "part-000.csv", text, gz)
    rows, lines, others = read_all(path)
    assert others == []
    assert [r["payment_id"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[0] == rows[1] | {"payment_id": "1"}, "quoting changes nothing of a value"
    assert rows[2]["method"] == 'ca"rd, x'
    assert rows[3]["status"] == "capt\r\nured"
    assert lines == [2, 3, 4, 5, 7], "line numbers are the file's lines (the quoted line break takes one)"
    [raw] = next(read_batches(path, PAYMENTS)).raw_records().to_pylist()[2:3]
    assert raw == '3,10,1.00,USD,"ca""rd, x",captured,2026-11-01T10:00:00Z'  # RFC 4180 again


@pytest.mark.unit
@GZ
@pytest.mark.parametrize(
    "data",
    [HEADER + b"\n", HEADER, BOM + HEADER + b"\r\n", HEADER + b"\r\n\r\n\n"],
    ids=["lf", "no-line-end", "bom-crlf", "blank-lines"],
)
def test_a_header_and_no_rows_is_a_file_of_zero_rows(tmp_path, gz, data):
    path = put(tmp_path, "payments", "part-000.csv", data, gz)
    assert read_all(path) == ([], [], [])


@pytest.mark.unit
@GZ
def test_a_row_that_is_not_utf8_is_rejected_with_its_bytes_and_the_rest_of_the_file_reads(tmp_path, gz):
    lines_in = [payment(i) for i in range(1, 1001)]
    bad = {
        100: b"100,10,1.00,USD,card,captured,2026-11-01T10:00:00\xff\xfe",  # not UTF-8 at all
        500: b"500,10,1.00,EUR,carte bleue \xe9t\xe9,captured,2026-11-01T10:00:00Z",  # Latin-1, not UTF-8
        700: b"700;C:\\temp\\\xe9;x",  # wrong field count AND not UTF-8, with backslashes
        999: b"999,10,1.00,USD,card,captured,\xe2\x82",  # a sequence cut off
    }
    for number, line in bad.items():
        lines_in[number - 1] = line
    lines_in[299] = "300,10,1.00,USD,carte bleue été €,captured,2026-11-01T10:00:00Z".encode()  # valid UTF-8
    path = put(tmp_path, "payments", "part-000.csv", HEADER + b"\n" + b"\n".join(lines_in) + b"\n", gz)
    rows, lines, others = read_all(path, batch_rows=64)  # small reads: many read and batch boundaries
    assert [(line, reason) for line, reason, _ in others] == [(n + 1, BAD_ENCODING) for n in sorted(bad)]
    for (_, _, text), number in zip(others, sorted(bad), strict=True):
        assert unescaped(text) == bad[number], "the raw bytes are kept (escaped)"
    assert others[0][2] == "100,10,1.00,USD,card,captured,2026-11-01T10:00:00\\xff\\xfe"
    assert others[2][2] == "700;C:\\\\temp\\\\\\xe9;x"
    assert len(rows) == 1000 - len(bad)
    assert lines == [n + 1 for n in range(1, 1001) if n not in bad], "every other row, at its own line"
    assert rows[298]["method"] == "carte bleue été €"


@pytest.mark.unit
@pytest.mark.parametrize("every", [1, 3, 1000])
def test_a_large_file_with_many_rows_not_utf8_reads_to_its_end(tmp_path, every):
    """A Latin-1 export (every row), or rows here and there: stand-ins make a read longer than Arrow asked for,
    and what is left over must not become a block of its own (a record would span three blocks)."""
    lines_in = [payment(i).replace(b"card", b"c\xe9rd") if i % every == 0 else payment(i) for i in range(30_000)]
    path = put(tmp_path, "payments", "part-000.csv", HEADER + b"\n" + b"\n".join(lines_in) + b"\n")
    rows, lines, others = read_all(path)
    assert len(others) == len(range(0, 30_000, every))
    assert {reason for _, reason, _ in others} == {BAD_ENCODING}
    assert sorted([*lines, *(line for line, _, _ in others)]) == list(range(2, 30_002))
    assert len(rows) == 30_000 - len(others)


@pytest.mark.unit
@pytest.mark.parametrize("batch_rows", [1, 2, 3, 5, 64, 20_000])
def test_every_record_is_a_row_or_a_reject_exactly_once(tmp_path, batch_rows):
    """Rows, malformed lines, non-UTF-8 rows and quoted line breaks mixed, with reads and batches of every size."""
    records, expected = [], {}  # expected: first line of each record -> "row" or its reason
    line = 2
    for i in range(1, 121):
        kind = i % 6
        if kind == 1:
            record, what = b"%d;broken" % i, MALFORMED_LINE
        elif kind == 2:
            record, what = payment(i).replace(b"card", b"\xc0\xafcard"), BAD_ENCODING  # an overlong sequence
        elif kind == 3:
            record, what = payment(i).replace(b"card", b'"ca\r\nrd"'), "row"
        elif kind == 4:
            record, what = b'%d,"x\r\n\r\ny"' % i, MALFORMED_LINE  # malformed, spanning three lines
        else:
            record, what = payment(i).replace(b"card", "cärd".encode()), "row"
        records.append(record)
        expected[line] = what
        line += 1 + record.count(b"\n")
    path = put(tmp_path, "payments", "part-000.csv", HEADER + b"\r\n" + b"\r\n".join(records) + b"\r\n")
    _, lines, others = read_all(path, batch_rows=batch_rows)
    got = {**{line: "row" for line in lines}, **{line: reason for line, reason, _ in others}}
    assert len(lines) + len(others) == len(records), "no record twice, none lost"
    assert got == expected


@pytest.mark.unit
@pytest.mark.parametrize("shift", [-1, 0, 1])
def test_a_quoted_crlf_across_a_read_boundary_keeps_its_lf(tmp_path, shift):
    """Arrow's reader can drop the LF of a quoted CRLF when its block ends between CR and LF: the reads it gets
    never end with a CR."""
    filler = b"".join(payment(i) + b"\r\n" for i in range(1, 5000))
    filler = filler[: filler.rindex(b"\r\n", 0, CSV_BLOCK_BYTES - 200) + 2]
    head = b'9999,10,1.00,USD,"'
    pad = CSV_BLOCK_BYTES - len(filler) - len(head) - 1 + shift  # the CR at the read's last byte (shift 0)
    record = head + b"x" * pad + b'\r\ny",captured,2026-11-01T10:00:00Z\r\n'
    path = put(tmp_path, "payments", "part-000.csv", HEADER + b"\r\n" + filler + record + payment(10_000) + b"\r\n")
    rows, lines, _ = read_all(path)
    assert rows[-2]["method"] == "x" * pad + "\r\ny"
    assert lines[-2:] == [lines[-3] + 1, lines[-3] + 3]


@pytest.mark.unit
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 64])
def test_utf8_cut_by_a_read_is_handed_on_whole_and_unchanged(size):
    text = "a€b𝄞cé\r\n" * 50
    source = _Utf8Checked(io.BytesIO(text.encode()), "mem")
    out = b"".join(iter(lambda: source.read(size), b""))
    assert out == text.encode()
    assert not source.escaped


@pytest.mark.unit
def test_escaped_bytes_round_trip():
    for data in (b"plain", b"caf\xc3\xa9", b"\xff\xfe", b"C:\\x\\xff \xff\\", b"\\\\xff"):
        assert unescaped(escape_bytes(data)) == data
    assert escape_bytes(b"a\\b\xe9") == "a\\\\b\\xe9"


@pytest.mark.unit
def test_a_file_with_stand_in_characters_reads_them_as_text_unless_it_also_holds_invalid_bytes(tmp_path):
    """U+10FF00..U+10FFFF stand in for invalid bytes while a file is parsed: real ones are text, and a file with
    both cannot be told apart, so it fails rather than guessing."""
    pua = payment(1).replace(b"card", "card\U0010ff41".encode())
    path = put(tmp_path, "payments", "part-000.csv", HEADER + b"\n" + pua + b"\n" + payment(2) + b"\n")
    rows, _, others = read_all(path)
    assert (others, rows[0]["method"]) == ([], "card\U0010ff41")
    path.write_bytes(HEADER + b"\n" + pua + b"\n" + payment(2).replace(b"card", b"c\xffrd") + b"\n")
    with pytest.raises(SourceFileError, match="cannot tell apart"):
        read_all(path)


@pytest.mark.unit
@GZ
def test_events_with_bom_crlf_and_a_line_that_is_not_utf8(tmp_path, gz):
    bad = event(2)[:-2] + b'\xe9"}'
    data = BOM + b"\r\n".join([event(1), bad, b"", event(3)]) + b"\r\n"
    path = put(tmp_path, "events", "part-000.jsonl", data, gz)
    rows, lines, others = read_all(path, EVENTS)
    assert [r["customer_id"] for r in rows] == ["1", "3"], "the first line is read despite the byte-order mark"
    assert lines == [1, 4]
    assert [(line, reason) for line, reason, _ in others] == [(2, BAD_ENCODING)]
    assert unescaped(others[0][2]) == bad


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "data"),
    [("part-000.jsonl", b""), ("part-000.jsonl.gz", gzip.compress(b"", mtime=0))],
    ids=["plain", "gzip"],  # ids that do not change with the clock (pytest-xdist compares the processes' collections)
)
def test_an_empty_events_file_is_a_file_of_zero_rows(tmp_path, name, data):
    path = put(tmp_path, "events", name, data)
    assert read_all(path, EVENTS) == ([], [], [])


TRUNCATED_CSV = gzip.compress(HEADER + b"\n" + b"\n".join(payment(i) for i in range(1, 20_000)))[:-2000]
TRUNCATED_JSONL = gzip.compress(b"\n".join(event(i) for i in range(1, 20_000)))[:-2000]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("source", "name", "data", "message"),
    [
        pytest.param("payments", "part-000.csv", b"", "empty file, no header row", id="zero-byte"),
        pytest.param("payments", "part-000.csv", BOM, "empty file, no header row", id="bom-only"),
        pytest.param("payments", "part-000.csv", b"\r\n" + payment(1), "no header row", id="blank-header"),
        pytest.param(
            "payments",
            "part-000.csv",
            HEADER.replace(b"amount", b"amo\xfcnt") + b"\n",
            "no readable header row",
            id="header-not-utf8",
        ),
        pytest.param("payments", "part-000.csv.gz", b"", "not gzip data", id="zero-byte-gz"),
        pytest.param(
            "payments", "part-000.csv.gz", TRUNCATED_CSV, "cannot be read: Compressed file ended", id="truncated-gz"
        ),
        pytest.param("events", "part-000.jsonl.gz", b"", "not gzip data", id="events-zero-byte-gz"),
        pytest.param(
            "events",
            "part-000.jsonl.gz",
            TRUNCATED_JSONL,
            "cannot be read: Compressed file ended",
            id="events-truncated-gz",
        ),
    ],
)
def test_a_file_that_cannot_be_read_fails_naming_it(tmp_path, source, name, data, message):
    path = put(tmp_path, source, name, data)
    with pytest.raises(SourceFileError, match=message) as raised:
        read_all(path, PAYMENTS if source == "payments" else EVENTS)
    assert str(raised.value).startswith(f"{path}: ")


# -- loads (integration): the issue's day, on PostgreSQL and on Snowflake -------------------------


def issue_day(root: Path, gz: bool) -> dict:
    """The day of the issue, as files: a spreadsheet export (BOM, CRLF, quoted), a header-only file and a
    processor's file of 1,000 rows with one not UTF-8; the events likewise. What each load must count."""
    export = b"\r\n".join(
        [BOM + b'"payment_id","order_id","amount","currency","method","status","paid_at"',
         b'1,10,"12.50",EUR,card,captured,"2026-11-01T09:00:00+01:00"', b'"2","11","3.00","GBP","paypal","refunded",'
         b'"2026-11-01 10:00:00"', b""]
    )  # fmt: skip
    processor = [payment(i) for i in range(1000, 2000)]
    processor[499] = b"1499,10,1.00,USD,card,captured,2026-11-01T10:00:00\xff"
    events = [event(i) for i in range(1, 101)]
    events[41] = events[41].replace(b"page_view", b"page_vi\xe9w")
    paths = {
        "export": put(root, "payments", "part-000.csv", export, gz),
        "header_only": put(root, "payments", "part-001.csv", BOM + HEADER + b"\r\n", gz),
        "processor": put(root, "payments", "part-002.csv", HEADER + b"\n" + b"\n".join(processor) + b"\n", gz),
        "events": put(root, "events", "part-000.jsonl", BOM + b"\r\n".join(events) + b"\r\n", gz),
        "empty_events": put(root, "events", "part-001.jsonl", b"", False),
    }
    return {
        "paths": paths,
        "payments": {"counts": (1002, 1001, 1, 0), "reject": (f"{paths['processor']}:501", processor[499])},
        "events": {"counts": (100, 99, 1, 0), "reject": (f"{paths['events']}:42", events[41])},
    }


def audit(source: str, run_id: str = "run-1"):
    from acme_pipelines.accounting import AuditEntry

    target = "core.fact_payments" if source == "payments" else "core.fact_events"
    return AuditEntry("test", "load", run_id, f"landing:{source}", target, DAY.isoformat(), datetime.now(UTC))


def counted(counts) -> tuple[int, int, int, int]:
    return counts.rows_in, counts.rows_loaded, counts.rows_rejected, counts.rows_duplicate


def add_fx_postgres(hook) -> None:
    with hook.scoped_connection() as conn, conn.cursor() as cur:
        for code, rate in (("USD", 1.0), ("EUR", 0.8), ("GBP", 0.5)):
            cur.execute("INSERT INTO core.fx_rates VALUES (%s, %s, %s, 'fx', now())", (DAY, code, rate))
        conn.commit()


@pytest.mark.integration
@GZ
@pytest.mark.parametrize("path", ["direct", "staged"])
def test_the_issue_day_loads_into_postgres(warehouse, tmp_path, monkeypatch, gz, path):
    from acme_pipelines import landing_load
    from conftest import query

    if path == "staged":  # the path a day with a repeated key takes: the same rows and rejects
        monkeypatch.setattr(landing_load, "_load_direct", lambda *args, **kwargs: None)
    day = issue_day(tmp_path, gz)
    add_fx_postgres(warehouse)
    for source, spec in (("payments", PAYMENTS), ("events", EVENTS)):
        result = landing_load.load_partition(warehouse, spec, tmp_path, DAY, audit(source), max_reject_ratio=0.01)
        counts = result.counts
        assert counted(counts) == day[source]["counts"]
        assert counts.rejected_by_reason == {BAD_ENCODING: 1}
        [(locator, reason, raw)] = query(
            warehouse.dsn, "SELECT locator, reason, raw_record FROM ops.rejected_rows WHERE source = %s",
            (f"landing:{source}",),
        )  # fmt: skip
        assert (locator, reason, unescaped(raw)) == (day[source]["reject"][0], BAD_ENCODING, day[source]["reject"][1])
        assert query(
            warehouse.dsn,
            "SELECT rows_in, rows_loaded, rows_rejected, rows_duplicate, status FROM ops.load_audit WHERE source = %s",
            (f"landing:{source}",),
        ) == [(*day[source]["counts"], "success")]  # fmt: skip
    assert query(warehouse.dsn, "SELECT count(*) FROM core.fact_payments WHERE dt = %s", (DAY,)) == [(1001,)]
    assert query(warehouse.dsn, "SELECT count(*) FROM core.fact_events WHERE dt = %s", (DAY,)) == [(99,)]
    exported = query(
        warehouse.dsn, "SELECT payment_id, amount::text, paid_at, amount_usd::text FROM core.fact_payments "
        "WHERE payment_id < 1000 ORDER BY 1",
    )  # fmt: skip
    assert exported == [
        (1, "12.50", datetime(2026, 11, 1, 8, tzinfo=UTC), "15.63"),  # quoted, with an offset; 12.50 EUR / 0.8
        (2, "3.00", datetime(2026, 11, 1, 10, tzinfo=UTC), "6.00"),
    ]


@pytest.mark.integration
def test_a_day_of_header_only_files_publishes_zero_rows_on_postgres(warehouse, tmp_path):
    from acme_pipelines.backends import load_partition
    from conftest import query

    put(tmp_path, "payments", "part-000.csv", BOM + HEADER + b"\r\n")
    put(tmp_path, "payments", "part-001.csv", HEADER, gz=True)
    add_fx_postgres(warehouse)
    result = load_partition(warehouse, PAYMENTS, tmp_path, DAY, audit("payments"), max_reject_ratio=0.01)
    assert (counted(result.counts), result.files) == ((0, 0, 0, 0), ["part-000.csv", "part-001.csv.gz"])
    assert query(warehouse.dsn, "SELECT rows_in, rows_loaded, status FROM ops.load_audit") == [(0, 0, "success")]
    assert query(warehouse.dsn, "SELECT count(*) FROM core.fact_payments") == [(0,)]


@pytest.mark.integration
def test_a_truncated_events_gzip_beside_a_good_file_fails_naming_it_and_publishes_nothing(warehouse, tmp_path):
    from acme_pipelines.backends import load_partition
    from conftest import query

    put(tmp_path, "events", "part-000.jsonl", b"\n".join(event(i) for i in range(20_000, 25_000)), gz=True)
    bad = put(tmp_path, "events", "part-001.jsonl.gz", TRUNCATED_JSONL)
    with pytest.raises(SourceFileError, match="cannot be read") as raised:
        load_partition(warehouse, EVENTS, tmp_path, DAY, audit("events"), max_reject_ratio=0.01)
    assert str(bad) in str(raised.value)
    assert query(warehouse.dsn, "SELECT count(*) FROM core.fact_events") == [(0,)]
    assert query(warehouse.dsn, "SELECT count(*) FROM ops.load_audit WHERE status = 'success'") == [(0,)]


@pytest.mark.integration
def test_the_issue_day_loads_from_s3_and_a_zero_byte_gzip_there_fails_naming_it(
    warehouse, tmp_path, s3_server, s3_bucket, monkeypatch
):
    """The same files as objects on S3 (moto server), read through ObjectStoragePath and gunzipped on the fly."""
    from airflow.sdk import ObjectStoragePath

    from acme_pipelines.backends import load_partition
    from conftest import query

    day = issue_day(tmp_path / "local", gz=True)
    day2 = DAY.replace(day=2)  # and a day with a good file and a zero-byte gzip beside it
    folder2 = tmp_path / "local" / "payments" / f"dt={day2}"
    folder2.mkdir()
    (folder2 / "part-000.csv.gz").write_bytes(gzip.compress(HEADER + b"\n" + payment(7) + b"\n"))
    (folder2 / "part-001.csv.gz").write_bytes(b"")
    client = s3_server.client()  # every object is there before the first listing (fsspec caches listings)
    for path in (tmp_path / "local").rglob("*"):
        if path.is_file():
            client.upload_file(str(path), s3_bucket, f"landing/{path.relative_to(tmp_path / 'local')}")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", s3_server.connection_uri())
    root = ObjectStoragePath(f"s3://aws_test@{s3_bucket}/landing")
    add_fx_postgres(warehouse)
    for source, spec in (("payments", PAYMENTS), ("events", EVENTS)):
        counts = load_partition(warehouse, spec, root, DAY, audit(source), max_reject_ratio=0.01).counts
        assert counted(counts) == day[source]["counts"]
        [(locator, raw)] = query(
            warehouse.dsn, "SELECT locator, raw_record FROM ops.rejected_rows WHERE source = %s", (f"landing:{source}",)
        )
        local_locator, raw_bytes = day[source]["reject"]
        where, line = locator.rsplit(":", 1)
        assert where.startswith("s3://")
        assert where.endswith(local_locator.rsplit(":", 1)[0].split("/local/")[1])
        assert (line, unescaped(raw)) == (local_locator.rsplit(":", 1)[1], raw_bytes)
    with pytest.raises(SourceFileError, match="not gzip data") as raised:
        load_partition(warehouse, PAYMENTS, root, day2, audit("payments", "run-2"), max_reject_ratio=0.01)
    assert f"payments/dt={day2}/part-001.csv.gz" in str(raised.value)
    assert query(warehouse.dsn, "SELECT count(*) FROM core.fact_payments") == [(1001,)], "nothing of day 2"


@pytest.fixture(scope="module")
def snowflake(fakesnow_server):
    """A migrated warehouse database on the fakesnow server, the ``warehouse`` connection pointing at it."""
    import snowflake.connector

    from acme_localdev.warehouse_compare import fakesnow_connection
    from acme_pipelines.migrations import upgrade
    from acme_pipelines.warehouse_hooks import warehouse_hook

    database = f"ENC_{uuid.uuid4().hex[:8].upper()}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_WAREHOUSE", fakesnow_connection(fakesnow_server, database))
        hook = warehouse_hook("warehouse")
        assert hook.backend == "snowflake"
        upgrade(hook)
        conn = snowflake.connector.connect(**fakesnow_server, database=database)
        cur = conn.cursor()
        for code, rate in (("USD", 1.0), ("EUR", 0.8), ("GBP", 0.5)):
            cur.execute("INSERT INTO core.fx_rates VALUES (%s, %s, %s, 'fx', CURRENT_TIMESTAMP())", (DAY, code, rate))
        try:
            yield hook, cur
        finally:
            conn.close()


@pytest.mark.integration
@GZ
def test_the_issue_day_loads_into_snowflake(snowflake, tmp_path, gz):
    from acme_pipelines.snowflake_loads import load_partition

    hook, cur = snowflake
    day = issue_day(tmp_path, gz)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    for source, spec in (("payments", PAYMENTS), ("events", EVENTS)):
        counts = load_partition(
            hook, spec, tmp_path, DAY, audit(source, run_id), max_reject_ratio=0.01, batch_rows=300
        ).counts
        assert counted(counts) == day[source]["counts"]
        cur.execute(
            "SELECT locator, reason, raw_record FROM ops.rejected_rows WHERE source = %s AND run_id = %s",
            (f"landing:{source}", run_id),
        )
        [(locator, reason, raw)] = cur.fetchall()
        assert (locator, reason, unescaped(raw)) == (day[source]["reject"][0], BAD_ENCODING, day[source]["reject"][1])
        cur.execute("SELECT rows_in, rows_loaded, rows_rejected, status FROM ops.load_audit WHERE run_id = %s "
                    "AND source = %s", (run_id, f"landing:{source}"))  # fmt: skip
        assert cur.fetchall() == [(*day[source]["counts"][:3], "success")]
    cur.execute("SELECT COUNT(*) FROM core.fact_payments WHERE dt = %s", (DAY,))
    assert cur.fetchone()[0] == 1001
    cur.execute("SELECT COUNT(*) FROM core.fact_events WHERE dt = %s", (DAY,))
    assert cur.fetchone()[0] == 99
    cur.execute("SELECT payment_id, amount, amount_usd FROM core.fact_payments WHERE payment_id < 1000 ORDER BY 1")
    assert [(int(i), str(a), str(u)) for i, a, u in cur.fetchall()] == [(1, "12.50", "15.63"), (2, "3.00", "6.00")]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "data", "message"),
    [("part-001.csv", b"", "empty file, no header row"), ("part-001.csv.gz", TRUNCATED_CSV, "cannot be read")],
    ids=["zero-byte", "truncated-gz"],
)
def test_an_unreadable_file_fails_the_snowflake_load_naming_it_and_publishes_nothing(
    snowflake, tmp_path, name, data, message
):
    from acme_pipelines.snowflake_loads import load_partition

    hook, cur = snowflake
    cur.execute("SELECT COUNT(*), SUM(payment_id) FROM core.fact_payments")
    before = cur.fetchall()
    put(tmp_path, "payments", "part-000.csv", HEADER + b"\n" + b"\n".join(payment(i) for i in range(5000, 5100)))
    bad = put(tmp_path, "payments", name, data)
    with pytest.raises(SourceFileError, match=message) as raised:
        load_partition(hook, PAYMENTS, tmp_path, DAY, audit("payments", "run-bad"), max_reject_ratio=0.01,
                       batch_rows=20)  # fmt: skip
    assert str(bad) in str(raised.value)
    cur.execute("SELECT COUNT(*), SUM(payment_id) FROM core.fact_payments")
    assert cur.fetchall() == before
    cur.execute("SELECT COUNT(*) FROM ops.load_audit WHERE run_id = 'run-bad'")
    assert cur.fetchone()[0] == 0
