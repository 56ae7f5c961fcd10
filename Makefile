# mailbot: `make run` sets everything up and starts the daemon; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := dovecot-imapd dovecot-lmtpd postfix openssl postgresql-15
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test test-unit test-e2e lint db-upgrade system-packages clean

$(STAMP): pyproject.toml requirements/nlp-model.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "spacy>=3.8,<3.9"
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/nlp-model.txt
	$(BIN)/python -m pip install --quiet -e ".[nlp,postgres,test]"
	touch $(STAMP)

install: $(STAMP)

db-upgrade: install
	$(BIN)/mailbot db upgrade

run: install db-upgrade
	$(BIN)/mailbot run

# Debian packages for the end-to-end test bed (Dovecot IMAP/LMTP and Postfix), when missing.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The whole suite on SQLite; then, on a PostgreSQL 15 the tests start themselves, the unit
# tests and the daemon's end-to-end tests (the fault and TLS tests do not depend on the database).
PG_TESTS := tests/unit tests/e2e/test_daemon_imap.py tests/e2e/test_advisors_and_followups.py
test: install system-packages
	$(BIN)/ruff check mailbot tests bench tools
	MAILBOT_TEST_DB=postgresql $(BIN)/python -m pytest -q $(PG_TESTS)
	$(BIN)/python -m pytest -q

test-unit: install
	$(BIN)/python -m pytest -q tests/unit

lint: install
	$(BIN)/ruff check mailbot tests bench tools
	$(BIN)/ruff format --check mailbot

clean:
	rm -rf $(VENV) var .pytest_cache
