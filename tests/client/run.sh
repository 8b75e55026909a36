#!/usr/bin/env bash
# Runs coverage.py (once), drive.py, mapped.py, assets.py, task_sdk.py, parity.py, ctl.py, ctl_all.py and sweep.py against a fresh `updraft standalone`,
# once at the root and once under a base_url prefix, each on its own temporary UPDRAFT_HOME.
#
# Usage: tests/client/run.sh [PYTHON] [UPDRAFT_BINARY]
#   PYTHON defaults to .venv-client/bin/python (made by `make test-client`),
#   UPDRAFT_BINARY to target/debug/updraft.
# Env: CLIENT_PREFIXES (default "- /d12345"; "-" is no prefix), SWEEP_EXAMPLES (25),
#   AIRFLOW_SPEC (Airflow's OpenAPI file: also fuzz every route with it, at the first prefix),
#   SWEEP_TIMEOUT (300 s), SWEEP_SPEC (a schema to fuzz instead of the server's own,
#   e.g. Airflow's v2-rest-api-generated.yaml), KEEP_HOME=1 (keep a failed server's home,
#   logs included, instead of removing it). Exits 1 if any check failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${1:-$root/.venv-client/bin/python}
bin=${2:-$root/target/debug/updraft}
prefixes=${CLIENT_PREFIXES:-- /d12345}
airflow_sweep=1
# Read before the loop below clears every AIRFLOW_* variable.
airflow_spec=${AIRFLOW_SPEC:-}
[ -z "$airflow_spec" ] || airflow_spec=$(cd "$(dirname "$airflow_spec")" && pwd)/$(basename "$airflow_spec")
# How long the server may take to print its URL.
start_timeout_s=30

[ -x "$python" ] || { echo "no Python at $python: run \`make test-client\`" >&2; exit 2; }
[ -x "$bin" ] || { echo "no updraft binary at $bin: run \`cargo build\`" >&2; exit 2; }

# Only the settings below reach the server: nothing inherited from the caller's shell.
for v in $(compgen -e | grep -E '^(UPDRAFT|AIRFLOW)_'); do unset "$v"; done

pid=""
home=""
stop() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        # Ctrl-C handling lets running tasks finish; don't wait long for that.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    pid=""
    [ -n "$home" ] && rm -rf "$home"
    home=""
}
trap stop EXIT
trap 'exit 130' INT TERM

# one PREFIX: starts a server, drives it, sweeps it, stops it. Returns 1 on any failure.
one() {
    local prefix=$1 base_url=() label=${1:-/}
    # The path form, not http://localhost/d12345: from a full URL tasks would take
    # {base_url}/execution/ (port 80, as Airflow does) and never reach a port-0 server;
    # from a path they take the bound address plus the prefix.
    [ -n "$prefix" ] && base_url=("UPDRAFT__API__BASE_URL=$prefix")
    home=$(mktemp -d "${TMPDIR:-/tmp}/updraft-client-XXXXXX")
    # A mapped task for mapped.py, beside the examples.
    mkdir -p "$home/dags"
    "$python" "$here/mapped.py" --print-yaml >"$home/dags/client_mapped.yml"
    "$python" "$here/assets.py" --print-yaml >"$home/dags/client_assets.yml"
    # Tasks for task_sdk.py: they leave their tokens in $home/sdk and wait to be released.
    mkdir -p "$home/sdk"
    "$python" "$here/task_sdk.py" --print-yaml --dir "$home/sdk" >"$home/dags/client_sdk.yml"
    echo "== server at $label (UPDRAFT_HOME=$home)"
    env UPDRAFT_HOME="$home" \
        UPDRAFT__API__HOST=127.0.0.1 \
        UPDRAFT__API__PORT=0 \
        UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin,viewer:viewer \
        UPDRAFT__SCHEDULER__SCHEDULER_HEARTBEAT_SEC=0.2 \
        UPDRAFT__SCHEDULER__DAG_DIR_LIST_INTERVAL=1 \
        UPDRAFT__CORE__KILLED_TASK_CLEANUP_TIME=1 \
        "${base_url[@]}" \
        "$bin" standalone >"$home/stdout.log" 2>"$home/server.log" </dev/null &
    pid=$!
    local url="" deadline=$((SECONDS + start_timeout_s))
    while [ -z "$url" ]; do
        url=$(grep -o 'listening on http://[^ ]*' "$home/stdout.log" 2>/dev/null | head -1 | cut -d' ' -f3)
        if [ -z "$url" ]; then
            if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
                echo "FAIL start: no 'listening on' line; server log:"; tail -20 "$home/server.log"
                stop; return 1
            fi
            sleep 0.1
        fi
    done
    local base=${url%/}
    password() { grep -o "Password for user '$1': .*" "$home/stdout.log" | head -1 | cut -d' ' -f5; }
    local admin viewer
    admin=$(password admin)
    viewer=$(password viewer)
    echo "listening on $base"
    local rc=0
    # Which client operations have no route: a report, printed once, never a failure.
    if [ "$first" = 1 ]; then "$python" "$here/coverage.py" --base "$base"; first=0; fi
    "$python" "$here/drive.py" --base "$base" --password "$admin" \
        --viewer viewer --viewer-password "$viewer" || rc=1
    # A mapped task's instances through the routes with {map_index} and listMapped.
    "$python" "$here/mapped.py" --base "$base" --password "$admin" || rc=1
    # Assets: a producer triggers its consumer; the Asset routes through the client and airflowctl.
    "$python" "$here/assets.py" --base "$base" --password "$admin" || rc=1
    # The Task SDK's Execution API client through three tasks' lives.
    "$python" "$here/task_sdk.py" --base "$base" --password "$admin" --dir "$home/sdk" || rc=1
    # The Core API operations of issue 19 (XCom writes, bulk, wait, favorites, ...).
    "$python" "$here/parity.py" --base "$base" --password "$admin" || rc=1
    # airflowctl (apache-airflow-ctl), the command-line client: its backfill commands.
    "$python" "$here/ctl.py" --base "$base" --password "$admin" || rc=1
    # airflowctl over every command group it has (its known defects listed in ctl_all.py).
    "$python" "$here/ctl_all.py" --base "$base" --password "$admin" || rc=1
    "$python" "$here/sweep.py" --base "$base" --password "$admin" \
        --examples "${SWEEP_EXAMPLES:-25}" --timeout "${SWEEP_TIMEOUT:-300}" \
        ${SWEEP_SPEC:+--spec "$SWEEP_SPEC"} || rc=1
    # Airflow's own spec describes the same routes with their query parameters and
    # bodies: fuzzing with it sends every route malformed input. Once, at the first prefix.
    if [ -n "$airflow_spec" ] && [ "$airflow_sweep" = 1 ]; then
        airflow_sweep=0
        "$python" "$here/sweep.py" --base "$base" --password "$admin" \
            --examples "${SWEEP_EXAMPLES:-25}" --timeout "${SWEEP_TIMEOUT:-300}" \
            --spec "$airflow_spec" || rc=1
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "FAIL server: it exited during the checks; log:"; tail -20 "$home/server.log"; rc=1
    elif grep -q 'panicked' "$home/server.log"; then
        echo "FAIL server: a handler panicked:"; grep -A3 'panicked' "$home/server.log" | head -20; rc=1
    fi
    if [ $rc -ne 0 ] && [ "${KEEP_HOME:-}" = 1 ]; then
        echo "kept $home (server log: $home/server.log)"
        home=""
    fi
    stop
    return $rc
}

failed=()
first=1
for p in $prefixes; do
    [ "$p" = "-" ] && p=""
    one "$p" || failed+=("${p:-/}")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "client checks failed at: ${failed[*]}"
    exit 1
fi
echo "client checks passed"
