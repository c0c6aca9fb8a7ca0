# Airflow image for the acme pipelines: the official Airflow image plus the
# project's resolved dependencies (requirements.lock) and its code.
# Used by docker-compose.yaml (local full stack). Secrets are never baked in:
# they come from the environment at run time (.env locally, see .env.example).
# The tag must match apache-airflow in requirements.txt / requirements.lock
# (tests/test_deploy_files.py checks it).
FROM apache/airflow:3.3.2-python3.11

# The official image installs Python packages as the airflow user, into ~/.local.
USER airflow

# The lock pins apache-airflow==3.3.2 itself, the version this image ships.
COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock
RUN pip install --no-cache-dir -r /opt/airflow/requirements.lock

# Project code into AIRFLOW_HOME (/opt/airflow), where the default
# dags_folder and plugins_folder already point.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 airflow_settings.yaml /opt/airflow/airflow_settings.yaml

# Shared packages: acme_pipelines (plugins/), acme_sample_data and acme_localdev (include/).
ENV PYTHONPATH=/opt/airflow/plugins:/opt/airflow/include
# Arrow's allocator for the loads (acme_localdev.env.ARROW_MEMORY_POOL; README, "Benchmark"); compose
# and Helm run this image and set it nowhere else.
ENV ARROW_DEFAULT_MEMORY_POOL=jemalloc
