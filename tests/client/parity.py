#!/usr/bin/env python3
"""Calls, through the official Airflow client (apache-airflow-client 3.3.2, unchanged), the
Core API operations updraft gained for issue 19, so the client's models check every reply:
XCom create/update/delete, the task state store, task instance delete, batch list, bulk update, extra links and
external log URL, DAG run bulk update, wait and clearDagRuns, favorites and the
`is_favorite` filter, default connections, the connection test queue (disabled by
default: 403) and parseDagFile.

Works on its own run of `client_mapped` (run.sh writes that DAG: task `m` mapped over three
commands, the second failing). Prints `ok <step>` / `FAIL <step>: <reason>` and
`N passed, N failed`; exits 1 if any step failed.
"""

import argparse
import json
import sys

import airflow_client.client as af
from airflow_client.client.exceptions import ApiException, ForbiddenException, NotFoundException
from airflow_client.client import models as m

from drive import Driver, check, client, expect_error, token

DAG = "client_mapped"


class Parity(Driver):
    def login(self):
        self.state["token"] = token(self.args.base, self.args.user, self.args.password)
        self.api = client(self.args.base, self.state["token"])

    def trigger_and_wait(self):
        af.DAGApi(self.api).patch_dag(DAG, m.DAGPatchBody(is_paused=False))
        run = af.DagRunApi(self.api).trigger_dag_run(DAG, m.TriggerDAGRunPostBody(logical_date=None, conf={}))
        self.state["run_id"] = run.dag_run_id
        # `wait` answers once the run has finished: NDJSON, the last line its final state.
        text = af.DagRunApi(self.api).wait_dag_run_until_finished_without_preload_content(
            DAG, run.dag_run_id, interval=0.2, result=["m"]).data.decode()
        lines = [json.loads(line) for line in text.splitlines() if line]
        check(lines and lines[-1]["state"] == "failed", f"wait: {text}")
        check(lines[-1].get("results", {}).get("m") == ["zero", "two"], f"wait results: {lines[-1]}")

    def xcoms(self):
        api, run_id = af.XComApi(self.api), self.state["run_id"]
        made = api.create_xcom_entry(DAG, "m", run_id, m.XComCreateBody(key="made", value={"a": 1}, map_index=2))
        check(made.value == {"a": 1} and made.map_index == 2, f"create: {made}")
        expect_error(lambda: api.create_xcom_entry(DAG, "m", run_id, m.XComCreateBody(key="made", value=1, map_index=2)),
                     ApiException, 409)
        expect_error(lambda: api.create_xcom_entry(DAG, "nope", run_id, m.XComCreateBody(key="k", value=1)),
                     NotFoundException, 404)
        changed = api.update_xcom_entry(DAG, "m", run_id, "made", m.XComUpdateBody(value=[2], map_index=2))
        check(changed.value == [2], f"update: {changed}")
        got = api.get_xcom_entry(dag_id=DAG, dag_run_id=run_id, task_id="m", xcom_key="made", map_index=2)
        check(got.actual_instance.value == [2], f"read back: {got}")
        api.delete_xcom_entry(DAG, "m", run_id, "made", map_index=2)
        expect_error(lambda: api.delete_xcom_entry(DAG, "m", run_id, "made", map_index=2), NotFoundException, 404)

    def task_instances(self):
        api, run_id = af.TaskInstanceApi(self.api), self.state["run_id"]
        listed = api.get_task_instances_batch("~", "~", m.TaskInstancesBatchBody(
            dag_ids=[DAG], dag_run_ids=[run_id], state=["failed"]))
        check([t.map_index for t in listed.task_instances] == [1], f"batch list: {listed}")
        res = api.bulk_task_instances(DAG, run_id, m.BulkBodyBulkTaskInstanceBody(actions=[
            m.ActionsInner1(m.BulkUpdateActionBulkTaskInstanceBody(
                action="update", entities=[m.BulkTaskInstanceBody(task_id="m", map_index=1, new_state="success")]))]))
        check(res.update.success == [f"{DAG}.{run_id}.m[1]"] and not res.update.errors, f"bulk: {res}")
        check(api.get_mapped_task_instance(DAG, run_id, "m", 1).state.value == "success", "bulk update not applied")
        links = af.ExtraLinksApi(self.api).get_extra_links(DAG, run_id, "m", map_index=0)
        check(links.total_entries == 0 and links.extra_links == {}, f"links: {links}")
        e = expect_error(lambda: api.get_external_log_url(DAG, run_id, "m", 1, map_index=0), ApiException, 400)
        check("does not support external logs" in (e.body or ""), f"externalLogUrl: {e.body}")
        api.delete_task_instance(DAG, run_id, "m", map_index=2)
        expect_error(lambda: api.get_mapped_task_instance(DAG, run_id, "m", 2), NotFoundException, 404)

    def dag_runs(self):
        api, run_id = af.DagRunApi(self.api), self.state["run_id"]
        res = api.bulk_dag_runs(DAG, m.BulkBodyBulkDAGRunBody(actions=[
            m.ActionsInner(m.BulkUpdateActionBulkDAGRunBody(
                action="update", entities=[m.BulkDAGRunBody(dag_run_id=run_id, note="bulk note")]))]))
        check(res.update.success == [run_id], f"bulk runs: {res}")
        check(api.get_dag_run(DAG, run_id).note == "bulk note", "note not set")
        # The client cannot read a dry run's task instances itself (its oneOf of
        # NewTaskResponse and TaskInstanceResponse matches both): the raw reply.
        raw = api.clear_dag_runs_without_preload_content(
            DAG, m.BulkDAGRunClearBody(dag_runs=[m.BulkDAGRunBody(dag_run_id=run_id)], dry_run=True))
        dry = json.loads(raw.data)
        check(raw.status == 200 and dry["total_entries"] == 2, f"clearDagRuns dry run: {dry}")

    def state_store(self):
        api, run_id = af.TaskStateStoreApi(self.api), self.state["run_id"]
        api.set_task_state_store("k", DAG, run_id, "m", m.TaskStateStoreBody(value={"n": 1}), map_index=0)
        got = api.get_task_state_store("k", DAG, run_id, "m", map_index=0)
        check(got.value == {"n": 1} and got.expires_at is None, f"get: {got}")
        api.patch_task_state_store("k", DAG, run_id, "m", m.TaskStateStorePatchBody(value=[2]), map_index=0)
        listed = api.list_task_state_store(DAG, run_id, "m", map_index=0)
        check([(e.key, e.value) for e in listed.task_state_store] == [("k", [2])], f"list: {listed}")
        expect_error(lambda: api.get_task_state_store("nope", DAG, run_id, "m", map_index=0), NotFoundException, 404)
        expect_error(lambda: api.set_task_state_store("k", DAG, run_id, "m", m.TaskStateStoreBody(value=1), map_index=7),
                     NotFoundException, 404)
        api.delete_task_state_store("k", DAG, run_id, "m", map_index=0)
        api.set_task_state_store("k2", DAG, run_id, "m", m.TaskStateStoreBody(value=1), map_index=0)
        api.clear_task_state_store(DAG, run_id, "m", all_map_indices=True)
        check(api.list_task_state_store(DAG, run_id, "m", map_index=0).total_entries == 0, "clear")

    def favorites(self):
        api = af.DAGApi(self.api)
        api.favorite_dag(DAG)
        expect_error(lambda: api.favorite_dag(DAG), ApiException, 409)
        check([d.dag_id for d in api.get_dags(is_favorite=True).dags] == [DAG], "is_favorite=true")
        check(DAG not in [d.dag_id for d in api.get_dags(is_favorite=False, limit=100).dags], "is_favorite=false")
        api.unfavorite_dag(DAG)
        expect_error(lambda: api.unfavorite_dag(DAG), ApiException, 409)
        expect_error(lambda: api.favorite_dag("no_such_dag"), NotFoundException, 404)

    def connections(self):
        api = af.ConnectionApi(self.api)
        api.create_default_connections()
        check(api.get_connection("http_default").conn_type == "http", "http_default")
        e = expect_error(lambda: api.enqueue_connection_test(m.ConnectionTestRequestBody(
            connection_id="c1", conn_type="http")), ForbiddenException, 403)
        check("disabled" in (e.body or ""), f"enqueue-test: {e.body}")
        expect_error(lambda: api.get_connection_test("no-such-token"), NotFoundException, 404)

    def reparse(self):
        dag = af.DAGApi(self.api).get_dag(DAG)
        af.DAGParsingApi(self.api).reparse_dag_file(dag.file_token)
        expect_error(lambda: af.DAGParsingApi(self.api).reparse_dag_file("forged"), NotFoundException, 404)

    def run(self):
        self.step("login", self.login)
        self.step("trigger and wait", self.trigger_and_wait, needs=["token"])
        self.step("xcoms", self.xcoms, needs=["run_id"])
        self.step("task instances", self.task_instances, needs=["run_id"])
        self.step("dag runs", self.dag_runs, needs=["run_id"])
        self.step("state store", self.state_store, needs=["run_id"])
        self.step("favorites", self.favorites, needs=["token"])
        self.step("connections", self.connections, needs=["token"])
        self.step("parseDagFile", self.reparse, needs=["token"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="the server's URL with its prefix")
    p.add_argument("--user", default="admin")
    p.add_argument("--password", required=True)
    p.add_argument("--strict-keys", action="store_true")
    p.add_argument("--dir", help="ignored (run.sh's helper passes it)")
    args = p.parse_args()
    args.base = args.base.rstrip("/")
    d = Parity(args)
    d.run()
    print(f"{d.passed} passed, {d.failed} failed", flush=True)
    return 1 if d.failed else 0


if __name__ == "__main__":
    sys.exit(main())
