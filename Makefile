# Kehu — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo keeps its database and files inside the checkout.
export KEHU_DATA_DIR ?= $(CURDIR)/var
STAMP := $(VENV)/.installed
VENDOR := kehu/web/static/vendor/htmx.min.js

.PHONY: demo test install install-dev frontend serve bench bench-search lint messages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

$(VENDOR): frontend/package.json frontend/package-lock.json frontend/build.mjs
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

frontend: $(VENDOR)

install: $(STAMP) $(VENDOR)

# Demo: plain-http on localhost with a secret kept in the data directory.
DEMO_ENV = KEHU_HTTPS=0 KEHU_ALLOWED_HOSTS=127.0.0.1,localhost \
	KEHU_SECRET_KEY="$$(mkdir -p $(KEHU_DATA_DIR) && (test -s $(KEHU_DATA_DIR)/secret_key || $(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))' > $(KEHU_DATA_DIR)/secret_key) && cat $(KEHU_DATA_DIR)/secret_key)"

demo: install
	$(DEMO_ENV) $(BIN)/kehu migrate --no-input -v 0
	$(DEMO_ENV) $(BIN)/kehu demo
	$(DEMO_ENV) $(BIN)/kehu serve --bind 127.0.0.1:8000

serve: install
	$(DEMO_ENV) $(BIN)/kehu serve --bind 127.0.0.1:8000

# The whole suite, browser tests included. DATABASE_URL selects PostgreSQL; unset means SQLite.
test: install
	$(BIN)/ruff check kehu bench conftest.py
	KEHU_DEBUG=1 $(BIN)/python -m kehu.cli makemigrations --check --dry-run -v 0 || (echo "Model changes without a migration: run kehu makemigrations" && exit 1)
	$(BIN)/pytest -q -n $${KEHU_TEST_WORKERS:-2} $(PYTEST_ARGS)

# Every bench/bench_*.py (the customer search generates 1,000,000 customers per database: set
# KEHU_BENCH_CUSTOMERS=100000 for a quicker run); bench-search runs only the customer search.
bench: install
	$(BIN)/python bench/run.py

bench-search: install
	$(BIN)/python bench/bench_customer_search.py $(BENCH_ARGS)

messages: install
	$(BIN)/python -m kehu.core.i18n compile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var frontend/node_modules kehu/web/static/vendor
