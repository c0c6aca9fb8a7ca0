# The README's two commands are `make demo` and `make test`. Both (re)create
# .venv from requirements.lock and use the project-local AIRFLOW_HOME (.airflow/).
PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
STAMP := $(VENV)/.installed
RUN := PYTHONPATH=$(CURDIR)/plugins:$(CURDIR)/tools $(VENV)/bin/python -m acme_localdev

.PHONY: bench-cluster bench-scale help venv test test-fast test-integration test-e2e demo migrate lint lock clean env bench bench-memory impact lineage-sql images snowflake-compare up down audit

help:
	@echo "make demo   - generate sample data and run the pipelines end to end (local defaults)"
	@echo "make test   - run the test suite (every tier) against the local PostgreSQL and Redis"
	@echo "make test-fast - the unit tier only (pytest -m unit): no PostgreSQL or Redis needed, under a minute"
	@echo "make test-integration - the integration tier (services, dag.test, the airflow CLI)"
	@echo "make test-e2e - the e2e tier (a running scheduler/api-server stack, headless Chromium)"
	@echo "               (any test target: PYTEST_ARGS='...' is passed to pytest; tiers in docs/development.md)"
	@echo "make migrate - apply the warehouse's schema migrations (include/migrations) to the warehouse connection"
	@echo "make up     - start the deployed topology on .airflow/: api-server (UI on :8080), scheduler, dag-processor,"
	@echo "               triggerer, WORKERS=2 Celery workers (broker: the local Redis); EXECUTOR=local: no broker/workers"
	@echo "make down   - stop what make up started"
	@echo "make audit  - pip-audit of requirements.lock against PyPI's advisory data (docs/operations.md)"
	@echo "make env    - print the exports for this checkout's Airflow: eval \"\$$(make -s env)\""
	@echo "make lint   - ruff, and the layers of plugins/acme_pipelines (import-linter)"
	@echo "make bench  - time the payments load vs raw COPY, pandas, insert_rows on one generated file (N=2000000)"
	@echo "make bench-cluster - a 14-day backfill of daily_etl and its chain on the Celery cluster: wall time,"
	@echo "               the most tasks running/slots occupied per pool (metadata DB), whether a pool was exceeded"
	@echo "make bench-memory - peak RSS of the payments load at 1M and 5M rows"
	@echo "make bench-scale [SIZES=1000000,5000000,20000000] - generated days of that many payments (events and"
	@echo "               point-of-sale sales in proportion) through daily_etl and data_quality_check, task by task"
	@echo "               (airflow tasks test): time, rows/s, peak RSS, PostgreSQL temp/disk; exit 0 only if the targets hold"
	@echo "make impact TABLE=core.fact_payments [UPSTREAM=1] - what is downstream (upstream) of a table or file,"
	@echo "               from the recorded OpenLineage events; writes data/artifacts/lineage/lineage.{html,png}"
	@echo "make lineage-sql Q='SELECT ...' - SQL over the recorded OpenLineage events (views events, lineage_edges)"
	@echo "make images - README images from the last demo (lineage page via headless Chromium, dashboard previews)"
	@echo "make prometheus, make chromium - install Prometheus and promtool, headless Chromium (apt) if missing;"
	@echo "               make demo and the test targets do"
	@echo "make snowflake-compare [DAYS=7] - the ten DAGs into PostgreSQL and into Snowflake (fakesnow"
	@echo "               server), same DAG code; prints each table's row counts side by side and whether they match"
	@echo "make lock   - re-resolve requirements.txt into requirements.lock (runtime, the image) and"
	@echo "               requirements-dev.txt into requirements-dev.lock (the venv), constrained by it"
	@echo "make clean  - remove .venv, .airflow and generated data"

# The venv gets the dev lock (runtime + test/dev tools); the image gets requirements.lock alone.
$(STAMP): requirements.lock requirements-dev.lock
	@command -v $(PYTHON) >/dev/null || { echo "ERROR: $(PYTHON) not found: install Python 3.11 (or run make PYTHON=/path/to/python3.11)"; exit 1; }
	@echo "==> creating/refreshing $(VENV) from requirements-dev.lock"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@# --compile-bytecode: .pyc files written once here (about 15 s); without them, where PYTHONDONTWRITEBYTECODE
	@# is set (as on the CI machines), every Python process compiles each module it imports, about 3 s of CPU
	@# per Airflow process (docs/development.md)
	@$(VENV)/bin/uv pip sync --quiet --compile-bytecode --python $(VENV)/bin/python requirements-dev.lock
	@touch $(STAMP)
	@echo "==> $(VENV) ready"

venv: $(STAMP)

# The compose validator: dclint (Compose specification schema), pinned in
# tools/compose-validate/package-lock.json; tests/test_deploy_validation.py runs it. Without npm the
# install is skipped and that test skips (it says how to install Node.js and npm).
NODE_DIR := tools/compose-validate
NODE_STAMP := $(NODE_DIR)/node_modules/.installed
$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null; then \
		echo "==> installing the compose validator (npm ci in $(NODE_DIR))"; \
		npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "WARNING: npm not found (apt-get install nodejs npm): the compose validation test will skip"; \
	fi

# System tools the tests and the demo use, installed from Debian's packages when missing
# (tools/apt-install.sh; without apt or root it says what to install): Prometheus and promtool (make
# demo's dashboard previews, tests/test_dashboard_preview.py) and headless Chromium (the UI tests).
.PHONY: prometheus chromium
prometheus:
	@tools/apt-install.sh prometheus "make demo draws no dashboard previews and their tests skip" prometheus promtool
chromium:
	@tools/apt-install.sh chromium "the UI tests of tests/test_local_stack.py skip" chromium

test: $(STAMP) $(NODE_STAMP) prometheus chromium
	@$(RUN) test $(PYTEST_ARGS)

test-fast: $(STAMP) $(NODE_STAMP)
	@$(RUN) test-fast $(PYTEST_ARGS)

test-integration: $(STAMP) $(NODE_STAMP) prometheus
	@$(RUN) test-integration $(PYTEST_ARGS)

test-e2e: $(STAMP) $(NODE_STAMP) chromium
	@$(RUN) test-e2e $(PYTEST_ARGS)

demo: $(STAMP) prometheus
	@$(RUN) demo $(DEMO_ARGS)

env: $(STAMP)
	@$(RUN) env

migrate: $(STAMP)
	@$(RUN) migrate

bench: $(STAMP)
	@PYTHONPATH=$(CURDIR)/plugins:$(CURDIR)/tools $(VENV)/bin/python -m acme_bench --rows $(or $(N),2000000)

# not part of make test: a 14-day backfill of daily_etl and its chain on make up's cluster (tests/bench_cluster.py)
bench-cluster: $(STAMP)
	@TEST_PROCESSES=1 $(RUN) test tests/bench_cluster.py -s -q $(PYTEST_ARGS)

bench-memory: $(STAMP)
	@PYTHONPATH=$(CURDIR)/plugins:$(CURDIR)/tools $(VENV)/bin/python -m acme_bench --memory-scaling

# not part of make test: a day of 1M, 5M and 20M payments through the two DAGs (docs/benchmarks.md)
bench-scale: $(STAMP)
	@PYTHONPATH=$(CURDIR)/plugins:$(CURDIR)/tools $(VENV)/bin/python -m acme_bench.scale $(if $(SIZES),--sizes $(SIZES))

LINEAGE := AIRFLOW_HOME=$(CURDIR)/.airflow PYTHONPATH=$(CURDIR)/plugins:$(CURDIR)/tools $(VENV)/bin/python -m acme_lineage

impact: $(STAMP)
	@$(LINEAGE) impact $(or $(TABLE),core.fact_payments) $(if $(UPSTREAM),--upstream) --related-only \
		--html data/artifacts/lineage/lineage.html --png data/artifacts/lineage/lineage.png

lineage-sql: $(STAMP)
	@$(LINEAGE) sql "$(or $(Q),SELECT job_name, direction, dataset_name, count(*) AS events FROM lineage_edges GROUP BY ALL ORDER BY ALL)"

images: $(STAMP)
	@$(RUN) images

up: $(STAMP)
	@$(RUN) up $(if $(PORT),--port $(PORT)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(EXECUTOR),--executor $(EXECUTOR))

down: $(STAMP)
	@$(RUN) down

# PyPI's advisory data for every pinned package; triaged exceptions in deploy/pip-audit-ignore.txt
audit: $(STAMP)
	@$(RUN) audit

snowflake-compare: $(STAMP)
	@$(RUN) snowflake-compare --days $(or $(DAYS),7)

lint: $(STAMP)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@PYTHONPATH=$(CURDIR)/plugins $(VENV)/bin/lint-imports --no-cache

# Runtime lock first; the dev lock takes it as constraint, so the versions they share agree.
lock: $(STAMP)
	@$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --no-header requirements.txt -o requirements.lock
	@$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --no-header requirements-dev.txt \
		-c requirements.lock -o requirements-dev.lock

clean:
	rm -rf $(VENV) .airflow .airflow-test data artifacts
