"""Shared building blocks of the ACME data platform's Airflow DAGs.

One package, imported by absolute name from the DAG files (``plugins/`` is on
``sys.path`` in every Airflow process). Modules:

- ``dag_defaults``: the one way a DAG is declared (owner, retries, alerts, pools).
- ``partitions``: which day/hour/window a run processes.
- ``alerting``: failure notifiers (Slack for all, PagerDuty for critical DAGs).
- ``assets``: the Airflow Assets the DAGs publish and are scheduled on.
- ``resources``: pool names and the priority scheme.
- ``settings_loader``: ``airflow_settings.yaml`` with the environment filled in, as the files
  Airflow's ``connections|variables|pools import`` read.
"""
