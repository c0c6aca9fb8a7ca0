"""Write a whole sample data set: app database, landing zone, FX rates, manifest.

    python -m acme_sample_data --landing-root data/landing \
        --app-dsn postgresql://postgres@127.0.0.1:5432/app \
        [--start 2026-11-01 --days 7 --scale 1.0 --bad-share 0.005 --seed 42]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from acme_sample_data import app_db, fx
from acme_sample_data.generator import (
    EVENT_DEFECTS,
    EXTRA_KINDS,
    PAYMENT_DEFECTS,
    POS_DEFECTS,
    POS_EXTRA_KINDS,
    GeneratorConfig,
    SampleData,
    SourceCounts,
    corrupt,
    event_clash,
    manifest_entry,
    payment_clash,
    pos_clash,
    write_csv_files,
    write_jsonl_files,
    write_sqlite_file,
)

log = logging.getLogger("acme_sample_data")

MANIFEST = "_generated/manifest.json"


@dataclass
class BuildResult:
    app_rows: dict[str, int]
    landing_rows: dict[str, int]
    manifest_path: Path
    seconds: float


def build(config: GeneratorConfig, landing_root: Path, app_dsn: str | None) -> BuildResult:
    """Generate everything for ``config``; the landing root is emptied first."""
    started = time.monotonic()
    data = SampleData(config)
    if landing_root.exists():
        shutil.rmtree(landing_root)
    landing_root.mkdir(parents=True)

    conn = None
    if app_dsn:
        dbname = urlsplit(app_dsn).path.lstrip("/")
        app_db.recreate_database(with_database(app_dsn, "postgres"), dbname)
        conn = psycopg2.connect(app_dsn)
    app_rows = {"customers": 0, "products": 0, "orders": 0, "order_items": 0}
    landing_rows = {"payments": 0, "events": 0, "pos": 0}
    manifest: dict[str, Any] = manifest_entry(config) | {"days": {}}
    try:
        if conn is not None:
            app_db.create_schema(conn)
            app_rows["customers"] = app_db.copy_rows(
                conn,
                "customers",
                ("customer_id", "email", "full_name", "country", "created_at", "updated_at"),
                data.customers(),
            )
            app_rows["products"] = app_db.copy_rows(
                conn,
                "products",
                ("product_id", "sku", "name", "category", "unit_price", "currency", "updated_at"),
                data.products(),
            )
        next_order, next_payment, next_sale = 1, 1, 1
        for day in config.day_list():
            orders = data.orders_for(day, next_order)
            next_order += len(orders)
            if conn is not None:
                app_rows["orders"] += app_db.copy_rows(
                    conn,
                    "orders",
                    (
                        "order_id",
                        "customer_id",
                        "status",
                        "currency",
                        "order_total",
                        "created_at",
                        "updated_at",
                    ),
                    (
                        (o.order_id, o.customer_id, o.status, o.currency, o.total, o.created_at, o.updated_at)
                        for o in orders
                    ),
                )
                app_rows["order_items"] += app_db.copy_rows(
                    conn,
                    "order_items",
                    ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
                    ((o.order_id, ln, p, q, u, o.created_at) for o in orders for ln, p, q, u in o.items),
                )
            payments, next_payment = data.payment_lines(day, orders, next_payment)
            events = data.event_lines(day, orders)
            sales, next_sale = data.pos_sales(day, next_sale)
            day_entry = {}
            for source, rows, defects, key, clash in (
                ("payments", payments, PAYMENT_DEFECTS, "payment_id", payment_clash),
                ("events", events, EVENT_DEFECTS, "event_id", event_clash),
                ("pos", sales, POS_DEFECTS, "sale_id", pos_clash),
            ):
                counts = SourceCounts()
                rng = data.rng("defects", source, day)
                extras = POS_EXTRA_KINDS if source == "pos" else EXTRA_KINDS
                groups = corrupt(rows, defects, key, clash, config.bad_share, rng, counts, extras)
                folder = landing_root / source / f"dt={day.isoformat()}"
                if source == "payments":
                    files = write_csv_files(folder, groups, rng)
                elif source == "events":
                    files = write_jsonl_files(folder, groups)
                else:
                    files = write_sqlite_file(folder, day, groups)
                landing_rows[source] += counts.rows_in
                day_entry[source] = counts.as_dict() | {"files": [f.name for f in files]}
            day_entry["fx"] = fx.response_for(day)
            manifest["days"][day.isoformat()] = day_entry
            log.info(
                "day %s: %d orders, %d payment lines, %d event lines, %d point-of-sale rows",
                day,
                len(orders),
                day_entry["payments"]["rows_in"],
                day_entry["events"]["rows_in"],
                day_entry["pos"]["rows_in"],
            )
            if conn is not None:
                conn.commit()
    finally:
        if conn is not None:
            conn.close()

    manifest_path = landing_root / MANIFEST
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return BuildResult(app_rows, landing_rows, manifest_path, time.monotonic() - started)


def with_database(dsn: str, dbname: str) -> str:
    """The same libpq URL, pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acme_sample_data", description=__doc__.splitlines()[0])
    parser.add_argument("--landing-root", type=Path, required=True, help="local folder for the landing zone")
    parser.add_argument("--app-dsn", help="PostgreSQL URL of the app database to (re)create; omit to skip")
    parser.add_argument("--start", type=date.fromisoformat, default=GeneratorConfig.start)
    parser.add_argument("--days", type=int, default=GeneratorConfig.days)
    parser.add_argument("--scale", type=float, default=GeneratorConfig.scale, help="1.0 = 1,000 orders/day")
    parser.add_argument("--bad-share", type=float, default=GeneratorConfig.bad_share)
    parser.add_argument("--seed", type=int, default=GeneratorConfig.seed)
    parser.add_argument("--incidents", action="store_true", help="order and payment-failure bursts, last day")
    parser.add_argument("--serve-fx", type=int, metavar="PORT", help="then serve the FX API on this port")
    args = parser.parse_args(argv)
    if not 0 <= args.bad_share < 1:
        parser.error("--bad-share must be in [0, 1)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = GeneratorConfig(args.start, args.days, args.scale, args.bad_share, args.seed, args.incidents)
    result = build(config, args.landing_root, args.app_dsn)
    print(json.dumps({"app": result.app_rows, "landing": result.landing_rows, "seconds": round(result.seconds, 1)}))
    if args.serve_fx:
        server = fx.FxServer(config.day_list(), args.serve_fx)
        print(f"FX API on {server.url}/rates?date=YYYY-MM-DD (Ctrl-C stops)")
        server.serve_forever()
    return 0
