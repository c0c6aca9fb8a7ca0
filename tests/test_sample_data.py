"""The sample-data generator: deterministic, sized by its flags, and honest about its defects.

The manifest's expected counts are checked against an independent reading of
the files it wrote, and the app database against the real PostgreSQL.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import sqlite3
import urllib.error
import urllib.request
from collections import Counter
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from acme_sample_data.build import MANIFEST, build
from acme_sample_data.fx import FxServer, rates_for
from acme_sample_data.generator import PAYMENT_COLUMNS, POS_COLUMNS, GeneratorConfig

SMALL = GeneratorConfig(start=date(2026, 11, 1), days=2, scale=0.2, bad_share=0.05, seed=7)


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def read_text(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")


def sqlite_rows(path: Path) -> tuple[tuple[str, ...], list[tuple]]:
    """The sales table's columns and rows, in rowid order."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.text_factory = bytes
    try:
        cursor = conn.execute("SELECT * FROM sales ORDER BY rowid")
        return tuple(d[0] for d in cursor.description), cursor.fetchall()
    finally:
        conn.close()


@pytest.mark.unit
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    build(SMALL, tmp_path / "a", None)
    build(SMALL, tmp_path / "b", None)
    other = GeneratorConfig(**{**SMALL.__dict__, "seed": 8})
    build(other, tmp_path / "c", None)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


@pytest.mark.unit
def test_scale_flag_sizes_the_data(tmp_path):
    small = build(SMALL, tmp_path / "s", None)
    bigger = build(GeneratorConfig(**{**SMALL.__dict__, "scale": 0.4}), tmp_path / "b", None)
    ratio = bigger.landing_rows["payments"] / small.landing_rows["payments"]
    assert 1.8 < ratio < 2.2


@pytest.mark.unit
def test_layout_follows_the_contract(tmp_path):
    build(SMALL, tmp_path, None)
    for day in ("2026-11-01", "2026-11-02"):
        payments = sorted((tmp_path / "payments" / f"dt={day}").iterdir())
        events = sorted((tmp_path / "events" / f"dt={day}").iterdir())
        assert [p.name for p in payments] == ["part-000.csv", "part-001.csv.gz"]
        assert [p.name for p in events] == ["part-000.jsonl", "part-001.jsonl.gz"]
        headers = [next(csv.reader(io.StringIO(read_text(p)))) for p in payments]
        assert all(sorted(h) == sorted(PAYMENT_COLUMNS) for h in headers)
        assert headers[0] != headers[1], "columns come in any order"
        [pos] = sorted((tmp_path / "pos" / f"dt={day}").iterdir())  # one point-of-sale database per day
        assert pos.name == f"sales-{day}.sqlite"
        assert sqlite_rows(pos)[0] == POS_COLUMNS


@pytest.mark.unit
def test_manifest_matches_an_independent_count_of_the_files(tmp_path):
    build(SMALL, tmp_path, None)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    for day, entry in manifest["days"].items():
        # payments: data lines, malformed (wrong field count), byte-identical repeats
        lines, malformed, repeats = 0, 0, 0
        for path in sorted((tmp_path / "payments" / f"dt={day}").iterdir()):
            seen: set[str] = set()
            for record in list(csv.reader(io.StringIO(read_text(path))))[1:]:
                lines += 1
                malformed += len(record) != len(PAYMENT_COLUMNS)
                text = "\x1f".join(record)
                repeats += text in seen
                seen.add(text)
        p = entry["payments"]
        assert p["rows_in"] == lines
        assert p["rejected_by_reason"].get("malformed_line", 0) == malformed
        assert p["rows_duplicate"] == repeats
        assert p["rows_in"] == p["rows_loaded"] + p["rows_rejected"] + p["rows_duplicate"]

        ev_lines = [
            line
            for path in sorted((tmp_path / "events" / f"dt={day}").iterdir())
            for line in read_text(path).splitlines()
        ]
        e = entry["events"]
        assert e["rows_in"] == len(ev_lines)
        not_json = sum(1 for line in ev_lines if not line.startswith("{"))
        assert e["rejected_by_reason"].get("malformed_line", 0) == not_json
        assert e["rows_duplicate"] == sum(n - 1 for n in Counter(ev_lines).values() if n > 1)
        assert e["rows_in"] == e["rows_loaded"] + e["rows_rejected"] + e["rows_duplicate"]

        # point of sale: rows of the sales table, identical rows, sale ids seen again with other values
        _, sales = sqlite_rows(tmp_path / "pos" / f"dt={day}" / f"sales-{day}.sqlite")
        s = entry["pos"]
        assert s["rows_in"] == len(sales)
        repeats = Counter(sales)
        assert s["rows_duplicate"] == sum(n - 1 for n in repeats.values() if n > 1)
        clashes = Counter(row[0] for row in repeats if isinstance(row[0], int))  # ("S-1" is a bad_type)
        assert s["rejected_by_reason"].get("duplicate_key:sale_id", 0) == sum(n - 1 for n in clashes.values())
        assert s["rows_in"] == s["rows_loaded"] + s["rows_rejected"] + s["rows_duplicate"]


@pytest.mark.unit
def test_bad_share_is_respected(tmp_path):
    build(SMALL, tmp_path, None)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    rejected = sum(d[s]["rows_rejected"] for d in manifest["days"].values() for s in ("payments", "events"))
    rows = sum(d[s]["rows_in"] for d in manifest["days"].values() for s in ("payments", "events"))
    assert 0.03 < rejected / rows < 0.08  # configured 0.05 (+ extra duplicate-key/malformed lines)
    clean = build(GeneratorConfig(**{**SMALL.__dict__, "bad_share": 0.0}), tmp_path / "clean", None)
    manifest = json.loads(clean.manifest_path.read_text())
    assert all(d[s]["rows_rejected"] == 0 for d in manifest["days"].values() for s in ("payments", "events"))


@pytest.mark.integration
def test_app_database_in_postgres(tmp_path, pg_database):
    result = build(SMALL, tmp_path, pg_database)
    conn = psycopg2.connect(pg_database)
    try:
        with conn.cursor() as cur:
            for table, expected in result.app_rows.items():
                cur.execute(f"SELECT count(*) FROM {table}")
                assert cur.fetchone()[0] == expected > 0
            cur.execute("SELECT count(*) FROM orders WHERE updated_at < created_at")
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT min(created_at)::date, max(created_at)::date FROM orders")
            assert cur.fetchone() == (date(2026, 11, 1), date(2026, 11, 2))
            cur.execute("SELECT order_id FROM orders")
            order_ids = {str(r[0]) for r in cur.fetchall()}
    finally:
        conn.close()
    # every well-formed payment points at an order that exists in the app database
    for path in sorted((tmp_path / "payments").rglob("part-*")):
        rows = list(csv.DictReader(io.StringIO(read_text(path))))
        referenced = {r["order_id"] for r in rows if r.get("order_id") and None not in r.values()}
        assert referenced <= order_ids


@pytest.mark.unit
def test_fx_api_answers_like_the_contract():
    days = [date(2026, 11, 1)]
    with FxServer(days) as server:
        with urllib.request.urlopen(f"{server.url}/rates?date=2026-11-01") as response:
            body = json.load(response)
        assert body == {"base": "USD", "date": "2026-11-01", "rates": rates_for(days[0])}
        assert body["rates"]["USD"] == 1.0
        assert 0.8 < body["rates"]["EUR"] < 1.0
        for query, status in (("date=2026-12-25", 404), ("date=someday", 400)):
            with pytest.raises(urllib.error.HTTPError) as raised:
                urllib.request.urlopen(f"{server.url}/rates?{query}")
            assert raised.value.code == status
