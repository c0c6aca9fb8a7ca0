"""Command line: ``impact`` (what is downstream / upstream of a dataset, as text, HTML and PNG) and ``sql``.

python -m acme_lineage impact TARGET [--events PATH ...] [--upstream] [--html OUT.html] [--png OUT.png]
python -m acme_lineage sql "SELECT ..." [--events PATH ...]      # --list: the views, columns and examples

Exit codes: 0 answered, 2 the target matches no dataset (close names are listed),
1 bad input (no events file, nothing readable in it, an SQL error).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from acme_lineage.events import EventsError, default_events_path, read_events, resolve_paths

EXIT_OK, EXIT_BAD_INPUT, EXIT_NO_MATCH = 0, 1, 2

IMPACT_EPILOG = """\
TARGET is matched against dataset names, in this order: exact namespace/name
(postgres://127.0.0.1:5432/warehouse.core.fact_payments), full name
(warehouse.core.fact_payments), suffix on a dot or slash (core.fact_payments,
fact_payments, reports/dt=2026-11-22/report.html), then whole path segments
(landing/payments). A name in several databases matches all of them.

Lineage comes from COMPLETE events only, as a union over all recorded runs.
Partitioned paths are one node: dt=2026-11-01 -> dt=*, churn-20261122 -> churn-*,
part-000.csv -> part-*.csv.
"""


def _events_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events",
        type=Path,
        action="append",
        metavar="PATH",
        help=f"OpenLineage JSONL file or folder; repeatable (default: {default_events_path()})",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from acme_lineage.sql import EXAMPLES

    parser = argparse.ArgumentParser(prog="python -m acme_lineage", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    impact = commands.add_parser(
        "impact",
        help="what is downstream of a table or file (or, with --upstream, where it comes from)",
        epilog=IMPACT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    impact.add_argument("target", metavar="TARGET", help="a dataset: core.fact_payments, landing/payments, ...")
    _events_option(impact)
    impact.add_argument("--upstream", action="store_true", help="where TARGET comes from, instead of what it feeds")
    impact.add_argument("--html", type=Path, metavar="OUT.html", help="write a self-contained HTML page")
    impact.add_argument("--png", type=Path, metavar="OUT.png", help="write the graph as a 1600x1000 PNG")
    impact.add_argument(
        "--related-only", action="store_true", help="draw only the target and what it reaches, not the whole graph"
    )

    sql = commands.add_parser(
        "sql",
        help="query the events with SQL (DuckDB views events and lineage_edges)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sql.add_argument("query", nargs="?", help="SQL over the views events and lineage_edges")
    _events_option(sql)
    sql.add_argument("--list", action="store_true", help="show the views, their columns and example queries")
    sql.add_argument("--max-rows", type=int, default=200, help="print at most this many rows (default 200)")
    args = parser.parse_args(argv)
    if args.command == "sql" and not args.list and not args.query:
        sql.error("give a query, or --list to see the views and examples")
    return args


def impact(args: argparse.Namespace) -> int:
    from acme_lineage.graph import LineageGraph
    from acme_lineage.report import events_summary, format_reach, no_match_message

    log = read_events(args.events)
    for warning in log.warnings():
        print(warning, file=sys.stderr)
    if not log.runs:
        raise EventsError(
            f"no COMPLETE events with datasets in {', '.join(map(str, log.paths))} "
            f"({log.events} events, {log.malformed} malformed lines): nothing to build lineage from"
        )
    graph = LineageGraph.from_log(log)
    match = graph.match(args.target)
    if not match.datasets:
        print(no_match_message(args.target, graph.suggest(args.target)), file=sys.stderr)
        return EXIT_NO_MATCH
    reach = graph.reach(match.datasets, "upstream" if args.upstream else "downstream")
    print(format_reach(graph, match, reach, log))
    if args.html or args.png:
        from acme_lineage.diagram import build

        diagram = build(graph, reach, related_only=args.related_only)
        summary = events_summary(log)
        if args.html:
            from acme_lineage.render_html import write_html

            print(f"wrote {write_html(args.html, diagram, graph, match, reach, summary)}")
        if args.png:
            from acme_lineage.render_png import write_png

            headline = f"{len(reach.hops)} {reach.direction} dataset(s) through {len(reach.jobs)} job(s) · {summary}"
            print(f"wrote {write_png(args.png, diagram, headline)}")
    return EXIT_OK


def sql(args: argparse.Namespace) -> int:
    from acme_lineage.sql import describe, run_query

    paths = resolve_paths(args.events)
    if args.list:
        print(describe(paths))
        return EXIT_OK
    import duckdb

    try:
        text, _, malformed = run_query(paths, args.query, args.max_rows)
    except duckdb.Error as error:
        print(f"SQL error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if malformed:
        print(f"warning: skipped {malformed} malformed line(s) in {', '.join(map(str, paths))}", file=sys.stderr)
    print(text)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return impact(args) if args.command == "impact" else sql(args)
    except EventsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
