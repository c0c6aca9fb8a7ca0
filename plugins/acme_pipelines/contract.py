"""The sources of CONTRACT.md §1 as data: columns, rules, keys (app tables §1.1, landing §1.2, point-of-sale
files docs/contract.md §1.4).

Validation (``validation.py``) and the loaders read these specs; nothing else
hard-codes a column rule. Reasons recorded for a broken rule are
``<rule>:<column>`` (``bad_type:amount``, ``missing:paid_at``, ...) plus
``malformed_line``, ``bad_encoding`` (a record whose bytes are not UTF-8) and
``duplicate_key:<key>``. How files are read (byte-order mark, CRLF, quoting,
header-only files) is ``readers``'.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One contract column. ``kind`` selects the rule set in ``validation``.

    kinds: ``int``, ``decimal2`` (>= 0, at most 2 decimals), ``currency``
    (3 upper-case letters), ``enum``, ``timestamp`` (ISO 8601; no offset = UTC),
    ``text`` (non-empty), ``uuid``, ``json_object``. An ``int`` column may have
    bounds (``minimum``, ``maximum``): an integer outside them is ``out_of_range``.
    """

    name: str
    kind: str
    required: bool = True
    values: tuple[str, ...] = ()
    pg_type: str = "text"
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class SourceSpec:
    name: str  # the landing folder and the audit's source name
    file_format: str  # csv | jsonl | sqlite (the files' suffix)
    key: str
    columns: tuple[Column, ...]
    target: str  # the published table
    time_column: str  # the column whose day is the partition
    table: str | None = None  # sqlite: the table of each file that holds the rows

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def duplicate_reason(self) -> str:
        """The reject reason of a repeated key whose record differs from the first one."""
        return f"duplicate_key:{self.key}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


PAYMENTS = SourceSpec(
    name="payments",
    file_format="csv",
    key="payment_id",
    target="core.fact_payments",
    time_column="paid_at",
    columns=(
        Column("payment_id", "int", pg_type="bigint"),
        Column("order_id", "int", pg_type="bigint"),
        Column("amount", "decimal2", pg_type="numeric(12,2)"),
        Column("currency", "currency", pg_type="char(3)"),
        Column("method", "enum", values=("card", "paypal", "bank_transfer", "gift_card")),
        Column("status", "enum", values=("captured", "failed", "refunded")),
        Column("paid_at", "timestamp", pg_type="timestamptz"),
    ),
)

EVENTS = SourceSpec(
    name="events",
    file_format="jsonl",
    key="event_id",
    target="core.fact_events",
    time_column="occurred_at",
    columns=(
        Column("event_id", "uuid"),
        Column("event_type", "enum", values=("page_view", "add_to_cart", "checkout", "purchase")),
        Column("occurred_at", "timestamp", pg_type="timestamptz"),
        Column("session_id", "text"),
        Column("customer_id", "int", required=False, pg_type="bigint"),
        Column("product_id", "int", required=False, pg_type="bigint"),
        Column("properties", "json_object", required=False, pg_type="jsonb"),
    ),
)

# docs/contract.md §1.4: one SQLite database per day from the stores' point-of-sale system, rows in table sales.
POS = SourceSpec(
    name="pos",
    file_format="sqlite",
    key="sale_id",
    target="core.fact_pos_sales",
    time_column="sold_at",
    table="sales",
    columns=(
        Column("sale_id", "int", pg_type="bigint"),
        Column("store_id", "int", pg_type="bigint"),
        Column("product_id", "int", pg_type="bigint"),
        Column("quantity", "int", pg_type="int", minimum=1, maximum=2**31 - 1),
        Column("amount", "decimal2", pg_type="numeric(12,2)"),
        Column("currency", "currency", pg_type="char(3)"),
        Column("sold_at", "timestamp", pg_type="timestamptz"),
    ),
)

SOURCES = {spec.name: spec for spec in (PAYMENTS, EVENTS, POS)}


# -- §1.1 application database tables, as the hourly sync reads them ---------------------


@dataclass(frozen=True)
class SyncTable:
    source: str
    target: str
    key: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL type) as in CONTRACT.md §1.1
    checks: tuple[tuple[str, str], ...] = ()  # (SQL condition true for a bad row, reason)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


SYNC_TABLES = (
    SyncTable(
        "customers",
        "core.dim_customer",
        ("customer_id",),
        (
            ("customer_id", "bigint"),
            ("email", "text"),
            ("full_name", "text"),
            ("country", "text"),
            ("created_at", "timestamptz"),
            ("updated_at", "timestamptz"),
        ),
        (("country !~ '^[A-Z]{2}$'", "bad_format:country"),),
    ),
    SyncTable(
        "products",
        "core.dim_product",
        ("product_id",),
        (
            ("product_id", "bigint"),
            ("sku", "text"),
            ("name", "text"),
            ("category", "text"),
            ("unit_price", "numeric(12,2)"),
            ("currency", "text"),
            ("updated_at", "timestamptz"),
        ),
        (("currency !~ '^[A-Z]{3}$'", "bad_format:currency"), ("unit_price < 0", "out_of_range:unit_price")),
    ),
    SyncTable(
        "orders",
        "core.fact_orders",
        ("order_id",),
        (
            ("order_id", "bigint"),
            ("customer_id", "bigint"),
            ("status", "text"),
            ("currency", "text"),
            ("order_total", "numeric(12,2)"),
            ("created_at", "timestamptz"),
            ("updated_at", "timestamptz"),
        ),
        (
            ("status NOT IN ('placed', 'paid', 'shipped', 'cancelled', 'refunded')", "bad_enum:status"),
            ("currency !~ '^[A-Z]{3}$'", "bad_format:currency"),
        ),
    ),
    SyncTable(
        "order_items",
        "core.fact_order_items",
        ("order_id", "line_no"),
        (
            ("order_id", "bigint"),
            ("line_no", "int"),
            ("product_id", "bigint"),
            ("quantity", "int"),
            ("unit_price", "numeric(12,2)"),
            ("updated_at", "timestamptz"),
        ),
        (("quantity <= 0", "out_of_range:quantity"),),
    ),
)


SYNC_BY_SOURCE = {t.source: t for t in SYNC_TABLES}
