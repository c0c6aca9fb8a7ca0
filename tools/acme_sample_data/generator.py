"""Deterministic sample data for local runs and tests (CONTRACT.md §1).

One seed and one config give byte-identical output: the application database
(customers, products, orders, order items), the landing zone (payments CSV and
events JSONL per day, some gzipped, columns shuffled per file; the stores'
point-of-sale sales as one SQLite file per day) and FX rates.
A configurable share of landing rows breaks exactly one contract rule each;
``manifest.json`` records, per day and source, what a correct load must count
(rows in, exact duplicates, rejects by reason, loaded), so tests can check
row accounting against it.

Work is streamed day by day: memory does not grow with the number of days.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import os
import random
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from acme_sample_data import fx

COUNTRIES = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR", "CA": "USD"}
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov")
CATEGORIES = ("books", "electronics", "garden", "kitchen", "sports", "toys")
ORDER_STATUSES = (("placed", 5), ("paid", 25), ("shipped", 60), ("cancelled", 5), ("refunded", 5))
METHODS = ("card", "paypal", "bank_transfer", "gift_card")
PAYMENT_COLUMNS = ("payment_id", "order_id", "amount", "currency", "method", "status", "paid_at")
EVENT_TYPES = ("page_view", "add_to_cart", "checkout", "purchase")

# One contract rule broken per bad row, and the reason a correct load records.
PAYMENT_DEFECTS = (
    ("amount", "12.5O", "bad_type:amount"),
    ("amount", "-3.00", "out_of_range:amount"),
    ("amount", "10.125", "bad_precision:amount"),
    ("paid_at", "", "missing:paid_at"),
    ("paid_at", "31/12/2026 10:00", "bad_type:paid_at"),
    ("method", "bitcoin", "bad_enum:method"),
    ("status", "pending", "bad_enum:status"),
    ("currency", "usd", "bad_format:currency"),
    ("order_id", "", "missing:order_id"),
    ("payment_id", "P-1", "bad_type:payment_id"),
)
EVENT_DEFECTS = (
    ("event_type", "hover", "bad_enum:event_type"),
    ("session_id", "", "missing:session_id"),
    ("customer_id", "abc", "bad_type:customer_id"),
    ("occurred_at", "not-a-time", "bad_type:occurred_at"),
    ("event_id", None, "missing:event_id"),
    ("properties", "not-an-object", "bad_type:properties"),
)
INCIDENT_ORDER_FACTOR = 4
INCIDENT_ORDER_HOUR = 14
INCIDENT_FAILURE_HOURS = (18, 20)
INCIDENT_FAILURE_SHARE = 0.8

# Point-of-sale sales (docs/contract.md §1.4): each store sells in its currency.
STORE_CURRENCIES = {1: "USD", 2: "USD", 3: "GBP", 4: "EUR", 5: "EUR", 6: "EUR", 7: "USD", 8: "GBP"}
POS_COLUMNS = ("sale_id", "store_id", "register_id", "product_id", "quantity", "amount", "currency", "sold_at")
# The sales table as the stores' system writes it: SQLite types by affinity (amounts NUMERIC, so '12.30'
# is stored as the number 12.3), no key constraint, and a column the contract does not name (register_id).
POS_DDL = (
    "CREATE TABLE sales (sale_id INTEGER, store_id INTEGER, register_id INTEGER, product_id INTEGER, "
    "quantity INTEGER, amount NUMERIC, currency TEXT, sold_at TEXT)"
)
POS_DEFECTS = (
    ("quantity", 0, "out_of_range:quantity"),
    ("quantity", 1.5, "bad_type:quantity"),  # a REAL in an INTEGER column
    ("amount", "12.5O", "bad_type:amount"),  # not a number: stored as TEXT
    ("amount", "-3.00", "out_of_range:amount"),
    ("amount", "10.125", "bad_precision:amount"),
    ("sold_at", None, "missing:sold_at"),
    ("sold_at", 1762000000, "bad_type:sold_at"),  # a Unix time, not ISO 8601
    ("currency", "usd", "bad_format:currency"),
    ("currency", b"\xe2\x82", "bad_encoding"),  # TEXT whose bytes are not UTF-8
    ("store_id", None, "missing:store_id"),
    ("sale_id", "S-1", "bad_type:sale_id"),
    ("product_id", b"\x00\x07", "bad_type:product_id"),  # a BLOB
)

# Extra lines added on top of the defects: a repeated key, a byte-identical
# repeat (an exact duplicate: counted, not rejected) and an unparseable line.
EXTRA_KINDS = ("duplicate_key", "exact_duplicate", "malformed_line")
# A database table has no unparseable lines.
POS_EXTRA_KINDS = ("duplicate_key", "exact_duplicate")


@dataclass(frozen=True)
class GeneratorConfig:
    start: date = date(2026, 11, 1)
    days: int = 7
    scale: float = 1.0
    bad_share: float = 0.005
    seed: int = 42
    # Incidents on the last day, for anomaly detection to find: a burst of orders
    # 14:00-15:00 UTC (INCIDENT_ORDER_FACTOR times the hour's usual number) and
    # failed payment attempts 18:00-20:00 (most payments fail once before they succeed).
    incidents: bool = False

    @property
    def customers(self) -> int:
        return max(10, int(2_000 * self.scale))

    @property
    def products(self) -> int:
        return max(5, int(200 * self.scale))

    @property
    def orders_per_day(self) -> int:
        return max(5, int(1_000 * self.scale))

    @property
    def pos_sales_per_day(self) -> int:
        return max(5, int(1_000 * self.scale))

    def day_list(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


@dataclass
class SourceCounts:
    """What a correct load of one source file set must record (contract §2)."""

    rows_in: int = 0
    rows_duplicate: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def rows_loaded(self) -> int:
        return self.rows_in - self.rows_rejected - self.rows_duplicate

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "rows_duplicate": self.rows_duplicate,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
        }


@dataclass
class Order:
    order_id: int
    customer_id: int
    status: str
    currency: str
    total: Decimal
    created_at: datetime
    updated_at: datetime
    items: list[tuple[int, int, int, Decimal]]  # line_no, product_id, quantity, unit_price


class SampleData:
    """Generates the app tables and the landing files from one config."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self._products: list[tuple[int, Decimal]] = []
        # How often each customer orders: a few frequent buyers, a long tail of occasional ones
        # (log-normal), so recency and frequency carry signal for the churn model.
        activity = self.rng("activity")
        weights = [activity.lognormvariate(0.0, 1.2) for _ in range(config.customers)]
        self._customer_cum_weights = list(itertools.accumulate(weights))

    def rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(map(str, (self.config.seed, *parts))))

    # -- application database rows ------------------------------------------------
    def customers(self) -> Iterator[tuple[Any, ...]]:
        rng = self.rng("customers")
        first = datetime.combine(self.config.start, time(), UTC)
        end = first + timedelta(days=self.config.days)
        for cid in range(1, self.config.customers + 1):
            country = rng.choice(list(COUNTRIES))
            created = first - timedelta(days=rng.randint(1, 365), seconds=rng.randint(0, 86_399))
            # a fifth of customers change during the generated days (the hourly sync sees them)
            updated = created if rng.random() > 0.2 else first + (end - first) * rng.random()
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            if rng.random() < 0.05:
                name = f'{name}, "Jr."'  # commas and quotes travel through CSV/COPY
            yield cid, f"customer{cid}@example.com", name, country, created, updated

    def products(self) -> Iterator[tuple[Any, ...]]:
        rng = self.rng("products")
        first = datetime.combine(self.config.start, time(), UTC)
        self._products = []
        for pid in range(1, self.config.products + 1):
            price = Decimal(rng.randint(199, 49_999)) / 100
            self._products.append((pid, price))
            updated = first - timedelta(days=rng.randint(1, 90))
            yield pid, f"SKU-{pid:06d}", f"Product {pid}", rng.choice(CATEGORIES), price, "USD", updated

    def orders_for(self, day: date, first_order_id: int) -> list[Order]:
        """The orders created on ``day`` (needs ``products()`` consumed first)."""
        if not self._products:
            for _ in self.products():
                pass
        rng = self.rng("orders", day)
        statuses = [s for s, _ in ORDER_STATUSES]
        weights = [w for _, w in ORDER_STATUSES]
        midnight = datetime.combine(day, time(), UTC)
        orders = []
        for n in range(self.config.orders_per_day):
            customer = rng.choices(range(1, self.config.customers + 1), cum_weights=self._customer_cum_weights)[0]
            country_currency = COUNTRIES[list(COUNTRIES)[customer % len(COUNTRIES)]]
            created = midnight + timedelta(minutes=30 + rng.random() * 22 * 60)
            items = []
            for line_no in range(1, rng.randint(1, 4) + 1):
                pid, price = rng.choice(self._products)
                items.append((line_no, pid, rng.randint(1, 3), price))
            total = sum((q * p for _, _, q, p in items), Decimal("0.00"))
            status = rng.choices(statuses, weights)[0]
            updated = created if status in ("placed", "paid") else created + timedelta(hours=rng.uniform(1, 30))
            orders.append(Order(first_order_id + n, customer, status, country_currency, total, created, updated, items))
        if self.config.incidents and day == self.config.day_list()[-1]:
            burst = self.config.orders_per_day * INCIDENT_ORDER_FACTOR // 22  # orders come over 22 hours a day
            start = midnight + timedelta(hours=INCIDENT_ORDER_HOUR)
            for n in range(len(orders), len(orders) + burst):
                customer = rng.choices(range(1, self.config.customers + 1), cum_weights=self._customer_cum_weights)[0]
                pid, price = rng.choice(self._products)
                created = start + timedelta(seconds=rng.random() * 3600)
                currency = COUNTRIES[list(COUNTRIES)[customer % len(COUNTRIES)]]
                items = [(1, pid, 1, price)]
                orders.append(Order(first_order_id + n, customer, "paid", currency, price, created, created, items))
        return orders

    # -- landing zone ---------------------------------------------------------------
    def payment_lines(self, day: date, orders: list[Order], first_payment_id: int) -> tuple[list[dict], int]:
        """Payment rows for the day's orders (dicts of strings), and the next free id."""
        rng = self.rng("payments", day)
        rows = []
        pid = first_payment_id
        for order in orders:
            if order.status == "placed":
                continue
            attempts = ["failed"] if order.status == "cancelled" else []
            if rng.random() < self._failure_share(day, order.created_at) and order.status != "cancelled":
                attempts.append("failed")  # a failed try before the one that worked
            if order.status in ("paid", "shipped"):
                attempts.append("captured")
            elif order.status == "refunded":
                attempts.append("refunded")
            paid_at = order.created_at
            for status in attempts:
                paid_at += timedelta(minutes=rng.randint(1, 10))
                rows.append(
                    {
                        "payment_id": str(pid),
                        "order_id": str(order.order_id),
                        "amount": f"{order.total:.2f}",
                        "currency": order.currency,
                        "method": rng.choice(METHODS),
                        "status": status,
                        "paid_at": _timestamp_text(paid_at, rng),
                    }
                )
                pid += 1
        return rows, pid

    def _failure_share(self, day: date, created: datetime) -> float:
        first, last = INCIDENT_FAILURE_HOURS
        incident = self.config.incidents and day == self.config.day_list()[-1] and first <= created.hour < last
        return INCIDENT_FAILURE_SHARE if incident else 0.05

    def event_lines(self, day: date, orders: list[Order]) -> list[dict]:
        rng = self.rng("events", day)
        events = []
        for order in orders:
            session = uuid.UUID(int=rng.getrandbits(128), version=4).hex
            moment = order.created_at - timedelta(minutes=20)
            kinds = ["page_view"] * rng.randint(2, 5) + ["add_to_cart"] * rng.randint(1, 2) + ["checkout"]
            if order.status != "placed":
                kinds.append("purchase")
            for kind in kinds:
                moment += timedelta(seconds=rng.randint(5, 120))
                item = rng.choice(order.items)
                event: dict[str, Any] = {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "event_type": kind,
                    "occurred_at": _timestamp_text(moment, rng),
                    "session_id": session,
                    "customer_id": order.customer_id,
                    "product_id": item[1] if kind != "checkout" else None,
                }
                if kind == "purchase":
                    event["properties"] = {"order_id": order.order_id, "currency": order.currency}
                elif rng.random() < 0.3:
                    event["properties"] = {"referrer": rng.choice(["search", "email", "ads"])}
                events.append(event)
            # an anonymous visitor browsing
            events.append(
                {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "event_type": "page_view",
                    "occurred_at": _timestamp_text(moment + timedelta(minutes=1), rng),
                    "session_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
                    "customer_id": None,
                    "product_id": rng.choice(self._products)[0],
                }
            )
        return events

    def pos_sales(self, day: date, first_sale_id: int) -> tuple[list[dict], int]:
        """The stores' sales of ``day`` (dicts of the values the sales table stores), and the next free id."""
        if not self._products:
            for _ in self.products():
                pass
        rng = self.rng("pos", day)
        opening = datetime.combine(day, time(8), UTC)
        rows = []
        for n in range(self.config.pos_sales_per_day):
            store = rng.choice(list(STORE_CURRENCIES))
            pid, price = rng.choice(self._products)
            quantity = rng.choices((1, 2, 3, 4), (60, 25, 10, 5))[0]
            rows.append(
                {
                    "sale_id": first_sale_id + n,
                    "store_id": store,
                    "register_id": store * 10 + rng.randint(1, 3),
                    "product_id": pid,
                    "quantity": quantity,
                    "amount": f"{quantity * price:.2f}",
                    "currency": STORE_CURRENCIES[store],
                    "sold_at": _timestamp_text(opening + timedelta(seconds=rng.random() * 13 * 3600), rng),
                }
            )
        rows.sort(key=lambda r: r["sale_id"])
        return rows, first_sale_id + len(rows)


def _timestamp_text(moment: datetime, rng: random.Random) -> str:
    """ISO 8601 in the three spellings the contract allows: Z, an offset, or naive UTC."""
    style = rng.randrange(3)
    if style == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 1:
        return moment.astimezone(fx.CET).isoformat(timespec="seconds")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def corrupt(
    rows: list[dict],
    defects: tuple,
    key: str,
    clash: Callable[[dict], dict],
    share: float,
    rng: random.Random,
    counts: SourceCounts,
    extras: tuple[str, ...] = EXTRA_KINDS,
) -> list[list[dict | str]]:
    """Apply one defect to ``share`` of the rows and add extra duplicate/malformed lines.

    Returns one group of lines per source row (a row and the extra lines that
    follow it stay in the same file, so a repeat stays byte-identical). Lines
    are dicts to encode or raw strings (malformed). ``counts`` receives the
    expected accounting; ``clash`` makes a different row with the same key.
    """
    groups: list[list[dict | str]] = []
    for row in rows:
        group: list[dict | str] = []
        intact = rng.random() >= share
        if intact:
            group.append(row)
        else:
            column, value, reason = rng.choice(defects)
            bad = {k: v for k, v in row.items() if k != column}
            if value is not None:
                bad[column] = value
            group.append(bad)
            counts.rejected[reason] += 1
        if rng.random() < share / 3:
            kind = rng.choice(extras)
            if kind == "duplicate_key" and intact:
                group.append(clash(row))
                counts.rejected[f"duplicate_key:{key}"] += 1
            elif kind == "exact_duplicate" and intact:
                group.append(row)
                counts.rows_duplicate += 1
            elif kind == "malformed_line":
                group.append(f"!malformed line {rng.getrandbits(32):08x}; not a record")
                counts.rejected["malformed_line"] += 1
        counts.rows_in += len(group)
        groups.append(group)
    return groups


def payment_clash(row: dict) -> dict:
    return {**row, "method": METHODS[(METHODS.index(row["method"]) + 1) % len(METHODS)]}


def event_clash(row: dict) -> dict:
    return {**row, "session_id": row["session_id"] + "-replayed"}


def pos_clash(row: dict) -> dict:
    return {**row, "quantity": row["quantity"] + 1}


def write_sqlite_file(folder: Path, day: date, groups: list[list[dict | str]]) -> list[Path]:
    """One point-of-sale database for the day, rows in table ``sales`` in order; a key missing from a row is
    NULL; bytes in a TEXT column are stored as TEXT with exactly those bytes. Written under a temporary name
    and renamed: the landing zone never shows half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sales-{day.isoformat()}.sqlite"
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    text = {"currency", "sold_at"}  # TEXT columns: CAST stores bytes given for them as TEXT
    marks = ", ".join("CAST(? AS TEXT)" if c in text else "?" for c in POS_COLUMNS)
    conn = sqlite3.connect(partial)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute(POS_DDL)
        conn.executemany(
            f"INSERT INTO sales ({', '.join(POS_COLUMNS)}) VALUES ({marks})",
            ([line.get(c) for c in POS_COLUMNS] for group in groups for line in group if isinstance(line, dict)),
        )
        conn.commit()
    finally:
        conn.close()
    os.replace(partial, path)
    return [path]


def write_csv_files(folder: Path, groups: list[list[dict | str]], rng: random.Random, files: int = 2) -> list[Path]:
    """Payments CSV: header row, columns shuffled per file, last file gzipped."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, chunk in enumerate(_split(groups, files)):
        columns = list(PAYMENT_COLUMNS)
        rng.shuffle(columns)
        buf = io.StringIO(newline="")
        quoting = csv.QUOTE_ALL if index % 2 else csv.QUOTE_MINIMAL
        writer = csv.writer(buf, quoting=quoting, lineterminator="\r\n")
        writer.writerow(columns)
        for line in chunk:
            if isinstance(line, str):
                buf.write(line + "\r\n")  # a single field where seven are expected
            else:
                writer.writerow([line.get(c, "") for c in columns])
        gz = index == files - 1
        written.append(_write(folder / f"part-{index:03d}.csv{'.gz' if gz else ''}", buf.getvalue(), gz))
    return written


def write_jsonl_files(folder: Path, groups: list[list[dict | str]], files: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, chunk in enumerate(_split(groups, files)):
        text = "".join(
            (line if isinstance(line, str) else json.dumps(line, separators=(",", ":"))) + "\n" for line in chunk
        )
        gz = index == files - 1
        written.append(_write(folder / f"part-{index:03d}.jsonl{'.gz' if gz else ''}", text, gz))
    return written


def _split(groups: list[list], parts: int) -> list[list]:
    """``parts`` runs of lines; a group never straddles two files."""
    size = -(-len(groups) // parts) if groups else 0
    return [[line for group in groups[i * size : (i + 1) * size] for line in group] for i in range(parts)]


def _write(path: Path, text: str, gz: bool) -> Path:
    data = text.encode("utf-8")
    if gz:
        data = gzip.compress(data, mtime=0)  # mtime=0: same bytes on every run
    path.write_bytes(data)
    return path


def manifest_entry(config: GeneratorConfig) -> dict[str, Any]:
    return {"generator": asdict(config) | {"start": config.start.isoformat()}}
