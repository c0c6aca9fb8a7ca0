"""SQL that differs between warehouse dialects, in one place: PostgreSQL is written, Snowflake is derived.

The warehouse DDL lives once, in ``include/sql/warehouse/schema.sql`` (PostgreSQL).
``warehouse_ddl("snowflake")`` transpiles it with SQLGlot and then applies the
rewrites Snowflake needs that SQLGlot leaves alone: ``jsonb`` becomes
``VARIANT``, ``bigserial`` an ``AUTOINCREMENT`` number, ``CHECK`` constraints are
dropped (Snowflake has none; the loaders check the rules), indexes are dropped
(Snowflake has none; large tables cluster by ``dt`` instead), and ``staging`` is
not created (the Snowflake writer stages in the target's schema).

Issue #7 (in progress): the DDL is derived and tested against fakesnow; the
loaders do not apply it yet.
"""

from __future__ import annotations

from pathlib import Path

from acme_pipelines.warehouse import SCHEMA_SQL

DIALECTS = ("postgres", "snowflake")


def warehouse_ddl(dialect: str, source: Path = SCHEMA_SQL) -> list[str]:
    """The warehouse's CREATE statements for ``dialect``, in order."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown warehouse dialect {dialect!r}; one of {DIALECTS}")
    import sqlglot
    from sqlglot import exp

    statements = sqlglot.parse(source.read_text(), read="postgres")
    if dialect == "postgres":
        return [s.sql(dialect="postgres") for s in statements if s is not None]
    out = []
    for statement in statements:
        if not isinstance(statement, exp.Create) or statement.args.get("kind") == "INDEX":
            continue
        if statement.args.get("kind") == "SCHEMA" and statement.this.sql().lower() == "staging":
            continue
        out.append(_for_snowflake(statement).sql(dialect="snowflake"))
    return out


def _for_snowflake(statement: object) -> object:
    from sqlglot import exp

    def rewrite(node: exp.Expression) -> exp.Expression | None:
        if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.JSONB:
            return exp.DataType.build("VARIANT", dialect="snowflake")
        if isinstance(node, exp.ColumnDef) and node.kind and node.kind.this == exp.DataType.Type.BIGSERIAL:
            column = node.copy()
            column.set("kind", exp.DataType.build("BIGINT", dialect="snowflake"))
            column.set("constraints", [exp.ColumnConstraint(kind=exp.AutoIncrementColumnConstraint())])
            column.append("constraints", exp.ColumnConstraint(kind=exp.PrimaryKeyColumnConstraint()))
            return column
        if isinstance(node, exp.ColumnConstraint) and isinstance(node.args.get("kind"), exp.CheckColumnConstraint):
            return None
        if isinstance(node, exp.CheckColumnConstraint):  # a table-level CHECK (...)
            return None
        return node

    return statement.transform(rewrite)  # type: ignore[attr-defined]
