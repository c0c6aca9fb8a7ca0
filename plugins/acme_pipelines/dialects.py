"""SQL that differs between warehouse dialects, in one place: PostgreSQL is written, Snowflake is derived.

The warehouse DDL lives once, in the numbered migrations ``include/migrations/*.sql``
(PostgreSQL; applied by ``acme_pipelines.migrations``). ``warehouse_ddl("snowflake", file)``
transpiles one of them with SQLGlot and then applies the
rewrites Snowflake needs that SQLGlot leaves alone: ``jsonb`` becomes
``VARIANT``, ``bigserial`` an ``AUTOINCREMENT`` number, ``CHECK`` constraints are
dropped (Snowflake has none; the loaders check the rules), indexes and
``PARTITION BY`` are dropped (Snowflake has neither; its micro-partitions prune by
``dt``), and ``staging`` is
not created (the Snowflake writer stages in the target's schema).

The SQL files the operators run (``include/sql/**``) are PostgreSQL too;
``statements(text, "snowflake")`` transpiles them, keeping the ``%(name)s``
parameters the drivers bind. What a loader does differently on Snowflake
(staging, ranking, publishing) is in ``snowflake_loads``.
"""

from __future__ import annotations

from pathlib import Path

DIALECTS = ("postgres", "snowflake")


def warehouse_ddl(dialect: str, source: Path) -> list[str]:
    """The DDL statements of the migration file ``source`` for ``dialect``, in order. On Snowflake, index
    statements and the ``staging`` schema are left out; a statement SQLGlot cannot parse is an error rather
    than skipped."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown warehouse dialect {dialect!r}; one of {DIALECTS}")
    import sqlglot
    from sqlglot import exp

    parsed = [s for s in sqlglot.parse(source.read_text(), read="postgres") if s is not None]
    if dialect == "postgres":
        return [s.sql(dialect="postgres") for s in parsed]
    out = []
    for statement in parsed:
        if isinstance(statement, exp.Command):
            raise ValueError(f"{source}: SQLGlot cannot transpile {statement.sql()[:80]!r} to Snowflake")
        if isinstance(statement, exp.Create | exp.Drop) and statement.args.get("kind") == "INDEX":
            continue
        if statement.args.get("kind") == "SCHEMA" and statement.this.sql().lower() == "staging":
            continue
        out.append(_for_snowflake(statement).sql(dialect="snowflake", comments=False))
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
        if isinstance(node, exp.PartitionedByProperty):  # Snowflake's micro-partitions prune by dt themselves
            return None
        return node

    return statement.transform(rewrite)  # type: ignore[attr-defined]


def statements(text: str, dialect: str) -> list[str]:
    """The statements of a PostgreSQL SQL text in ``dialect``, comments dropped, ``%(name)s`` parameters kept."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown warehouse dialect {dialect!r}; one of {DIALECTS}")
    import sqlglot
    from sqlglot import exp

    def keep_parameter(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name:
            return exp.Var(this=f"%({node.name})s")
        return node

    parsed = [s for s in sqlglot.parse(text, read="postgres") if s is not None]
    if dialect == "snowflake":
        parsed = [s.transform(_interval_multiple).transform(_iso_date_part) for s in parsed]
    return [s.transform(keep_parameter).sql(dialect=dialect, comments=False) for s in parsed]


_ISO_PARTS = {"ISOYEAR": "YEAROFWEEKISO", "WEEK": "WEEKISO", "ISODOW": "DAYOFWEEKISO"}  # PostgreSQL's are ISO


def _iso_date_part(node: object) -> object:
    """``extract(isoyear|week|isodow FROM d)`` as Snowflake's ISO functions: its ``DATE_PART(WEEK, d)`` follows
    the session's week policy, and it has no ISOYEAR part (SQLGlot copies both as written)."""
    from sqlglot import exp

    if isinstance(node, exp.Extract) and node.this.name.upper() in _ISO_PARTS:
        return exp.Anonymous(this=_ISO_PARTS[node.this.name.upper()], expressions=[node.expression])
    return node


def _interval_multiple(node: object) -> object:
    """``t ± n * interval '1 <unit>'`` (PostgreSQL) as ``DATEADD(<unit>, ±n, t)``: Snowflake cannot multiply an
    interval, and SQLGlot copies the product as written."""
    from sqlglot import exp

    if not isinstance(node, exp.Add | exp.Sub) or not isinstance(node.expression, exp.Mul):
        return node
    product = node.expression
    interval, factor = (
        (product.expression, product.this) if isinstance(product.expression, exp.Interval) else
        (product.this, product.expression)
    )  # fmt: skip
    if not isinstance(interval, exp.Interval) or interval.this.name != "1" or not interval.unit:
        return node
    amount = factor if isinstance(node, exp.Add) else exp.Neg(this=exp.Paren(this=factor))
    return exp.DateAdd(this=node.this, expression=amount, unit=exp.Var(this=interval.unit.name))


def condition(text: str, dialect: str) -> str:
    """One PostgreSQL boolean expression (a contract check such as ``country !~ '^[A-Z]{2}$'``) in ``dialect``."""
    import sqlglot

    return sqlglot.transpile(text, read="postgres", write=dialect)[0]
