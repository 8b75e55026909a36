#!/usr/bin/env python3
"""Assets through the official Airflow client (apache-airflow-client 3.3.2, unchanged) and
airflowctl (`assets list`, `assets get`): their pydantic models check the shapes.

The DAGs are `client_asset_producer` (a Bash task whose outlet is `s3://client/data`)
and `client_asset_consumer` (scheduled on it); run.sh writes them into the server's DAG
folder. The producer runs, the consumer must get an asset-triggered run consuming its
event; a manual event triggers it again. Prints `ok <step>` / `FAIL <step>: <reason>`
and `N passed, N failed`; exits 1 if any step failed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import airflow_client.client as af
from airflow_client.client.exceptions import NotFoundException
from airflow_client.client.models import CreateAssetEventsBody, DAGPatchBody, TriggerDAGRunPostBody

from drive import Driver, StepError, check, client, expect_error, token

PRODUCER = "client_asset_producer"
CONSUMER = "client_asset_consumer"
URI = "s3://client/data"
YAML = f"""\
{PRODUCER}:
  schedule: null
  start_date: 2024-01-01
  tasks:
    - task_id: make
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: "echo made"
      outlets: ["{URI}"]
{CONSUMER}:
  schedule: ["{URI}"]
  start_date: 2024-01-01
  tasks:
    - task_id: use
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: "echo used"
"""
WAIT_S = 90


class Assets(Driver):
    def login(self):
        self.state["token"] = token(self.args.base, self.args.user, self.args.password)
        self.api = client(self.args.base, self.state["token"])

    def produce(self):
        dags = af.DAGApi(self.api)
        for dag in (PRODUCER, CONSUMER):
            dags.patch_dag(dag, DAGPatchBody(is_paused=False))
        run = af.DagRunApi(self.api).trigger_dag_run(PRODUCER, TriggerDAGRunPostBody(logical_date=None, conf={}))
        self.state["run_id"] = run.dag_run_id

    def consumer_runs(self, n):
        deadline = time.monotonic() + WAIT_S
        while True:
            runs = af.DagRunApi(self.api).get_dag_runs(CONSUMER).dag_runs
            if len(runs) >= n:
                return runs
            if time.monotonic() > deadline:
                raise StepError(f"{CONSUMER} has {len(runs)} runs after {WAIT_S} s, want {n}")
            time.sleep(0.2)

    def triggered(self):
        runs = self.consumer_runs(1)
        run = runs[0]
        check(run.run_type.value == "asset_triggered", f"run_type {run.run_type}")
        check(run.logical_date is None, f"logical_date {run.logical_date}")
        events = af.DagRunApi(self.api).get_upstream_asset_events(CONSUMER, run.dag_run_id)
        check([e.uri for e in events.asset_events] == [URI], f"{events}")
        check(events.asset_events[0].source_dag_id == PRODUCER, f"{events.asset_events[0]}")

    def list_assets(self):
        assets = af.AssetApi(self.api).get_assets(uri_pattern="s3://client")
        check(assets.total_entries == 1, f"{assets}")
        a = assets.assets[0]
        check([d.dag_id for d in a.scheduled_dags] == [CONSUMER], f"{a.scheduled_dags}")
        check([(t.dag_id, t.task_id) for t in a.producing_tasks] == [(PRODUCER, "make")], f"{a.producing_tasks}")
        check(a.last_asset_event is not None and a.last_asset_event.id is not None, f"{a.last_asset_event}")
        self.state["asset_id"] = a.id
        one = af.AssetApi(self.api).get_asset(a.id)
        check(one.uri == URI, f"{one}")
        expect_error(lambda: af.AssetApi(self.api).get_asset(999999), NotFoundException, 404)

    def manual_event(self):
        api = af.AssetApi(self.api)
        ev = api.create_asset_event(CreateAssetEventsBody(asset_id=self.state["asset_id"], extra={"by": "client"}))
        check(ev.extra == {"by": "client", "from_rest_api": True}, f"{ev.extra}")
        self.consumer_runs(2)
        events = api.get_asset_events(asset_id=self.state["asset_id"], order_by=["-timestamp"])
        check(events.total_entries == 2, f"{events.total_entries} events")
        check(len(events.asset_events[0].created_dagruns) == 1, f"{events.asset_events[0]}")
        queued = api.get_dag_asset_queued_events(CONSUMER)
        check(queued.total_entries == 0, f"{queued}")

    def airflowctl(self):
        with tempfile.TemporaryDirectory(prefix="airflowctl-") as home:
            env = {"PATH": os.environ.get("PATH", ""), "HOME": home, "AIRFLOW_HOME": home,
                   "AIRFLOW_CLI_DEBUG_MODE": "true"}

            def ctl(*argv):
                return subprocess.run([self.args.airflowctl, *argv], env=env, capture_output=True,
                                      text=True, timeout=120)

            r = ctl("auth", "login", "--api-url", self.args.base, "--username", self.args.user,
                    "--password", self.args.password)
            check(r.returncode == 0, f"login: {r.stderr[-300:]}")
            r = ctl("assets", "list", "-o", "json")
            check(r.returncode == 0, f"assets list: {r.stdout[-300:]} {r.stderr[-300:]}")
            rows = json.loads(r.stdout)
            check(any(row.get("uri") == URI for row in rows), f"assets list: {rows}")
            r = ctl("assets", "get", str(self.state["asset_id"]), "-o", "json")
            check(r.returncode == 0 and URI in r.stdout, f"assets get: {r.stdout[-300:]} {r.stderr[-300:]}")

    def run(self):
        self.step("login", self.login)
        if "token" not in self.state:
            return
        self.step("produce", self.produce)
        self.args.dag = PRODUCER
        self.step("wait_run", self.wait_run, needs=["run_id"])
        self.step("triggered", self.triggered)
        self.step("list_assets", self.list_assets)
        self.step("manual_event", self.manual_event, needs=["asset_id"])
        self.step("airflowctl", self.airflowctl, needs=["asset_id"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", help="the server's URL with its prefix")
    p.add_argument("--user", default="admin")
    p.add_argument("--password")
    p.add_argument("--strict-keys", action="store_true")
    p.add_argument("--airflowctl", default=os.path.join(os.path.dirname(sys.executable), "airflowctl"))
    p.add_argument("--print-yaml", action="store_true", help="print the DAG file and exit")
    args = p.parse_args()
    if args.print_yaml:
        print(YAML, end="")
        return 0
    if not args.base or not args.password:
        p.error("--base and --password are required")
    args.base = args.base.rstrip("/")
    d = Assets(args)
    d.run()
    print(f"{d.passed} passed, {d.failed} failed", flush=True)
    return 1 if d.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StepError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
