"""The landing-zone sources of CONTRACT.md §1.2 as data: columns, rules, keys.

Validation (``validation.py``) and the loaders read these specs; nothing else
hard-codes a column rule. Reasons recorded for a broken rule are
``<rule>:<column>`` (``bad_type:amount``, ``missing:paid_at``, ...) plus
``malformed_line`` and ``duplicate_key:<key>``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One contract column. ``kind`` selects the rule set in ``validation``.

    kinds: ``int``, ``decimal2`` (>= 0, at most 2 decimals), ``currency``
    (3 upper-case letters), ``enum``, ``timestamp`` (ISO 8601; no offset = UTC),
    ``text`` (non-empty), ``uuid``, ``json_object``.
    """

    name: str
    kind: str
    required: bool = True
    values: tuple[str, ...] = ()
    pg_type: str = "text"


@dataclass(frozen=True)
class SourceSpec:
    name: str  # the landing folder and the audit's source name
    file_format: str  # csv | jsonl
    key: str
    columns: tuple[Column, ...]
    target: str  # the published table
    time_column: str  # the column whose day is the partition

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

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

SOURCES = {spec.name: spec for spec in (PAYMENTS, EVENTS)}
