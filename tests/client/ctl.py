#!/usr/bin/env python3
"""Drives a running updraft with airflowctl (apache-airflow-ctl), as a user at a shell would.

It logs in headless (`auth login` with `AIRFLOW_CLI_DEBUG_MODE=true`, which keeps the
token in a file under its own AIRFLOW_HOME instead of a keyring), then runs the backfill
commands and checks what they print. airflowctl parses every reply with its own pydantic
models, so a reply that does not match Airflow's shape fails the step.

airflowctl 0.1.5 has two defects that show against Apache Airflow 3.3.2 as well, and are
checked as such, so a change in either side is noticed: `backfill pause`, `unpause` and
`cancel` send POST where Airflow's routes take PUT (Airflow answers 405), and
`backfill create-dry-run` reads the dry run's list as one backfill (a validation error).

Each step prints `ok <step>` or `FAIL <step>: <reason>`; the exit code is 1 if any failed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

DAG = "example_bash_operator"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--user", default="admin")
    p.add_argument("--airflowctl", default=os.path.join(os.path.dirname(sys.executable), "airflowctl"))
    args = p.parse_args()
    failed = 0
    passed = 0
    with tempfile.TemporaryDirectory(prefix="airflowctl-") as home:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": home, "AIRFLOW_HOME": home,
               "AIRFLOW_CLI_DEBUG_MODE": "true"}

        def ctl(*argv: str) -> subprocess.CompletedProcess:
            return subprocess.run([args.airflowctl, *argv], env=env, capture_output=True,
                                  text=True, timeout=120)

        def step(name: str, ok: bool, why: str) -> None:
            nonlocal failed, passed
            if ok:
                passed += 1
                print(f"ok {name}")
            else:
                failed += 1
                print(f"FAIL {name}: {why}")

        def rows(r: subprocess.CompletedProcess) -> list:
            try:
                return json.loads(r.stdout)
            except ValueError:
                return []

        r = ctl("auth", "login", "--api-url", args.base, "--username", args.user,
                "--password", args.password)
        step("auth login", r.returncode == 0 and "Login successful" in r.stdout, r.stdout + r.stderr)

        # Paused, the DAG starts none of the backfill's runs, so the backfill stays open
        # for the 409 below however fast runs are (drive.py unpaused it).
        r = ctl("dags", "pause", DAG)
        step("dags pause", r.returncode == 0, r.stdout + r.stderr)

        dates = ["--from-date", "2024-01-01T00:00:00Z", "--to-date", "2024-01-03T00:00:00Z"]
        r = ctl("backfill", "create", "--dag-id", DAG, *dates, "--max-active-runs", "2",
                "--run-backwards", "-o", "json")
        made = rows(r)
        b = made[0] if made else {}
        step("backfill create", r.returncode == 0 and b.get("dag_id") == DAG
             and b.get("max_active_runs") in (2, "2") and b.get("completed_at") is None,
             r.stdout + r.stderr)
        backfill_id = str(b.get("id", ""))

        r = ctl("backfill", "get", backfill_id, "-o", "json")
        got = rows(r)
        step("backfill get", r.returncode == 0 and got and str(got[0].get("id")) == backfill_id
             and got[0].get("reprocess_behavior") == "none", r.stdout + r.stderr)

        r = ctl("backfill", "list", DAG, "-o", "json")
        step("backfill list", r.returncode == 0 and backfill_id in [str(x.get("id")) for x in rows(r)],
             r.stdout + r.stderr)

        r = ctl("backfill", "create", "--dag-id", DAG, *dates, "-o", "json")
        step("backfill create again (409)", r.returncode != 0
             and f"already a running backfill for dag {DAG}" in " ".join((r.stdout + r.stderr).split()),
             r.stdout + r.stderr)

        r = ctl("backfill", "list", "no_such_dag", "-o", "json")
        step("backfill list of a DAG without any", r.returncode == 0 and rows(r) == [], r.stdout + r.stderr)

        for verb in ("pause", "unpause", "cancel"):
            r = ctl("backfill", verb, backfill_id)
            step(f"backfill {verb} (airflowctl sends POST: 405, as from Airflow)",
                 r.returncode != 0 and "Method Not Allowed" in r.stdout + r.stderr, r.stdout + r.stderr)

        r = ctl("backfill", "create-dry-run", "--dag-id", DAG, *dates, "-o", "json")
        step("backfill create-dry-run (airflowctl misreads the list, as from Airflow)",
             r.returncode != 0 and "validation error" in r.stderr and "total_entries" in r.stderr,
             r.stdout + r.stderr)

        r = ctl("dags", "unpause", DAG)
        step("dags unpause", r.returncode == 0, r.stdout + r.stderr)

    print(f"airflowctl: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
