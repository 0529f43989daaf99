VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian's Chromium, for the report's browser tests (Playwright drives it; its own
# browser download is not used).
CHROMIUM := /usr/bin/chromium

.PHONY: install run test lint bench clean pg pg-stop

install: $(STAMP) $(CHROMIUM)

$(CHROMIUM):
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	mkdir -p runs
	$(BIN)/heygen-batch run jobs/demo.csv --template jobs/demo-template.json \
		--key-column contact_id --ledger runs/demo.db --sandbox --rate 20/s --no-progress
	$(BIN)/heygen-batch poll --ledger runs/demo.db --sandbox --until-done --rate 20/s
	$(BIN)/heygen-batch download --ledger runs/demo.db --to runs/videos --sandbox --rate 20/s \
		--what video,thumbnail --no-progress
	$(BIN)/heygen-batch export --ledger runs/demo.db -o runs/demo-results.csv
	$(BIN)/heygen-batch report --ledger runs/demo.db -o runs/demo-report.html

lint: install
	$(BIN)/ruff check engine tests
	$(BIN)/ruff format --check engine tests
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: install
	$(PY) -m tests.bench

# A throwaway PostgreSQL cluster for the PostgreSQL tests and a shell's experiments (Debian's
# postgresql, installed when missing): `eval "$$(make -s pg)"` exports its URL, which the
# tests then use instead of starting a cluster of their own; `make pg-stop` removes it.
pg: install
	@$(PY) -m tests.pg_cluster start | sed 's/^/export /'

pg-stop:
	@test -n "$$HEYGEN_TEST_PG_DIR" || { echo 'make pg-stop: run it in the shell that ran eval "$$(make -s pg)"' >&2; exit 2; }
	@$(PY) -m tests.pg_cluster stop "$$HEYGEN_TEST_PG_DIR"

clean:
	rm -rf $(VENV) runs .mypy_cache .pytest_cache .ruff_cache
