#!/usr/bin/env python3
"""Fuzzes every route of a running updraft with schemathesis and fails on any 5xx.

It reads the server's own `{base}/openapi.json` (or `--spec`, e.g. Airflow's
v2-rest-api-generated.yaml, to send Airflow's query parameters and bodies), logs in as
admin so guarded routes run their handlers rather than stopping at 401, and checks only
`not_a_server_error`: a 4xx for a nonsense input is the right answer, a 500 never is.
Examples per operation are bounded (`--examples`) and the whole run is killed after
`--timeout` seconds, which counts as a failure. Only loopback servers are accepted, as
the fuzzer writes and deletes whatever the spec lets it.

Prints schemathesis' own report, then one line per failed operation and
`N passed, N failed` (operations); exits 1 on any failure.
"""

import argparse
import ipaddress
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

LONG_POLL = "/dags/{dag_id}/dagRuns/{dag_run_id}/wait"


def loopback(base):
    """Whether every address the URL's host resolves to is a loopback one."""
    host = urllib.parse.urlsplit(base).hostname or ""
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def token(base, user, password):
    req = urllib.request.Request(
        f"{base}/auth/token",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.loads(res.read())["access_token"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="the server's URL with its prefix")
    p.add_argument("--user", default="admin")
    p.add_argument("--password", required=True)
    p.add_argument("--spec", help="a schema file or URL instead of {base}/openapi.json")
    p.add_argument("--examples", type=int, default=25, help="at most this many cases per operation")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before the whole run is stopped")
    p.add_argument("--workers", default="2")
    p.add_argument("--seed", help="replay a run")
    args = p.parse_args()
    base = args.base.rstrip("/")
    if not loopback(base):
        print(f"FAIL sweep: {base} is not a loopback address; refusing to fuzz it")
        print("0 passed, 1 failed")
        return 1
    try:
        bearer = token(base, args.user, args.password)
    except (urllib.error.URLError, KeyError, ValueError) as e:
        print(f"FAIL sweep: login as {args.user}: {e}")
        print("0 passed, 1 failed")
        return 1
    st = pathlib.Path(sys.executable).with_name("st")
    with tempfile.TemporaryDirectory(prefix="updraft-sweep-") as tmp:
        junit = pathlib.Path(tmp, "junit.xml")
        cmd = [
            str(st), "run", args.spec or f"{base}/openapi.json", "--url", base,
            "--header", f"Authorization: Bearer {bearer}",
            "--checks", "not_a_server_error",
            "--max-examples", str(args.examples),
            "--workers", args.workers,
            "--continue-on-failure",
            "--request-timeout", "30",
            "--generation-database", "none",
            "--no-color",
            "--report", "junit", "--report-junit-path", str(junit),
        ]
        if args.seed:
            cmd += ["--seed", args.seed]
        shown = [c if not c.startswith("Authorization:") else "Authorization: Bearer ***" for c in cmd]
        print("$", " ".join(shown), flush=True)
        # Its own working files (reports, caches) stay in the temp directory.
        try:
            rc = subprocess.run(cmd, cwd=tmp, timeout=args.timeout, env=dict(os.environ, NO_COLOR="1")).returncode
        except subprocess.TimeoutExpired:
            print(f"FAIL sweep: stopped after {args.timeout:.0f} s")
            print("0 passed, 1 failed")
            return 1
        if not junit.exists():
            print(f"FAIL sweep: schemathesis exited {rc} without a report")
            print("0 passed, 1 failed")
            return 1
        passed, failed, crashed, waited = 0, [], [], []
        for case in ET.parse(junit).getroot().iter("testcase"):
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            if bad is None:
                passed += 1
                continue
            first = (bad.get("message") or bad.text or "").strip().splitlines()
            why = first[0] if first else ""
            # schemathesis files its own exceptions (seen: CPython's "AST constructor
            # recursion depth mismatch" while it generated cases) as "Runtime Error"; a
            # server's answers, network errors and timeouts have categories of their own
            # and stay failures.
            if bad.tag == "error" and why.startswith("Runtime Error"):
                crashed.append((case.get("name"), why))
            # `GET .../dagRuns/{id}/wait` answers when the run finishes, as Airflow's
            # does (which has no limit; updraft's is five minutes). A generated run that
            # cannot finish (its DAG paused, say) outlasts `--request-timeout` (once:
            # "Network Error"; again and again in the stateful phase: "Unresponsive
            # Operation"): the route waiting, not a verdict on it. Its answers are
            # tested with Airflow's client in tests/client/parity.py.
            elif LONG_POLL in (case.get("name") or "") and why.startswith(
                ("Network Error", "Unresponsive Operation")
            ):
                waited.append((case.get("name"), why))
            else:
                failed.append((case.get("name"), why))
    print()
    for name, why in crashed:
        print(f"WARN {name}: schemathesis itself raised ({why}), not a verdict on the server")
    for name, why in waited:
        print(f"WARN {name}: {why}: a wait for a run that did not finish within the request timeout")
    for name, why in failed:
        print(f"FAIL {name}: {why}")
    # schemathesis exits non-zero on warnings-as-errors or a broken schema, too.
    if rc != 0 and not failed and not crashed and not waited:
        print(f"FAIL sweep: schemathesis exited {rc}")
        failed.append(("sweep", ""))
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
