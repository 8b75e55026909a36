#!/usr/bin/env bash
# Smoke-tests updraft.exe under Wine: the first commands a Windows user runs, in a fresh home.
#
# Usage: WINEPREFIX=<prepared prefix> tests/windows/smoke.sh <path/to/updraft.exe>
# `make windows-smoke` prepares the prefix (with the test-only bcryptprimitives.dll) and
# calls this. Every check is printed; the last line counts them; any failure exits 1.
# Not `set -e`: a failing check is counted and reported, and the rest still run.
set -uo pipefail

exe=${1:?usage: WINEPREFIX=<prefix> $0 <updraft.exe>}
: "${WINEPREFIX:?set WINEPREFIX to a prepared Wine prefix (make windows-smoke does)}"
root=$(cd "$(dirname "$0")/../.." && pwd)
# Seconds one Wine call may take; a hung .exe fails its check instead of hanging CI.
wine_timeout=${WINE_TIMEOUT:-120}

export WINEPREFIX WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml='
unset DISPLAY WAYLAND_DISPLAY
# Only the settings below reach the .exe: Wine passes the whole Unix environment on.
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^(UPDRAFT|AIRFLOW)_')

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)

# The home is a Windows path on C:, which Wine keeps inside the prefix, so the .exe sees
# drive letters and backslashes as on Windows.
work=$(mktemp -d "$WINEPREFIX/drive_c/updraft-smoke.XXXXXX")
win_work="C:\\${work##*/}"
cleanup() {
    # Wait for Wine's helper processes, then make sure none are left.
    timeout 60 wineserver -w 2>/dev/null
    wineserver -k 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/home" "$work/dags"
cat >"$work/dags/smoke_valid.yaml" <<'YAML'
smoke_hello:
  default_args:
    owner: smoke
    start_date: 2024-01-01
  schedule: "@daily"
  catchup: false
  tasks:
    - task_id: hello
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: echo hello
YAML
cat >"$work/dags/smoke_broken.yaml" <<'YAML'
smoke_broken:
  default_args:
    start_date: 2024-01-01
  tasks:
    - task_id: no_operator
      bash_command: echo this task names no operator
YAML

# run [NAME=value ...] -- ARGS: runs the .exe under Wine; sets status, out and err.
run() {
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    status=0
    out=$(env UPDRAFT_HOME="$win_work\\home" UPDRAFT__CORE__DAGS_FOLDER="$win_work\\dags" \
        "${envs[@]}" timeout -k 10 "$wine_timeout" wine "$exe" "$@" 2>"$work/stderr") || status=$?
    out=${out//$'\r'/}
    err=$(tr -d '\r' <"$work/stderr")
    last="updraft.exe $*"
}

pass=0
fail=0
# check DESCRIPTION STATUS [TEXT]: the last run exited STATUS and printed TEXT on stdout.
check() {
    local what=$1 want=$2 text=${3-}
    if [ "$status" = "$want" ] && { [ -z "$text" ] || grep -qF -- "$text" <<<"$out"; }; then
        pass=$((pass + 1))
        echo "ok   $what"
    else
        fail=$((fail + 1))
        echo "FAIL $what"
        echo "     ran: $last; wanted status $want${text:+ and \"$text\" on stdout}; got status $status"
        case $status in
            124) echo "     (timed out after ${wine_timeout}s)" ;;
            53) echo "     (status 53: a DLL is missing; is bcryptprimitives.dll in the prefix's system32?)" ;;
        esac
        sed 's/^/     stdout: /' <<<"$out" | head -n 20
        sed 's/^/     stderr: /' <<<"$err" | head -n 20
    fi
}

echo "smoke-testing $exe under $(wine --version 2>/dev/null), home $win_work\\home"

run -- version
check "version exits 0 and prints $version" 0 "$version"

run -- db migrate
check "db migrate exits 0" 0

run -- dags list --output json
check "dags list --output json exits 0 and lists smoke_hello" 0 smoke_hello

# Exit 1 as Airflow's: listing any import error is a failure, for scripts and CI.
run -- dags list-import-errors --output json
check "dags list-import-errors --output json exits 1 and names smoke_broken.yaml" 1 smoke_broken.yaml

# A real run on Windows: scheduler, a private Execution API, a supervisor process and the
# task under cmd (Wine has no Git Bash), with its log printed on stdout.
run -- dags test smoke_hello 2024-03-01
check "dags test runs the DAG to success through cmd" 0 "ended success"
check "dags test prints the task's output" 0 "hello"

run -- tasks test smoke_hello hello
check "tasks test runs one task in the foreground" 0 "hello"

run UPDRAFT__API__PORT=eighty -- dags list
check "a bad config (UPDRAFT__API__PORT=eighty) exits 2" 2

run -- no-such-command
check "an unknown command exits 2" 2

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
