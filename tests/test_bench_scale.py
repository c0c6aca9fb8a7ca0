"""`make bench-scale`'s own logic: the task's time from its log, the sizes, the order of tasks, the verdicts."""

from __future__ import annotations

import pytest

from acme_bench.scale import Measure, Stage, label, parse_sizes, task_seconds, topological, verdicts

pytestmark = pytest.mark.unit

LOG = """\
2026-11-30T02:40:24.192620Z [info     ] apache-airflow 3.3.2: start-up
2026-11-30T02:40:27.993399Z [info     ] [DAG TEST] running task <TaskInstance: daily_etl.load_payments>
2026-11-30T02:40:35.764062Z [info     ] Task started                   [airflow.api_fastapi...]
Traceback lines and the task's own output carry no timestamp
2026-11-30T02:40:47.014062Z [info     ] payments 2026-11-01: published 1000000 rows directly in 10.9s
2026-11-30T02:40:48.264062Z [info     ] [DAG TEST] end task task_id=load_payments map_index=-1
"""


def test_task_seconds_is_from_task_started_to_end_task():
    assert task_seconds(LOG) == pytest.approx(12.5)


def test_task_seconds_is_none_when_the_log_does_not_tell():
    assert task_seconds("2026-11-30T02:40:24.192620Z [info] start-up only\n") is None
    assert task_seconds(LOG.replace("Task started", "Task queued")) is None


def test_sizes_parse_with_suffixes_sorted_and_distinct():
    assert parse_sizes("20M,1000000,5M") == (1_000_000, 5_000_000, 20_000_000)
    assert parse_sizes("100k, 500_000") == (100_000, 500_000)
    for bad in ("1000000", "5M,5M", "10,20"):
        with pytest.raises(ValueError, match="at least two"):
            parse_sizes(bad)


def test_labels():
    assert [label(n) for n in (1_000_000, 2_500_000, 20_000_000, 500_000)] == ["1M", "2.5M", "20M", "500k"]


def test_topological_keeps_the_file_order_among_ready_tasks():
    upstream = {
        "fx": set(),
        "payments": {"fx", "landing"},
        "events": {"landing"},
        "landing": set(),
        "revenue": {"payments"},
    }
    assert topological(upstream) == ["fx", "landing", "payments", "events", "revenue"]
    with pytest.raises(ValueError, match="cycle"):
        topological({"a": {"b"}, "b": {"a"}})


STAGES = [
    Stage("daily_etl", "load_payments", ("payments",), "load"),
    Stage("data_quality_check", "check_payments_columns", ("payments",), "check"),
]


def measure(seconds: float, rows: int, rss: float, ok: bool = True) -> Measure:
    return Measure(wall=seconds + 20, task=seconds, rows=rows, peak_rss_mb=rss, temp_bytes=0, temp_files=0,
                   disk_bytes=0, ok=ok)  # fmt: skip


def by_name(found):
    return {v.name: v for v in found}


def test_verdicts_compare_time_per_row_and_rss_of_largest_with_smallest():
    results = {
        1_000_000: {"load_payments": measure(10, 1_000_000, 400), "check_payments_columns": measure(2, 1_000_000, 350)},
        20_000_000: {
            "load_payments": measure(240, 20_000_000, 470),  # 1.2x per row, RSS 1.175x
            "check_payments_columns": measure(60, 20_000_000, 430),  # 1.5x per row, RSS 1.23x
        },
    }
    found = by_name(verdicts(STAGES, results))
    assert found["load_payments: time per row 20M/1M"].passed is True
    assert found["load_payments: time per row 20M/1M"].value == "1.20"
    assert found["load_payments: peak RSS 20M/1M"].passed is True
    assert found["check_payments_columns: time per row 20M/1M"].passed is False
    assert found["check_payments_columns: peak RSS 20M/1M"].passed is False
    assert found["quality checks vs loads at 20M"].passed is True  # 60 s < 240 s
    assert found["quality checks vs loads at 20M"].value == "60.0 s vs 240.0 s"


def test_a_failed_task_gives_no_verdict_and_checks_slower_than_loads_fail():
    results = {
        1_000_000: {"load_payments": measure(10, 1_000_000, 400), "check_payments_columns": measure(2, 1_000_000, 350)},
        5_000_000: {
            "load_payments": measure(50, 5_000_000, 400, ok=False),
            "check_payments_columns": measure(10, 5_000_000, 350),
        },
    }
    found = by_name(verdicts(STAGES, results))
    assert found["load_payments: time per row 5M/1M"].passed is None
    assert found["quality checks vs loads at 5M"].passed is None
    results[5_000_000]["load_payments"] = measure(5, 5_000_000, 400)
    assert by_name(verdicts(STAGES, results))["quality checks vs loads at 5M"].passed is False
