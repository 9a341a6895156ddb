# Two commands do all set-up on a fresh machine: `make run` (the demo) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist); each has its own PostgreSQL and Redis database (see tests/conftest.py).
TEST_WORKERS ?= 3

.PHONY: run test services browser bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## Serve the demo on http://127.0.0.1:5000 (SQLite under instance/, no Redis needed).
run: $(STAMP)
	env -u DATABASE_URL -u REDIS_URL $(FLASK) asthron init
	env -u DATABASE_URL -u REDIS_URL $(FLASK) asthron demo
	@echo "Admin: http://127.0.0.1:5000/login/"
	env -u DATABASE_URL -u REDIS_URL $(FLASK) run --host 127.0.0.1 --port 5000

## Run the whole suite on SQLite and PostgreSQL, jobs on Redis, browser tests in Chromium.
test: $(STAMP) services browser
	$(PY) -m pytest -n $(TEST_WORKERS)

services:
	bash scripts/ensure-services.sh

browser:
	bash scripts/ensure-chromium.sh

bench: $(STAMP) services
	$(PY) bench/audit_list.py

clean:
	rm -rf $(VENV) instance .pytest_cache
