# updraft's build, run and test entry points. Every target installs what it needs, idempotently.
SHELL := /bin/bash
CARGO ?= cargo
HOME_DIR ?= $(CURDIR)/.local
PYTHON ?= python3
# The venv is rebuilt only when the requirements' hash differs from the one stored in it.
COMPAT_VENV := .venv-compat
COMPAT_REQS := tests/compat/requirements.txt

.PHONY: build run test test-rust test-compat lint fmt fmt-check release windows windows-smoke bench clean

# build builds a debug binary.
build:
	$(CARGO) build

# run builds the release binary and starts `updraft standalone` on ./.local as UPDRAFT_HOME.
run:
	$(CARGO) build --release
	UPDRAFT_HOME=$(HOME_DIR) ./target/release/updraft standalone

# test runs every test: unit and integration tests, then the Airflow compatibility checks.
test: test-rust test-compat

# test-rust runs the Rust unit and integration tests.
test-rust:
	$(CARGO) test --locked

# test-compat checks that updraft reads DAG files as Apache Airflow with dag-factory does.
test-compat:
	@want=$$(sha256sum $(COMPAT_REQS) | cut -d' ' -f1); \
	if [ "$$(cat $(COMPAT_VENV)/requirements.sha256 2>/dev/null)" != "$$want" ]; then \
		echo "installing $(COMPAT_REQS) into $(COMPAT_VENV)"; \
		rm -rf $(COMPAT_VENV) && $(PYTHON) -m venv $(COMPAT_VENV) && \
		$(COMPAT_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(COMPAT_REQS) && \
		echo "$$want" > $(COMPAT_VENV)/requirements.sha256; \
	fi
	$(CARGO) build
	$(COMPAT_VENV)/bin/python tests/compat/check_dagfactory.py --updraft target/debug/updraft \
		src/example_dags tests/compat/dags

# lint runs clippy with warnings as errors.
lint:
	$(CARGO) clippy --all-targets -- -D warnings

# fmt formats the code; fmt-check fails on unformatted code.
fmt:
	$(CARGO) fmt --all
fmt-check:
	$(CARGO) fmt --all -- --check

# clean removes build outputs and ./.local.
clean:
	$(CARGO) clean
	rm -rf $(HOME_DIR)
