# gridbot — `make run` starts the bot (or, with no token, the terminal sandbox), `make test` runs the whole suite on SQLite and PostgreSQL.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYBABEL := $(VENV)/bin/pybabel
LOCALES := bot/locales
PG_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

.PHONY: install catalogs extract run test test-sqlite test-postgresql migrate clean bench bench-quick

install: $(VENV)/.installed catalogs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Compile the gettext catalogs (.po -> .mo).
catalogs: $(VENV)/.installed
	$(PYBABEL) compile --use-fuzzy -d $(LOCALES) -D gridbot --statistics

# Re-extract user-facing strings into the template and merge them into both catalogs.
extract: $(VENV)/.installed
	$(PYBABEL) extract -F babel.cfg -k N_ -k t -k n_:1,2 --no-location --no-wrap --sort-output -o $(LOCALES)/gridbot.pot .
	$(PYBABEL) update --no-wrap -i $(LOCALES)/gridbot.pot -d $(LOCALES) -D gridbot --no-fuzzy-matching --ignore-obsolete

migrate: install
	$(VENV)/bin/gridbot db upgrade

# Without a bot token (neither in the environment nor in .env) `make run` opens the terminal
# sandbox with demo data instead; `gridbot run` itself always refuses to start without one.
run: install
	@if [ -z "$$TELEGRAM_BOT_TOKEN" ] && ! grep -Eqs '^[[:space:]]*(export[[:space:]]+)?TELEGRAM_BOT_TOKEN[[:space:]]*=[[:space:]]*["'"'"']?[^"'"'"'[:space:]#]' .env; then \
		echo "No TELEGRAM_BOT_TOKEN set: starting the terminal sandbox (gridbot console)."; \
		$(VENV)/bin/gridbot console; \
	else \
		$(VENV)/bin/gridbot run; \
	fi

# Both engines always run (each prints its counts); the target fails if either run failed.
test: install
	@status=0; \
	$(MAKE) --no-print-directory test-sqlite || status=1; \
	$(MAKE) --no-print-directory test-postgresql || status=1; \
	exit $$status

test-sqlite:
	@echo "=== gridbot test suite on SQLite ==="
	$(PY) -m pytest -p no:cacheprovider --db=sqlite -q -rs

test-postgresql:
	@echo "=== gridbot test suite on PostgreSQL ($(PG_URL)) ==="
	GRIDBOT_TEST_PG_URL=$(PG_URL) $(PY) -m pytest -p no:cacheprovider --db=postgresql -q -rs

# Benchmarks (bench/, issue 8): full size within 30 minutes on 2 cores; writes BENCHMARKS.md.
BENCH_ARGS ?=
bench: install
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m bench $(BENCH_ARGS)

bench-quick:
	$(MAKE) --no-print-directory bench BENCH_ARGS="--quick $(BENCH_ARGS)"

clean:
	rm -rf $(VENV) .pytest_cache $(LOCALES)/*/LC_MESSAGES/*.mo
