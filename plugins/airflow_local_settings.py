"""Airflow's local settings hook: imported by every Airflow process when it initialises its settings.

Airflow imports ``airflow_local_settings`` from ``sys.path``; ``plugins/`` is
there in every deployment (``PYTHONPATH`` in the Dockerfile, compose and Helm
values; Airflow itself appends ``[core] plugins_folder`` before importing this),
so what is installed here is in place wherever the project's DAGs run: the
CLI (``airflow dags test``), scheduler, dag-processor, triggerer, workers, and
``dag.test()`` in tests and ``make demo``.

Keep it small: it runs while Airflow's settings are still initialising (import
nothing of Airflow here). Airflow copies every public name of this module into
``airflow.settings`` unless ``__all__`` says otherwise; a cluster policy
(``task_policy``, ``dag_policy``, ...) added here must be listed in ``__all__``.
plugins/.airflowignore keeps the plugin loader from importing it a second time.
"""

from acme_pipelines import upstream_fixes

__all__: list[str] = []

upstream_fixes.install()
