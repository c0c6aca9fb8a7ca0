# Airflow image for the acme pipelines: the official Airflow image plus the project's runtime
# dependencies (requirements.lock: no test or dev tools) and its runtime code.
# Used by docker-compose.yaml (local full stack) and the Helm values (deploy/helm). Secrets are never
# baked in: they come from the environment at run time (.env locally, see .env.example).
# The tag must match apache-airflow in requirements.txt / requirements.lock
# (tests/test_deploy_files.py checks it; tests/test_image_contents.py checks what goes in).
FROM apache/airflow:3.3.2-python3.11

# The official image installs Python packages as the airflow user, into ~/.local.
USER airflow

# The runtime lock pins apache-airflow==3.3.2 itself, the version this image ships. `pip check`
# fails the build when an installed package's requirements are not met.
COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock
RUN pip install --no-cache-dir -r /opt/airflow/requirements.lock && pip check

# Project code into AIRFLOW_HOME (/opt/airflow), where the default dags_folder and plugins_folder
# already point. include/ holds only what the DAGs, plugins and setup steps read at run time: SQL
# (include/sql), the warehouse migrations, the report template and the FAB users/config
# (include/auth). The development tooling (tools/: acme_localdev, acme_bench, acme_lineage,
# acme_sample_data) stays out; .dockerignore keeps it, caches and local state out of the context.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/sql/ /opt/airflow/include/sql/
COPY --chown=airflow:0 include/migrations/ /opt/airflow/include/migrations/
COPY --chown=airflow:0 include/templates/ /opt/airflow/include/templates/
COPY --chown=airflow:0 include/auth/ /opt/airflow/include/auth/
COPY --chown=airflow:0 airflow_settings.yaml /opt/airflow/airflow_settings.yaml

# acme_pipelines lives in plugins/ (include/ holds no Python package; tools/ is not in the image).
ENV PYTHONPATH=/opt/airflow/plugins
# Arrow's allocator for the loads (acme_localdev.env.ARROW_MEMORY_POOL; README, "Benchmark"); compose
# and Helm run this image and set it nowhere else.
ENV ARROW_DEFAULT_MEMORY_POOL=jemalloc
