# updraft's build, run and test entry points. Every target installs what it needs, idempotently.
SHELL := /bin/bash
CARGO ?= cargo
HOME_DIR ?= $(CURDIR)/.local
PYTHON ?= python3
# The venv is rebuilt only when the requirements' hash differs from the one stored in it.
COMPAT_VENV := .venv-compat
COMPAT_REQS := tests/compat/requirements.txt
CLIENT_VENV := .venv-client
CLIENT_REQS := tests/client/requirements.txt
# npm ci runs only when the lockfile's hash differs from the one kept in node_modules.
UI_LOCK := tests/ui/package-lock.json
MUSL_TARGET := x86_64-unknown-linux-musl
WINDOWS_TARGET := x86_64-pc-windows-gnu
MUSL_BIN := target/$(MUSL_TARGET)/release/updraft
WINDOWS_EXE := target/$(WINDOWS_TARGET)/release/updraft.exe
# The Wine prefix for windows-smoke lives with the build outputs, so `make clean` removes it.
WINE_PREFIX := $(CURDIR)/target/wine
WINE_DLL := $(WINE_PREFIX)/drive_c/windows/system32/bcryptprimitives.dll
# Wine runs headless and quiet; mscoree and mshtml are off so no Mono or Gecko prompt appears.
WINE_ENV := env -u DISPLAY -u WAYLAND_DISPLAY WINEPREFIX=$(WINE_PREFIX) WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml='
# Root installs directly; anyone else goes through sudo.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# need_cmd installs Debian packages ($2) unless command $1 exists; apt-get update runs only then.
need_cmd = command -v $(1) >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2); }
# need_target adds a rustup target unless it is already installed.
need_target = rustup target list --installed | grep -qx '$(1)' || rustup target add $(1)
# need_component adds a rustup component (clippy, rustfmt) unless it is already installed.
need_component = rustup component list --installed | grep -q '^$(1)-' || rustup component add $(1)

# Airflow 3.3.2's own OpenAPI file, from its wheel on PyPI: the client sweep fuzzes with it too.
AIRFLOW_SPEC := target/airflow-spec/airflow/api_fastapi/core_api/openapi/v2-rest-api-generated.yaml

.PHONY: build run test test-rust test-compat test-client test-ui lint fmt fmt-check release windows windows-smoke bench bench-peers clean

# build builds a debug binary.
build:
	$(CARGO) build

# run builds the release binary and starts `updraft standalone` on ./.local as UPDRAFT_HOME.
run:
	$(CARGO) build --release
	UPDRAFT_HOME=$(HOME_DIR) ./target/release/updraft standalone

# test runs every test: unit and integration tests, the Airflow compatibility checks, the
# official client against a server, then the UI in a browser.
test: test-rust test-compat test-client test-ui

# test-rust runs the Rust unit and integration tests, and the vendored tiny_http's own unit tests.
# The Python task tests run the python3 on PATH (Debian's is installed if there is none).
test-rust:
	@$(call need_cmd,python3,python3)
	$(CARGO) test --locked
	$(CARGO) test --locked -p tiny_http --lib

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
		src/example_dags tests/compat/dags tests/compat/dagfactory-dev

# test-client drives a real server with the official Airflow Python client and fuzzes every route for 5xx.
test-client:
	@want=$$(sha256sum $(CLIENT_REQS) | cut -d' ' -f1); \
	if [ "$$(cat $(CLIENT_VENV)/requirements.sha256 2>/dev/null)" != "$$want" ]; then \
		echo "installing $(CLIENT_REQS) into $(CLIENT_VENV)"; \
		rm -rf $(CLIENT_VENV) && $(PYTHON) -m venv $(CLIENT_VENV) && \
		$(CLIENT_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(CLIENT_REQS) && \
		echo "$$want" > $(CLIENT_VENV)/requirements.sha256; \
	fi
	@test -f $(AIRFLOW_SPEC) || { mkdir -p target/airflow-spec && \
		$(CLIENT_VENV)/bin/pip download --quiet --no-deps apache-airflow-core==3.3.2 -d target/airflow-spec && \
		cd target/airflow-spec && $(PYTHON) -m zipfile -e apache_airflow_core-3.3.2-py3-none-any.whl . ; }
	$(CARGO) build
	AIRFLOW_SPEC=$(AIRFLOW_SPEC) tests/client/run.sh $(CLIENT_VENV)/bin/python target/debug/updraft
# test-ui drives the UI in Debian's chromium with playwright-core (pinned in tests/ui), at no prefix, /d12345 and /a/b.
test-ui:
	@$(call need_cmd,chromium,chromium)
	@$(call need_cmd,npm,nodejs npm)
	@want=$$(sha256sum $(UI_LOCK) | cut -d' ' -f1); \
	if [ "$$(cat tests/ui/node_modules/.lock.sha256 2>/dev/null)" != "$$want" ]; then \
		(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error) && echo "$$want" > tests/ui/node_modules/.lock.sha256; \
	fi
	$(CARGO) build
	cd tests/ui && CHROMIUM=$$(command -v chromium) UI_STAMP=$$(date -u +%Y-%m-%dT%H-%M-%SZ) node --test --test-concurrency=1 *.test.js

# lint fails on what review refuses: unformatted code, any clippy warning, and code that
# does not compile for Windows (checked, not linked; installing MinGW and the target if missing).
lint: fmt-check
	@$(call need_component,clippy)
	$(CARGO) clippy --all-targets --locked -- -D warnings
	@$(call need_cmd,x86_64-w64-mingw32-gcc,gcc-mingw-w64-x86-64-win32)
	@$(call need_target,$(WINDOWS_TARGET))
	$(CARGO) check --locked --target $(WINDOWS_TARGET) --all-targets

# fmt formats the code; fmt-check fails on unformatted code.
fmt:
	$(CARGO) fmt --all
fmt-check:
	@$(call need_component,rustfmt)
	$(CARGO) fmt --all -- --check

# release builds the static musl binary (--locked), installing musl-tools and the target if missing.
# It is linked with its symbol table, kept as updraft.syms (what `make bench` reads to say
# what each dependency costs), and stripped as the release profile strips the others.
# It links as a plain static executable, not a static PIE (.cargo/config.toml: ~1 MB less
# in relocations, at the price of a fixed load address for the binary's own image), with
# the release profile's opt-level "s" and the SQLite options in .cargo/config.toml.
release:
	@$(call need_cmd,musl-gcc,musl-tools)
	@$(call need_cmd,file,file)
	@$(call need_target,$(MUSL_TARGET))
	$(CARGO) build --release --locked --target $(MUSL_TARGET) --config 'profile.release.strip="debuginfo"'
	@if readelf -S $(MUSL_BIN) | grep -q '\.symtab'; then \
		cp $(MUSL_BIN) $(MUSL_BIN).syms && strip --strip-all $(MUSL_BIN); fi
	@stat -c '%n: %s bytes' $(MUSL_BIN) && file $(MUSL_BIN)

# bench builds the static musl binary as `make release` does (what Linux users run: the
# memory figures measure it), the glibc release binary (the speed figures: musl's malloc
# would measure itself) and the bare-server baseline, then prints the benchmark table (the
# 30-minute memory soak last) and writes bench/RESULTS.md; the table says which binary each row ran.
bench: release
	@$(call need_cmd,wrk,wrk)
	@$(call need_cmd,$(PYTHON),python3)
	$(CARGO) build --release --locked --bins --examples
	$(PYTHON) bench/bench.py --out bench/RESULTS.md

# bench-peers runs updraft beside its peers on this machine and prints one table of ratios
# (bench/peers.py): IronFlow from crates.io (installed under target/peers) and Apache
# Airflow 3.3.2 from PyPI (the venv test-compat uses), with the same DAG shapes (bench/peers/).
# Not part of `make test` or `make bench`. PEERS_ARGS passes options on, e.g.
# PEERS_ARGS='--only airflow --keep' (bench/peers.py --help).
IRONFLOW_VERSION := 0.3.0
PEERS_ARGS ?=
IRONFLOW := target/peers/bin/ironflow
bench-peers:
	@$(call need_cmd,$(PYTHON),python3)
	$(CARGO) build --release --locked
	@test -x $(IRONFLOW) && grep -q 'ironflow-orchestrator $(IRONFLOW_VERSION) ' target/peers/.crates.toml || \
		$(CARGO) install ironflow-orchestrator --version $(IRONFLOW_VERSION) --locked --root target/peers
	@want=$$(sha256sum $(COMPAT_REQS) | cut -d' ' -f1); \
	if [ "$$(cat $(COMPAT_VENV)/requirements.sha256 2>/dev/null)" != "$$want" ]; then \
		echo "installing $(COMPAT_REQS) into $(COMPAT_VENV)"; \
		rm -rf $(COMPAT_VENV) && $(PYTHON) -m venv $(COMPAT_VENV) && \
		$(COMPAT_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(COMPAT_REQS) && \
		echo "$$want" > $(COMPAT_VENV)/requirements.sha256; \
	fi
	$(PYTHON) bench/peers.py $(PEERS_ARGS)

# windows cross-builds the release .exe for x86_64-pc-windows-gnu, installing MinGW and the target if missing.
windows:
	@$(call need_cmd,x86_64-w64-mingw32-gcc,gcc-mingw-w64-x86-64-win32)
	@$(call need_cmd,file,file)
	@$(call need_target,$(WINDOWS_TARGET))
	$(CARGO) build --release --locked --target $(WINDOWS_TARGET)
	@stat -c '%n: %s bytes' $(WINDOWS_EXE) && file $(WINDOWS_EXE)

# windows-smoke runs the .exe's first commands under Wine, in target/wine with a test-only bcryptprimitives.dll.
windows-smoke: windows
	@$(call need_cmd,wine,--no-install-recommends wine wine64)
	@test -f $(WINE_PREFIX)/system.reg || { echo "creating the Wine prefix $(WINE_PREFIX)"; \
	  $(WINE_ENV) wine wineboot --init && $(WINE_ENV) wineserver -w; }
	@test $(WINE_DLL) -nt tests/windows/bcryptprimitives.c || \
	  x86_64-w64-mingw32-gcc -O2 -Wall -s -shared -o $(WINE_DLL) tests/windows/bcryptprimitives.c -ladvapi32
	$(WINE_ENV) tests/windows/smoke.sh $(WINDOWS_EXE)

# clean removes build outputs and ./.local.
clean:
	$(CARGO) clean
	rm -rf $(HOME_DIR)
