"""Pools that protect shared systems, and the priority scheme.

Pool sizes live in ``airflow_settings.yaml`` (they differ per environment);
the names live here so DAGs and settings cannot drift apart (a test checks
that every pool a task uses is defined in the settings file).
"""

from __future__ import annotations

from enum import IntEnum


class Pool:
    """Names of the Airflow pools, one per shared system."""

    APP_DB = "app_db"  # the OLTP source: never more than a few readers at once
    WAREHOUSE = "warehouse"  # loads, merges and heavy SQL in the warehouse
    FX_API = "fx_api"  # the rate-limited HTTP API
    OBJECT_STORAGE = "object_storage"  # landing zone and cold storage transfers
    CACHE = "cache"  # Redis writes
    ORCHESTRATION = "orchestration"  # tasks that only ask Airflow to start the next DAG's run

    ALL = (APP_DB, WAREHOUSE, FX_API, OBJECT_STORAGE, CACHE, ORCHESTRATION)


class Priority(IntEnum):
    """Absolute task priority weights: when slots are scarce, higher runs first.

    CRITICAL feeds everything downstream (ingestion); HIGH is user-facing
    (quality gate, reports); NORMAL is derived data; LOW can always wait.
    """

    LOW = 1
    NORMAL = 10
    HIGH = 50
    CRITICAL = 100
