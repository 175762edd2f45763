# The README's commands. Each target sets up what it needs on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The test suite runs on the real services (override either from the environment).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: demo test bench lint screenshots system-packages bench-packages

# Debian packages the tests and benchmarks drive: Chromium (browser tests through
# Playwright), docker-compose (validates docker/compose.yaml), wrk (web load bench),
# spamassassin (scores a digest with its local rules, offline; no daemon is started).
SYSTEM_PACKAGES := chromium:/usr/bin/chromium docker-compose:docker-compose wrk:wrk spamassassin:spamassassin
system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
		command -v $${pair#*:} >/dev/null 2>&1 || missing="$$missing $${pair%%:*}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Only the benchmarks need Postfix: its smtp-sink is the mail provider of `make bench
# deliver`. Preseeded "No configuration", so no mail server is configured or started.
bench-packages:
	@if [ ! -x /usr/sbin/smtp-sink ]; then \
		echo "installing Debian packages: postfix"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		echo "postfix postfix/main_mailer_type select No configuration" | $$SUDO debconf-set-selections && \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py demo

# The suite runs every benchmark small (tests/test_benchmarks.py), so it needs their tools.
test: $(VENV)/.dev system-packages bench-packages
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	TEST_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
	$(BIN)/python -m pytest

# `make bench` runs every benchmark; `make bench NAME` runs one (e.g. `make bench match`).
BENCHES := $(filter-out bench,$(MAKECMDGOALS))
bench: $(VENV)/.dev system-packages bench-packages
	@for name in $(or $(BENCHES),$(patsubst bench/%.py,%,$(filter-out bench/__init__.py,$(wildcard bench/*.py)))); do \
		DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} TEST_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
		$(BIN)/python -m bench.$$name || exit 1; \
	done
ifneq ($(filter bench,$(MAKECMDGOALS)),)
$(BENCHES):
	@:
endif

# The README's pictures: home, settings, digest and dashboard at 375 and 1280 px.
screenshots: $(VENV)/.dev system-packages
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	TEST_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
	SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest -q tests/test_screenshots.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
