// The DAG page's Tasks tab, after Airflow 3's: every task once, with its group, operator
// and trigger rule (from `api/v2/dags/{id}/tasks`), its state in each run the grid holds
// as small squares (oldest left, each a link to that instance's panel) and its last
// state. The task's name links to the grid with the task chosen.

import { api, path } from "./api.js";
import { h, put, badge, dot, errorBox } from "./ui.js";
import { href } from "./router.js";

/** Tasks in the order the structure lists them, with the groups they sit in. */
function tasksOf(structure) {
  const out = [];
  (function walk(nodes, groups) {
    for (const n of nodes) {
      if (n.type === "task") out.push({ node: n, groups });
      else walk(n.children ?? [], [...groups, n.label ?? n.id]);
    }
  })(structure?.nodes ?? [], []);
  return out;
}

/** The Tasks tab: `{el, update({structure, grid, sel})}`. */
export function tasksView({ dagId }) {
  const el = h("div", { class: "tasks-view" }, h("p", { class: "muted loading" }, "Loading…"));
  /** task id → the task's API record (trigger rule, operator name), once read. */
  let details = null;
  let error = null;
  let last = null;
  api(path`api/v2/dags/${dagId}/tasks`).then((body) => {
    details = new Map((body.tasks ?? []).map((t) => [t.task_id, t]));
  }, (e) => {
    error = e;
  }).finally(() => last && draw(last));

  function draw({ structure, grid, sel }) {
    last = { structure, grid, sel };
    if (error) {
      put(el, errorBox(error));
      return;
    }
    const tasks = tasksOf(structure);
    if (!tasks.length) {
      put(el, h("p", { class: "muted empty" }, "This DAG has no tasks."));
      return;
    }
    const runs = grid.dag_runs;
    put(el, h("div", { class: "table-wrap" }, h("table", { class: "task-list" },
      h("thead", {}, h("tr", {}, ["Task", "Operator", "Trigger rule", "Recent runs", "Last state"].map((x) => h("th", {}, x)))),
      h("tbody", {}, tasks.map(({ node, groups }) => {
        const d = details?.get(node.id);
        const states = runs.map((r) => ({ run: r.dag_run_id, state: r.task_instances?.[node.id]?.state ?? null }));
        const lastState = [...states].reverse().find((x) => x.state)?.state ?? null;
        return h("tr", { class: sel.task === node.id ? "sel" : "", dataset: { task: node.id } },
          h("th", { scope: "row" },
            groups.length ? h("span", { class: "muted small" }, `${groups.join(" / ")} / `) : null,
            h("a", { class: "task-link", href: href(["dags", dagId, "grid"], { task: node.id }) }, node.label ?? node.id),
            node.is_mapped ? h("span", { class: "pill muted-pill" }, "mapped") : null),
          h("td", {}, h("code", {}, d?.operator_name ?? node.operator ?? "")),
          h("td", { class: "trigger-rule" }, d ? h("code", {}, d.trigger_rule) : h("span", { class: "muted" }, "…")),
          h("td", { class: "task-runs" }, states.map((x) => h("a", {
            href: href(["dags", dagId, "grid"], { run: x.run, task: node.id }), class: "task-run",
            title: `${x.run}: ${(x.state ?? "no status").replaceAll("_", " ")}`,
          }, dot(x.state)))),
          h("td", { class: "last-state" }, lastState ? badge(lastState) : h("span", { class: "muted" }, "–")));
      })))));
  }

  return { el, update: draw };
}
