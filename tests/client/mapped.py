#!/usr/bin/env python3
"""Reads a mapped task's instances through the official Airflow client (apache-airflow-client
3.3.2, unchanged), so its pydantic models check the shapes of the routes with `{map_index}`
and of `listMapped`.

The DAG is `client_mapped` (run.sh writes it into the server's DAG folder): task `m`, a
BashOperator mapped over three commands, the second of which fails, with a
`map_index_template`. Prints `ok <step>` / `FAIL <step>: <reason>` and
`N passed, N failed`; exits 1 if any step failed. `--strict-keys` fails a step whose
responses lack keys Airflow sends.
"""

import argparse
import sys

import airflow_client.client as af
from airflow_client.client.exceptions import NotFoundException
from airflow_client.client.models import DAGPatchBody, PatchTaskInstanceBody, TriggerDAGRunPostBody

from drive import Driver, StepError, check, client, expect_error, token

DAG = "client_mapped"
TASK = "m"
# What run.sh writes; kept here so the two cannot drift apart unnoticed (run.sh prints it).
YAML = """\
client_mapped:
  schedule: null
  start_date: 2024-01-01
  tasks:
    - task_id: m
      operator: airflow.providers.standard.operators.bash.BashOperator
      map_index_template: "item {{ ti.map_index }}"
      expand:
        bash_command: ["echo zero", "exit 3", "echo two"]
"""


class Mapped(Driver):
    def login(self):
        self.state["token"] = token(self.args.base, self.args.user, self.args.password)
        self.api = client(self.args.base, self.state["token"])

    def trigger(self):
        af.DAGApi(self.api).patch_dag(DAG, DAGPatchBody(is_paused=False))
        run = af.DagRunApi(self.api).trigger_dag_run(DAG, TriggerDAGRunPostBody(logical_date=None, conf={}))
        self.state["run_id"] = run.dag_run_id

    def list_mapped(self):
        tis = af.TaskInstanceApi(self.api).get_mapped_task_instances(DAG, self.state["run_id"], TASK)
        check(tis.total_entries == 3, f"{tis.total_entries} entries, want 3")
        got = [(t.map_index, t.state.value if t.state else None, t.rendered_map_index) for t in tis.task_instances]
        want = [(0, "success", "item 0"), (1, "failed", "item 1"), (2, "success", "item 2")]
        check(got == want, f"{got}, want {want}")
        failed = af.TaskInstanceApi(self.api).get_mapped_task_instances(
            DAG, self.state["run_id"], TASK, state=["failed"], order_by=["-map_index"])
        check([t.map_index for t in failed.task_instances] == [1], f"state filter: {failed.task_instances}")

    def one_instance(self):
        api = af.TaskInstanceApi(self.api)
        ti = api.get_mapped_task_instance(DAG, self.state["run_id"], TASK, 1)
        check((ti.map_index, ti.state.value, ti.rendered_map_index) == (1, "failed", "item 1"), f"{ti}")
        e = expect_error(lambda: api.get_task_instance(DAG, self.state["run_id"], TASK), NotFoundException, 404)
        check("add the map_index" in (e.body or ""), f"unmapped route: {e.body}")
        expect_error(lambda: api.get_mapped_task_instance(DAG, self.state["run_id"], TASK, 5), NotFoundException, 404)

    def tries(self):
        api = af.TaskInstanceApi(self.api)
        tries = api.get_mapped_task_instance_tries(DAG, self.state["run_id"], TASK, 2)
        check(tries.total_entries == 1 and tries.task_instances[0].map_index == 2, f"{tries}")
        one = api.get_mapped_task_instance_try_details(
            DAG, self.state["run_id"], TASK, task_try_number=1, map_index=2)
        check((one.map_index, one.try_number) == (2, 1), f"{one}")

    def log(self):
        res = af.TaskInstanceApi(self.api).get_log(DAG, self.state["run_id"], TASK, 1, map_index=2)
        lines = res.content.actual_instance or []
        inner = [getattr(x, "actual_instance", x) for x in lines]
        text = " ".join(str(getattr(x, "event", x)) for x in inner)
        check("echo two" in text, f"log of map index 2: {text[:300]}")

    def dependencies(self):
        deps = af.TaskInstanceApi(self.api).get_task_instance_dependencies_by_map_index(
            DAG, self.state["run_id"], TASK, 0)
        check(deps.dependencies == [], f"{deps}")

    def dry_run(self):
        res = af.TaskInstanceApi(self.api).patch_task_instance_dry_run_by_map_index(
            DAG, self.state["run_id"], TASK, 0, PatchTaskInstanceBody(new_state="failed"))
        check([t.map_index for t in res.task_instances] == [0], f"{res}")

    def list_filter(self):
        tis = af.TaskInstanceApi(self.api).get_task_instances(DAG, self.state["run_id"], map_index=[2])
        check([t.map_index for t in tis.task_instances] == [2], f"{tis}")

    def run(self):
        self.step("login", self.login)
        if "token" not in self.state:
            return
        self.step("trigger", self.trigger)
        self.args.dag = DAG
        self.step("wait_run", lambda: self.wait_run(want="failed"), needs=["run_id"])
        if "run_done" not in self.state:
            return
        self.step("list_mapped", self.list_mapped)
        self.step("one_instance", self.one_instance)
        self.step("tries", self.tries)
        self.step("log", self.log)
        self.step("dependencies", self.dependencies)
        self.step("dry_run", self.dry_run)
        self.step("list_filter", self.list_filter)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", help="the server's URL with its prefix")
    p.add_argument("--user", default="admin")
    p.add_argument("--password")
    p.add_argument("--strict-keys", action="store_true")
    p.add_argument("--print-yaml", action="store_true", help="print the DAG file and exit")
    args = p.parse_args()
    if args.print_yaml:
        print(YAML, end="")
        return 0
    if not args.base or not args.password:
        p.error("--base and --password are required")
    args.base = args.base.rstrip("/")
    d = Mapped(args)
    d.run()
    print(f"{d.passed} passed, {d.failed} failed", flush=True)
    return 1 if d.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StepError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
