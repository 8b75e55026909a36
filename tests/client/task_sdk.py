#!/usr/bin/env python3
"""Drives the real Task SDK Execution API client (`airflow.sdk.api.client.Client` from
apache-airflow-task-sdk 1.3.2, the one Airflow 3.3.2 ships, unchanged) through task
instances' lives against updraft, with tokens updraft minted.

The DAG is `client_sdk` (run.sh writes it into the server's DAG folder with --print-yaml):
three Bash tasks `a`, `b` and `c` that each write the task token updraft gave them
(`UPDRAFT_TASK_TOKEN`) into `--dir` and wait there until a `release` file appears. This
script then takes each running try over as its own worker would: it `start`s it again
with the pid and hostname the supervisor registered (Airflow's idempotent re-run), so the
SDK's pydantic models check every reply, and drives `a` to success, `b` to failed and
`c` to up_for_retry (its second try, released, succeeds). Along the way: heartbeat,
variables (with one named `keys`), connections, XComs (set, get, HEAD count, sequence
item and slice, delete), the task state store, rtif, task and run lookups, the DAG, and the
`Airflow-API-Version` header. Prints `ok <step>` / `FAIL <step>: <reason>`, then
`N passed, N failed`; exits 1 if any step failed.
"""

import argparse
import atexit
import datetime
import os
import shutil
import sys
import tempfile
import time
import uuid

# The SDK reads its configuration on import: give it an empty home of its own, removed
# when this script ends.
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="updraft-sdk-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
# A failed call is a finding here, not something to retry for minutes.
os.environ.setdefault("AIRFLOW__WORKERS__EXECUTION_API_RETRIES", "1")

import httpx  # noqa: E402
import airflow_client.client as af  # noqa: E402
from airflow_client.client.models import DAGPatchBody, TriggerDAGRunPostBody  # noqa: E402
from airflow.sdk.api import client as sdk  # noqa: E402
from airflow.sdk.api.datamodels._generated import DagRunState, TaskInstanceState  # noqa: E402
from airflow.sdk.execution_time.comms import ErrorResponse  # noqa: E402

from drive import Driver, check, client, token  # noqa: E402

DAG = "client_sdk"
TASKS = ("a", "b", "c")
WAIT_S = 120


def yaml(dir):
    wait = (
        f'echo "$UPDRAFT_TASK_TOKEN" > {dir}/$AIRFLOW_CTX_TASK_ID.try$AIRFLOW_CTX_TRY_NUMBER; '
        f"while [ ! -f {dir}/release ]; do sleep 0.2; done"
    )
    tasks = "".join(
        f"""    - task_id: {t}
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: '{wait}'
"""
        + ("      retries: 1\n      retry_delay:\n        __type__: datetime.timedelta\n        seconds: 0\n" if t == "c" else "")
        for t in TASKS
    )
    return f"""\
{DAG}:
  schedule: null
  start_date: 2024-01-01
  tags: [sdk]
  tasks:
{tasks}"""


def now():
    return datetime.datetime.now(datetime.timezone.utc)


class TaskSdk(Driver):
    def login(self):
        self.state["token"] = token(self.args.base, self.args.user, self.args.password)
        self.api = client(self.args.base, self.state["token"])

    def trigger(self):
        af.DAGApi(self.api).patch_dag(DAG, DAGPatchBody(is_paused=False))
        run = af.DagRunApi(self.api).trigger_dag_run(DAG, TriggerDAGRunPostBody(logical_date=None, conf={}))
        self.state["run_id"] = run.dag_run_id
        # A connection for the SDK to read.
        af.ConnectionApi(self.api).post_connection(
            af.ConnectionBody(connection_id="sdk_conn", conn_type="http", host="example.org", port=8080,
                              login="u", password="p"))

    def _token(self, task, try_number):
        path = os.path.join(self.args.dir, f"{task}.try{try_number}")
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    tok = f.read().strip()
                if tok:
                    return tok
            time.sleep(0.2)
        raise AssertionError(f"task {task} try {try_number} never started (no {path})")

    def _ti(self, task):
        return af.TaskInstanceApi(self.api).get_task_instance(DAG, self.state["run_id"], task)

    def _worker(self, task, try_number=1):
        """The SDK client with the try's token, and the identity its supervisor registered."""
        tok = self._token(task, try_number)
        ti = self._ti(task)
        check(ti.state and ti.state.value == "running", f"{task}: state {ti.state}")
        # The worker that started the try is updraft's supervisor: the SDK client speaks
        # as it (same pid and host), which Airflow's `run` answers again, idempotently.
        sdk.get_hostname = lambda: ti.hostname
        c = sdk.Client(base_url=f"{self.args.base}/execution/", token=tok)
        return c, uuid.UUID(str(ti.id)), ti.pid

    def start_a(self):
        c, ti_id, pid = self._worker("a")
        ctx = c.task_instances.start(ti_id, pid, now())
        check(ctx.dag_run.state == DagRunState.RUNNING, f"dag_run.state {ctx.dag_run.state}")
        check(ctx.dag_run.run_id == self.state["run_id"], f"dag_run.run_id {ctx.dag_run.run_id}")
        check(ctx.dag_run.consumed_asset_events == [], f"consumed_asset_events {ctx.dag_run.consumed_asset_events}")
        check(ctx.max_tries == 0 and ctx.start_date is not None, f"max_tries {ctx.max_tries}, start {ctx.start_date}")
        c.task_instances.heartbeat(ti_id, pid)
        self.state["a"] = (c, ti_id, pid)

    def version_header(self):
        c, _, _ = self.state["a"]
        r = c.get(f"dags/{DAG}")
        got = r.headers.get("airflow-api-version")
        check(got == sdk.API_VERSION, f"Airflow-API-Version {got!r}, want {sdk.API_VERSION}")
        # An older version the server still serves (on a route it had then: `dags/{id}`
        # came in 2026-04-06), and one before every version.
        r = c.get("task-instances/count", params={"dag_id": DAG}, headers={"airflow-api-version": "2025-06-01"})
        check(r.headers.get("airflow-api-version") == "2025-06-01", f"older: {r.headers}")
        try:
            c.get("task-instances/count", params={"dag_id": DAG}, headers={"airflow-api-version": "2024-01-01"})
            raise AssertionError("a version before the first was served")
        except sdk.ServerResponseError as e:
            check(e.response.status_code == 404, f"before the first: {e.response.status_code}")

    def variables(self):
        c, _, _ = self.state["a"]
        c.variables.set("sdk_var", "v1", description="from the SDK")
        check(c.variables.get("sdk_var").value == "v1", "sdk_var")
        # GET variables/keys is the listing, as in Airflow, even with a variable of that
        # name; PUT and DELETE of it are that variable's.
        c.variables.set("keys", "the keys variable")
        v = af.VariableApi(self.api).get_variable("keys")
        check(v.value == "the keys variable", f"variable `keys`: {v}")
        listed = c.variables.keys(prefix="sdk_")
        check(listed.keys == ["sdk_var"] and listed.total_entries == 1, f"keys(prefix): {listed}")
        everything = c.variables.keys()
        check("keys" in everything.keys and "sdk_var" in everything.keys, f"keys(): {everything}")
        page = c.variables.keys(limit=1, offset=1)
        check(page.keys == everything.keys[1:2] and page.total_entries == everything.total_entries, f"page {page}")
        c.variables.delete("sdk_var")
        gone = c.variables.get("sdk_var")
        check(isinstance(gone, ErrorResponse), f"deleted variable still read: {gone}")
        c.variables.delete("keys")
        check("keys" not in c.variables.keys().keys, "variable `keys` not deleted")

    def connection(self):
        c, _, _ = self.state["a"]
        conn = c.connections.get("sdk_conn")
        check((conn.conn_type, conn.host, conn.port, conn.login, conn.password) == ("http", "example.org", 8080, "u", "p"),
              f"{conn}")
        check(isinstance(c.connections.get("no_such_conn"), ErrorResponse), "missing connection")

    def xcoms(self):
        c, _, _ = self.state["a"]
        run_id = self.state["run_id"]
        c.xcoms.set(DAG, run_id, "a", "k", {"x": [1, 2]})
        check(c.xcoms.get(DAG, run_id, "a", "k").value == {"x": [1, 2]}, "get")
        check(c.xcoms.head(DAG, run_id, "a", "k").len == 1, "HEAD count")
        check(c.xcoms.get_sequence_item(DAG, run_id, "a", "k", 0).root == {"x": [1, 2]}, "item 0")
        check(c.xcoms.get_sequence_item(DAG, run_id, "a", "k", -1).root == {"x": [1, 2]}, "item -1")
        missing = c.xcoms.get_sequence_item(DAG, run_id, "a", "k", 5)
        check(isinstance(missing, ErrorResponse), f"item 5: {missing}")
        check(c.xcoms.get_sequence_slice(DAG, run_id, "a", "k", None, None, None).root == [{"x": [1, 2]}], "slice")
        check(c.xcoms.get_sequence_slice(DAG, run_id, "a", "k", 1, None, None).root == [], "slice [1:]")
        c.xcoms.delete(DAG, run_id, "a", "k")
        check(c.xcoms.get(DAG, run_id, "a", "k").value is None, "deleted XCom still read")
        check(c.xcoms.head(DAG, run_id, "a", "k").len == 0, "HEAD after delete")

    def state_store(self):
        c, ti_id, _ = self.state["a"]
        c.task_state_store.set(ti_id, "cursor/1", {"page": 3}, expires_at=None)
        got = c.task_state_store.get(ti_id, "cursor/1")
        check(got.value == {"page": 3}, f"state store get: {got}")
        past = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)
        c.task_state_store.set(ti_id, "gone", 1, expires_at=past)
        check(isinstance(c.task_state_store.get(ti_id, "gone"), ErrorResponse), "an expired key was read")
        # The Core API sees the same entries.
        listed = af.TaskStateStoreApi(self.api).list_task_state_store(DAG, self.state["run_id"], "a")
        check([e.key for e in listed.task_state_store] == ["cursor/1"], f"Core API list: {listed}")
        c.task_state_store.delete(ti_id, "cursor/1")
        check(isinstance(c.task_state_store.get(ti_id, "cursor/1"), ErrorResponse), "deleted key read")
        c.task_state_store.set(ti_id, "x", "y", expires_at=None)
        c.task_state_store.clear(ti_id)
        check(isinstance(c.task_state_store.get(ti_id, "x"), ErrorResponse), "cleared key read")

    def rtif(self):
        c, ti_id, _ = self.state["a"]
        c.task_instances.set_rtif(ti_id, {"bash_command": "echo rendered by the SDK", "env": None})
        ti = self._ti("a")
        got = (ti.rendered_fields or {}).get("bash_command")
        check(got == "echo rendered by the SDK", f"Core API rendered_fields: {ti.rendered_fields}")

    def lookups(self):
        c, ti_id, _ = self.state["a"]
        run_id = self.state["run_id"]
        prev = c.task_instances.get_previous_successful_dagrun(ti_id)
        check(prev.start_date is None, f"a manual run without logical date has no previous: {prev}")
        states = c.task_instances.get_task_states(DAG, run_ids=[run_id])
        got = states.task_states.get(run_id, {})
        check(all(got.get(t) == "running" for t in TASKS), f"task_states {states.task_states}")
        n = c.task_instances.get_count(DAG, run_ids=[run_id], states=["running"])
        check(n.count == 3, f"count {n}")
        n = c.task_instances.get_count(DAG, task_ids=["a", "b"], run_ids=[run_id])
        check(n.count == 2, f"count of a, b: {n}")
        crumbs = c.task_instances.get_task_breakcrumbs(DAG, run_id)
        check(crumbs.breadcrumbs == [], f"breadcrumbs before any finished: {crumbs}")
        inactive = c.task_instances.validate_inlets_and_outlets(ti_id)
        check(inactive.inactive_assets == [], f"inactive assets: {inactive}")
        previous = c.task_instances.get_previous(DAG, "a")
        check(previous.task_instance is None, f"no run of a has a logical date: {previous}")
        check(c.dag_runs.get_state(DAG, run_id).state == DagRunState.RUNNING, "run state")
        detail = c.dag_runs.get_detail(DAG, run_id)
        check(detail.run_id == run_id and detail.state == DagRunState.RUNNING, f"detail {detail}")
        check(c.dag_runs.get_count(DAG).count == 1, "run count")
        check(c.dag_runs.get_count(DAG, states=["success"]).count == 0, "run count by state")
        check(c.dag_runs.get_previous(DAG, now()).dag_run is None, "no run has a logical date")
        dag = c.dags.get(DAG)
        check(dag.dag_id == DAG and "sdk" in dag.tags and dag.is_paused is False, f"dag {dag}")
        try:
            c.dags.get("no_such_dag")
            raise AssertionError("a missing DAG was found")
        except sdk.ServerResponseError as e:
            check(e.response.status_code == 404, f"missing DAG: {e.response.status_code}")

    def succeed_a(self):
        c, ti_id, _ = self.state["a"]
        c.task_instances.succeed(ti_id, now(), task_outlets=[], outlet_events=[], rendered_map_index=None)
        check(self._ti("a").state.value == "success", "a not success")
        crumbs = c.task_instances.get_task_breakcrumbs(DAG, self.state["run_id"])
        check([b["task_id"] for b in crumbs.breadcrumbs] == ["a"], f"breadcrumbs {crumbs}")

    def fail_b(self):
        c, ti_id, pid = self._worker("b")
        c.task_instances.start(ti_id, pid, now())
        c.task_instances.finish(ti_id, TaskInstanceState.FAILED, now(), rendered_map_index=None)
        check(self._ti("b").state.value == "failed", "b not failed")
        # Its try is over: a heartbeat is told to stop.
        try:
            c.task_instances.heartbeat(ti_id, pid)
            raise AssertionError("a heartbeat of a failed try was accepted")
        except sdk.ServerResponseError as e:
            check(e.response.status_code == 409, f"heartbeat after failed: {e.response.status_code}")

    def retry_c(self):
        c, ti_id, pid = self._worker("c")
        ctx = c.task_instances.start(ti_id, pid, now())
        check(ctx.max_tries == 1 and ctx.should_retry, f"c: max_tries {ctx.max_tries}, should_retry {ctx.should_retry}")
        c.task_instances.retry(ti_id, now(), rendered_map_index=None, retry_reason="from the SDK")
        ti = self._ti("c")
        check(ti.try_number == 2 or ti.state.value == "up_for_retry", f"c after retry: {ti.state} try {ti.try_number}")
        # Its second try starts, is released, and succeeds.
        self._token("c", 2)
        open(os.path.join(self.args.dir, "release"), "w").close()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            ti = self._ti("c")
            if ti.state and ti.state.value == "success":
                break
            time.sleep(0.2)
        check(ti.state.value == "success" and ti.try_number == 2, f"c: {ti.state} try {ti.try_number}")

    def run(self):
        self.step("login", self.login)
        self.step("trigger", self.trigger, needs=["token"])
        self.step("start a", self.start_a, needs=["run_id"])
        self.step("Airflow-API-Version", self.version_header, needs=["a"])
        self.step("variables", self.variables, needs=["a"])
        self.step("connection", self.connection, needs=["a"])
        self.step("xcoms", self.xcoms, needs=["a"])
        self.step("state store", self.state_store, needs=["a"])
        self.step("rtif", self.rtif, needs=["a"])
        self.step("lookups", self.lookups, needs=["a"])
        self.step("succeed a", self.succeed_a, needs=["a"])
        self.step("fail b", self.fail_b, needs=["run_id"])
        self.step("retry c", self.retry_c, needs=["run_id"])
        # Whatever happened, let every waiting task end.
        if self.args.dir:
            open(os.path.join(self.args.dir, "release"), "w").close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", help="the server's URL with its prefix")
    p.add_argument("--user", default="admin")
    p.add_argument("--password")
    p.add_argument("--dir", help="where the DAG's tasks write their tokens")
    p.add_argument("--strict-keys", action="store_true")
    p.add_argument("--print-yaml", action="store_true", help="print the DAG file (for --dir) and exit")
    args = p.parse_args()
    if not args.dir:
        p.error("--dir is required")
    if args.print_yaml:
        print(yaml(args.dir), end="")
        return 0
    if not args.base or not args.password:
        p.error("--base and --password are required")
    args.base = args.base.rstrip("/")
    d = TaskSdk(args)
    d.run()
    print(f"{d.passed} passed, {d.failed} failed", flush=True)
    return 1 if d.failed else 0


if __name__ == "__main__":
    sys.exit(main())
