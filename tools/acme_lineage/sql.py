"""Query the recorded events with SQL, in place: DuckDB views over the JSONL files, no import step.

``events`` has one row per parseable line (its raw JSON in ``raw``); ``lineage_edges``
one row per dataset a COMPLETE event names. The files are read with
``read_json_objects(format='newline_delimited', ignore_errors=true)`` and fields are
pulled out with JSON extraction, so facets that differ from event to event never
break schema inference, and a truncated line is a NULL row that the views drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXAMPLES = """\
examples:
  # how many datasets each job writes, busiest first
  python -m acme_lineage sql "SELECT job_name, count(DISTINCT dataset_name) AS outputs FROM lineage_edges
      WHERE direction = 'output' GROUP BY job_name ORDER BY outputs DESC"
  # the last COMPLETE of each DAG's tasks, and failures
  python -m acme_lineage sql "SELECT job_name, max(event_time) FILTER (WHERE event_type = 'COMPLETE') AS last_ok,
      count(*) FILTER (WHERE event_type = 'FAIL') AS fails FROM events GROUP BY job_name ORDER BY job_name"

views:
  events(event_time TIMESTAMPTZ, event_type, job_namespace, job_name, run_id, source_file, raw JSON)
  lineage_edges(event_time, job_namespace, job_name, run_id, direction 'input'|'output',
                dataset_namespace, dataset_name)   -- COMPLETE events only, like `impact`
"""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(paths: Sequence[Path]) -> list[str]:
    files = "[" + ", ".join(_quote(str(p)) for p in paths) + "]"
    source = f"read_json_objects({files}, format='newline_delimited', ignore_errors=true, filename=true)"
    events = f"""
        CREATE OR REPLACE VIEW events AS
        SELECT TRY_CAST(json ->> '$.eventTime' AS TIMESTAMPTZ) AS event_time,
               json ->> '$.eventType' AS event_type,
               json ->> '$.job.namespace' AS job_namespace,
               json ->> '$.job.name' AS job_name,
               json ->> '$.run.runId' AS run_id,
               filename AS source_file,
               json AS raw
        FROM {source}
        WHERE json_type(json) = 'OBJECT' AND (json ->> '$.job.name') IS NOT NULL
    """
    sides = []
    for direction, key in (("input", "inputs"), ("output", "outputs")):
        sides.append(f"""
            SELECT e.event_time, e.job_namespace, e.job_name, e.run_id, '{direction}' AS direction,
                   d ->> '$.namespace' AS dataset_namespace, d ->> '$.name' AS dataset_name
            FROM events AS e, unnest(json_extract(e.raw, '$.{key}[*]')) AS t(d)
            WHERE e.event_type = 'COMPLETE' AND (d ->> '$.name') IS NOT NULL
        """)
    edges = "CREATE OR REPLACE VIEW lineage_edges AS " + " UNION ALL ".join(sides)
    return [events, edges]


def connect(paths: Sequence[Path]) -> Any:
    import duckdb

    connection = duckdb.connect(":memory:")
    connection.execute("SET TimeZone = 'UTC'")
    for statement in view_sql(paths):
        connection.execute(statement)
    return connection


def malformed_lines(connection: Any, paths: Sequence[Path]) -> int:
    files = "[" + ", ".join(_quote(str(p)) for p in paths) + "]"
    return connection.execute(
        f"SELECT count(*) FROM read_json_objects({files}, format='newline_delimited', ignore_errors=true) "
        "WHERE json IS NULL OR json_type(json) <> 'OBJECT' OR (json ->> '$.job.name') IS NULL"
    ).fetchone()[0]


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("\n", "\\n")


def format_table(columns: list[str], rows: list[tuple[Any, ...]], max_width: int = 80) -> str:
    """Rows as aligned text columns; numbers right-aligned, long cells cut at ``max_width``."""
    cells = [[_cell(v) for v in row] for row in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    numeric = [
        bool(rows) and all(isinstance(r[i], int | float) or r[i] is None for r in rows) for i in range(len(columns))
    ]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def run_query(paths: Sequence[Path], query: str, max_rows: int = 200) -> tuple[str, int, int]:
    """The result table as text, the number of rows, and the malformed line count."""
    connection = connect(paths)
    try:
        bad = malformed_lines(connection, paths)
        cursor = connection.execute(query)
        if cursor.description is None:
            return "(no result)", 0, bad
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchmany(max_rows + 1)
    finally:
        connection.close()
    shown = rows[:max_rows]
    more = "; more not shown, see --max-rows" if len(rows) > max_rows else ""
    text = format_table(columns, shown) + f"\n({len(shown)} row{'s' if len(shown) != 1 else ''}{more})"
    return text, len(shown), bad


def describe(paths: Sequence[Path]) -> str:
    """The views and their columns, for ``sql --list``."""
    connection = connect(paths)
    parts = []
    for view in ("events", "lineage_edges"):
        columns = connection.execute(f"DESCRIBE {view}").fetchall()
        count = connection.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
        parts.append(f"{view} ({count} rows)")
        parts.extend(f"  {name:<18} {kind}" for name, kind, *_ in columns)
    connection.close()
    return "\n".join(parts) + "\n\n" + EXAMPLES
