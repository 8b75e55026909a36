#!/usr/bin/env python3
"""Drives a running updraft through the official Airflow client, as a user's script would.

It uses only `airflow_client.client` (apache-airflow-client 3.3.2), unchanged: every
response goes through the client's own pydantic models, so a missing required field or a
wrong type fails the step that received it. That is the point: the Rust tests check
updraft against itself, this checks it against the client people actually run.

Each step prints `ok <step>` or `FAIL <step>: <reason>`; the last line is
`N passed, N failed`, and the exit code is 1 if any step failed. Keys that Airflow always
sends but the response lacked are printed as `warn` lines (the client tolerates them, as
they are optional in its models); `--strict-keys` counts them as failures.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from pydantic import BaseModel

import airflow_client.client as af
from airflow_client.client.exceptions import (
    ApiException,
    ConflictException,
    ForbiddenException,
    NotFoundException,
    UnauthorizedException,
)
from airflow_client.client.models import (
    ActionsInner4,
    BulkBodyVariableBody,
    BulkCreateActionVariableBody,
    BulkDeleteActionVariableBody,
    ClearTaskInstancesBody,
    ClearTaskInstancesBodyTaskIdsInner,
    ConnectionBody,
    DAGPatchBody,
    DAGRunPatchBody,
    EntitiesInner4,
    PoolBody,
    PoolPatchBody,
    TriggerDAGRunPostBody,
    VariableBody,
)

# How long a run may take to finish after it was triggered or cleared.
RUN_TIMEOUT_S = 120.0
POLL_S = 0.5
TERMINAL_RUN = ("success", "failed")
TERMINAL_TI = ("success", "failed", "skipped", "upstream_failed", "removed")
# Models whose keys Airflow itself leaves out at times, so absent keys are fine: health
# is served with `response_model_exclude_unset`, and log lines without a time (the
# "source details" group) have no `timestamp` key.
SPARSE_MODELS = {"HealthInfoResponse", "BaseInfoResponse", "SchedulerInfoResponse",
                 "TriggererInfoResponse", "DagProcessorInfoResponse", "StructuredLogMessage"}


class StepError(Exception):
    """A check inside a step did not hold."""


class RecordingClient(af.ApiClient):
    """The official ApiClient, remembering the last request and its raw JSON body, so a
    failure can name the request and the key check can see what the server really sent."""

    last_request = ""
    warnings: list = []

    def call_api(self, method, url, *args, **kwargs):
        parsed = urllib.parse.urlsplit(url)
        RecordingClient.last_request = f"{method} {parsed.path}" + (f"?{parsed.query}" if parsed.query else "")
        return super().call_api(method, url, *args, **kwargs)

    def response_deserialize(self, response_data, response_types_map=None):
        result = super().response_deserialize(response_data, response_types_map)
        try:
            raw = json.loads(response_data.data or b"null")
        except ValueError:
            return result
        for path, missing in missing_keys(result.data, raw, type(result.data).__name__):
            self.warnings.append(f"{self.last_request}: {path} lacks {missing}")
        return result


def missing_keys(model, raw, path):
    """Yields (path, [keys]) for every model in the response whose JSON object lacks some
    of the keys the client's model declares (Airflow sends all of them, null or not)."""
    if isinstance(model, list) and isinstance(raw, list):
        for i, (m, r) in enumerate(zip(model, raw)):
            yield from missing_keys(m, r, f"{path}[{i}]")
        return
    if isinstance(model, BaseModel) and "actual_instance" in type(model).model_fields:
        # oneOf/anyOf wrappers hold the real value.
        yield from missing_keys(model.actual_instance, raw, path)
        return
    if not isinstance(model, BaseModel) or not isinstance(raw, dict):
        return
    cls = type(model)
    if cls.__name__ in SPARSE_MODELS:
        return
    lacking = []
    for name, field in cls.model_fields.items():
        if name == "additional_properties":
            continue
        key = field.alias or name
        if key not in raw:
            lacking.append(key)
        else:
            sub = getattr(model, name, None)
            yield from missing_keys(sub, raw[key], f"{path}.{key}")
    if lacking:
        yield path, lacking


def describe(e):
    """One line (or a few) that says what went wrong, without a traceback for API errors."""
    if isinstance(e, ApiException):
        body = (e.body or "").strip().replace("\n", " ")
        return f"HTTP {e.status} {e.reason}: {body[:400]}"
    if isinstance(e, StepError):
        return str(e)
    # pydantic's ValidationError names the model, the field and the input: keep it whole.
    return f"{type(e).__name__}: {e}".strip().replace("\n", "\n    ")


def check(cond, msg):
    if not cond:
        raise StepError(msg)


def expect_error(fn, exc_type, status):
    """Runs fn and requires the client to raise exc_type with this HTTP status."""
    try:
        fn()
    except exc_type as e:
        check(e.status == status, f"status {e.status}, want {status}")
        return e
    except ApiException as e:
        raise StepError(f"raised {type(e).__name__} (HTTP {e.status}: {(e.body or '')[:200]}), "
                        f"want {exc_type.__name__} ({status})")
    raise StepError(f"no error, want {exc_type.__name__} ({status})")


def token(base, user, password):
    """A JWT from `POST {base}/auth/token`, as Airflow's docs show for SimpleAuthManager."""
    req = urllib.request.Request(
        f"{base}/auth/token",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, body = res.status, json.loads(res.read())
    except urllib.error.HTTPError as e:
        raise StepError(f"POST /auth/token for {user}: HTTP {e.code}: {e.read()[:200]!r}")
    check(status == 201, f"POST /auth/token for {user}: status {status}, want 201")
    check(isinstance(body.get("access_token"), str), f"no access_token in {body}")
    return body["access_token"]


def client(base, access_token):
    cfg = af.Configuration(host=base)
    if access_token is not None:
        cfg.access_token = access_token
    return RecordingClient(cfg)


class Driver:
    def __init__(self, args):
        self.args = args
        self.passed = 0
        self.failed = 0
        self.state = {}
        self.api = None

    def step(self, name, fn, needs=()):
        lacking = [n for n in needs if n not in self.state]
        if lacking:
            self.fail(name, f"skipped: needs {', '.join(lacking)} from an earlier step")
            return
        warned = len(RecordingClient.warnings)
        RecordingClient.last_request = ""
        try:
            fn()
        except Exception as e:  # every failure is a result, including the client's own
            where = RecordingClient.last_request
            self.fail(name, f"{where}: {describe(e)}" if where else describe(e))
            return
        new = RecordingClient.warnings[warned:]
        for w in new:
            print(f"warn {name}: {w}", flush=True)
        if new and self.args.strict_keys:
            self.fail(name, f"{len(new)} response(s) lack keys")
            return
        self.passed += 1
        print(f"ok {name}", flush=True)

    def fail(self, name, reason):
        self.failed += 1
        print(f"FAIL {name}: {reason}", flush=True)

    # The steps, in order. Each reads what it needs from self.state.

    def login(self):
        self.state["token"] = token(self.args.base, self.args.user, self.args.password)
        self.api = client(self.args.base, self.state["token"])

    def version(self):
        # The Airflow version updraft implements, as Airflow's clients read `version`.
        v = af.VersionApi(self.api).get_version()
        check(v.version == "3.3.2", f"version: {v}")

    def health(self):
        h = af.MonitorApi(self.api).get_health()
        check(h.metadatabase.status == "healthy", f"metadatabase: {h.metadatabase}")
        check(h.scheduler is not None and h.scheduler.status == "healthy", f"scheduler: {h.scheduler}")

    def no_token_401(self):
        e = expect_error(lambda: af.DAGApi(client(self.args.base, None)).get_dags(), UnauthorizedException, 401)
        detail = json.loads(e.body or "{}").get("detail")
        check(detail == "Not authenticated", f"detail {detail!r}")

    def list_dags(self):
        dags = af.DAGApi(self.api).get_dags(limit=100)
        ids = [d.dag_id for d in dags.dags]
        check(dags.total_entries >= len(ids), f"total_entries {dags.total_entries} < {len(ids)}")
        check(self.args.dag in ids, f"{self.args.dag} not among {ids}")

    def get_dag(self):
        d = af.DAGApi(self.api).get_dag(self.args.dag)
        check(d.dag_id == self.args.dag, f"dag_id {d.dag_id}")
        af.DAGApi(self.api).get_dag_details(self.args.dag)
        tasks = af.TaskApi(self.api).get_tasks(self.args.dag)
        check(tasks.total_entries == len(tasks.tasks) > 0, f"tasks: {tasks.total_entries}")

    def missing_dag_404(self):
        e = expect_error(lambda: af.DAGApi(self.api).get_dag("nope"), NotFoundException, 404)
        detail = json.loads(e.body or "{}").get("detail")
        want = "The Dag with ID: `nope` was not found"
        check(detail == want, f"detail {detail!r}, want {want!r}")

    def unpause(self):
        d = af.DAGApi(self.api).patch_dag(self.args.dag, DAGPatchBody(is_paused=False))
        check(d.is_paused is False, f"is_paused {d.is_paused} after unpausing")
        self.state["unpaused"] = True

    def viewer_trigger_403(self):
        if not self.args.viewer:
            raise StepError("no --viewer given")
        viewer = client(self.args.base, token(self.args.base, self.args.viewer, self.args.viewer_password))
        body = TriggerDAGRunPostBody(logical_date=None, conf={})
        e = expect_error(lambda: af.DagRunApi(viewer).trigger_dag_run(self.args.dag, body), ForbiddenException, 403)
        detail = json.loads(e.body or "{}").get("detail")
        check(detail == "Forbidden", f"detail {detail!r}")
        # Reading is what a viewer may do.
        af.DAGApi(viewer).get_dags()

    def trigger(self):
        body = TriggerDAGRunPostBody(logical_date=None, conf={"from": "drive.py"})
        run = af.DagRunApi(self.api).trigger_dag_run(self.args.dag, body)
        check(run.dag_id == self.args.dag, f"dag_id {run.dag_id}")
        check(run.conf == {"from": "drive.py"}, f"conf {run.conf}")
        check(run.state in ("queued", "running"), f"state {run.state} right after triggering")
        check(run.logical_date is None, f"logical_date {run.logical_date}, want None")
        # As Airflow 3.3.2 fills them for a REST trigger (samples/POST_dags_dagid_dagRuns.json).
        got = (run.run_type.value, run.triggered_by.value if run.triggered_by else None,
               run.triggering_user_name, run.dag_run_id.startswith("manual__"))
        check(got == ("manual", "rest_api", self.args.user, True), f"run_type, triggered_by, user, id: {got}")
        self.state["run_id"] = run.dag_run_id

    def trigger_conflict(self):
        body = TriggerDAGRunPostBody(dag_run_id=self.state["run_id"], logical_date=None)
        e = expect_error(lambda: af.DagRunApi(self.api).trigger_dag_run(self.args.dag, body), ConflictException, 409)
        detail = json.loads(e.body or "{}").get("detail")
        check(isinstance(detail, dict) and detail.get("reason") == "Unique constraint violation", f"detail {detail!r}")

    def run_note(self):
        run = af.DagRunApi(self.api).patch_dag_run(
            self.args.dag, self.state["run_id"], DAGRunPatchBody(note="from drive.py"), update_mask=["note"])
        check(run.note == "from drive.py" and run.state.value == "success", f"note {run.note!r}, state {run.state}")

    def wait_run(self, want="success"):
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            run = af.DagRunApi(self.api).get_dag_run(self.args.dag, self.state["run_id"])
            if run.state in TERMINAL_RUN:
                break
            if time.monotonic() > deadline:
                raise StepError(f"still {run.state} after {RUN_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)
        if run.state != want:
            tis = af.TaskInstanceApi(self.api).get_task_instances(self.args.dag, self.state["run_id"])
            states = ", ".join(f"{ti.task_id}={ti.state.value if ti.state else None}" for ti in tis.task_instances)
            raise StepError(f"run ended {run.state.value}, want {want}; tasks: {states}")
        check(run.end_date is not None and run.start_date is not None, "start or end date missing")
        runs = af.DagRunApi(self.api).get_dag_runs(self.args.dag)
        check(self.state["run_id"] in [r.dag_run_id for r in runs.dag_runs], "run not in the list")
        self.state["run_done"] = True

    def task_instances(self):
        tis = af.TaskInstanceApi(self.api).get_task_instances(self.args.dag, self.state["run_id"])
        check(tis.total_entries == len(tis.task_instances) > 0, f"{tis.total_entries} entries")
        states = {ti.task_id: ti.state for ti in tis.task_instances}
        check(all(s in TERMINAL_TI for s in states.values()), f"not all finished: {states}")
        ok = sorted(t for t, s in states.items() if s == "success")
        check(ok, f"no successful task: {states}")
        self.state["task"] = self.args.clear_task or ok[0]
        check(states.get(self.state["task"]) == "success", f"{self.state['task']} is {states.get(self.state['task'])}")
        ti = af.TaskInstanceApi(self.api).get_task_instance(self.args.dag, self.state["run_id"], self.state["task"])
        check(ti.try_number == 1, f"try_number {ti.try_number}, want 1")

    def log(self, try_number=1):
        res = af.TaskInstanceApi(self.api).get_log(self.args.dag, self.state["run_id"], self.state["task"], try_number)
        lines = res.content.actual_instance or []
        check(len(lines) > 0, "empty log")

    def variable(self):
        api, key = af.VariableApi(self.api), f"drive_var_{self.args.suffix}"
        v = api.post_variable(VariableBody(key=key, value="v1", description="from drive.py"))
        check((v.key, v.value) == (key, "v1"), f"posted {v}")
        check(api.get_variable(key).value == "v1", "read back")
        e = expect_error(lambda: api.post_variable(VariableBody(key=key, value="again")), ConflictException, 409)
        detail = json.loads(e.body or "{}").get("detail")
        want = f"The Variable with key: `{key}` already exists"
        check(detail == want, f"409 detail {detail!r}, want {want!r}")
        v = api.patch_variable(key, VariableBody(key=key, value="v2"), update_mask=["value"])
        check(v.value == "v2", f"patched value {v.value}")
        check(key in [x.key for x in api.get_variables(limit=100).variables], "not listed")
        api.delete_variable(key)
        expect_error(lambda: api.get_variable(key), NotFoundException, 404)
        # The bulk route, as `airflowctl variables import` uses it.
        keys = [f"{key}_bulk_{i}" for i in range(2)]
        res = api.bulk_variables(BulkBodyVariableBody(actions=[ActionsInner4(BulkCreateActionVariableBody(
            action="create", entities=[VariableBody(key=k, value=k) for k in keys]))]))
        check(res.create is not None and sorted(res.create.success) == keys, f"bulk create: {res}")
        res = api.bulk_variables(BulkBodyVariableBody(actions=[ActionsInner4(BulkDeleteActionVariableBody(
            action="delete", entities=[EntitiesInner4(k) for k in keys]))]))
        check(res.delete is not None and sorted(res.delete.success) == keys, f"bulk delete: {res}")

    def connection(self):
        api, cid = af.ConnectionApi(self.api), f"drive_conn_{self.args.suffix}"
        body = ConnectionBody(connection_id=cid, conn_type="http", description="from drive.py",
                              host="example.com", login="user1", password="conn-secret-123",
                              var_schema="https", port=443, extra='{"timeout": 5}')
        c = api.post_connection(body)
        check((c.connection_id, c.host, c.port) == (cid, "example.com", 443), f"posted {c}")
        check(c.password == "***", f"password {c.password!r}, want '***' (masked)")
        expect_error(lambda: api.post_connection(body), ConflictException, 409)
        c = api.get_connection(cid)
        check(c.var_schema == "https" and c.extra == '{"timeout": 5}', f"read back {c}")
        c = api.patch_connection(cid, ConnectionBody(connection_id=cid, conn_type="http", host="example.org"),
                                 update_mask=["host"])
        check(c.host == "example.org" and c.login == "user1", f"patched {c}")
        check(cid in [x.connection_id for x in api.get_connections(limit=100).connections], "not listed")
        api.delete_connection(cid)
        expect_error(lambda: api.get_connection(cid), NotFoundException, 404)

    def pool(self):
        api, name = af.PoolApi(self.api), f"drive_pool_{self.args.suffix}"
        p = api.post_pool(PoolBody(name=name, slots=3, description="from drive.py"))
        check((p.name, p.slots, p.open_slots) == (name, 3, 3), f"posted {p}")
        check(api.get_pool(name).slots == 3, "read back")
        expect_error(lambda: api.post_pool(PoolBody(name=name, slots=1)), ConflictException, 409)
        p = api.patch_pool(name, PoolPatchBody(slots=5), update_mask=["slots"])
        check(p.slots == 5 and p.description == "from drive.py", f"patched {p}")
        names = [x.name for x in api.get_pools(limit=100).pools]
        check(name in names and "default_pool" in names, f"pools {names}")
        api.delete_pool(name)
        expect_error(lambda: api.get_pool(name), NotFoundException, 404)

    def reads(self):
        """One step per read-only endpoint a script commonly calls, so each response goes
        through its client model. Assets and backfills are left out: updraft has neither."""
        dag = self.args.dag
        calls = [
            ("dag_tags", lambda: af.DAGApi(self.api).get_dag_tags()),
            ("dag_source", lambda: af.DagSourceApi(self.api).get_dag_source(dag)),
            ("dag_stats", lambda: af.DagStatsApi(self.api).get_dag_stats(dag_ids=[dag])),
            ("dag_versions", lambda: af.DagVersionApi(self.api).get_dag_versions(dag)),
            ("dag_warnings", lambda: af.DagWarningApi(self.api).list_dag_warnings()),
            ("import_errors", lambda: af.ImportErrorApi(self.api).get_import_errors()),
            ("event_logs", lambda: af.EventLogApi(self.api).get_event_logs(limit=100)),
            ("jobs", lambda: af.JobApi(self.api).get_jobs()),
            ("plugins", lambda: af.PluginApi(self.api).get_plugins()),
            ("providers", lambda: af.ProviderApi(self.api).get_providers()),
            # `[api] expose_config` is off by default, in Airflow as here.
            ("config_403", lambda: expect_error(lambda: af.ConfigApi(self.api).get_config(), ForbiddenException, 403)),
        ]
        if "task" in self.state:
            run, task = self.state["run_id"], self.state["task"]
            calls += [
                ("xcom_entries", lambda: af.XComApi(self.api).get_xcom_entries(dag, run, task)),
                ("xcom_entry", lambda: af.XComApi(self.api).get_xcom_entry(dag, task, run, "return_value")),
                ("ti_dependencies", lambda: af.TaskInstanceApi(self.api).get_task_instance_dependencies(dag, run, task)),
            ]
        for name, call in calls:
            self.step(f"read_{name}", call)

    def clear(self):
        body = ClearTaskInstancesBody(
            dry_run=False, only_failed=False, dag_run_id=self.state["run_id"],
            task_ids=[ClearTaskInstancesBodyTaskIdsInner(self.state["task"])])
        res = af.TaskInstanceApi(self.api).post_clear_task_instances(self.args.dag, body)
        cleared = [ti.task_id for ti in res.task_instances]
        check(cleared == [self.state["task"]], f"cleared {cleared}, want [{self.state['task']}]")
        self.state["cleared"] = True

    def rerun(self):
        api = af.TaskInstanceApi(self.api)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            ti = api.get_task_instance(self.args.dag, self.state["run_id"], self.state["task"])
            if ti.try_number >= 2 and ti.state in TERMINAL_TI:
                break
            if time.monotonic() > deadline:
                raise StepError(f"try {ti.try_number} still {ti.state} after {RUN_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)
        check((ti.try_number, ti.state) == (2, "success"), f"try {ti.try_number} ended {ti.state}")
        tries = api.get_task_instance_tries(self.args.dag, self.state["run_id"], self.state["task"])
        check(sorted(t.try_number for t in tries.task_instances) == [1, 2], f"tries {tries.total_entries}")
        self.log(2)
        self.wait_run()

    def run(self):
        self.step("login", self.login)
        if "token" not in self.state:
            return
        self.step("version", self.version)
        self.step("health", self.health)
        self.step("no_token_401", self.no_token_401)
        self.step("list_dags", self.list_dags)
        self.step("get_dag", self.get_dag)
        self.step("missing_dag_404", self.missing_dag_404)
        self.step("unpause", self.unpause)
        self.step("viewer_trigger_403", self.viewer_trigger_403)
        self.step("trigger", self.trigger)
        self.step("trigger_conflict", self.trigger_conflict, needs=["run_id"])
        self.step("wait_run", self.wait_run, needs=["run_id"])
        self.step("run_note", self.run_note, needs=["run_done"])
        self.step("task_instances", self.task_instances, needs=["run_done"])
        self.step("log", self.log, needs=["task"])
        self.step("variable", self.variable)
        self.step("connection", self.connection)
        self.step("pool", self.pool)
        self.reads()
        self.step("clear", self.clear, needs=["task"])
        self.step("rerun", self.rerun, needs=["cleared"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="the server's URL with its prefix, e.g. http://127.0.0.1:8080/d12345")
    p.add_argument("--user", default="admin")
    p.add_argument("--password", required=True)
    p.add_argument("--viewer", help="a user with the viewer role, for the 403 check")
    p.add_argument("--viewer-password")
    p.add_argument("--dag", default="example_bash_operator")
    p.add_argument("--clear-task", help="the task to clear and re-run (default: the first successful one)")
    p.add_argument("--suffix", default=str(int(time.time())), help="makes variable, connection and pool names unique")
    p.add_argument("--strict-keys", action="store_true", help="fail a step whose responses lack keys Airflow sends")
    args = p.parse_args()
    args.base = args.base.rstrip("/")
    d = Driver(args)
    d.run()
    if not d.state.get("token"):
        print("login failed: nothing else was tried", flush=True)
    print(f"{d.passed} passed, {d.failed} failed", flush=True)
    return 1 if d.failed else 0


if __name__ == "__main__":
    sys.exit(main())
