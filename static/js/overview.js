// The DAG page's Overview tab, after Airflow 3's: the failed task instances of the runs
// the grid holds (each a link to its panel), those runs' durations as bars in the
// colour of their state, and the next run the scheduler will create (`next_dagrun_*`).
// It draws from the data the DAG page already polls, so it costs no request of its own.

import { h, s, put, badge, time, fmtDuration, durationOf } from "./ui.js";
import { href } from "./router.js";

/** The Overview: `{el, update({dag, grid})}`. */
export function overviewView({ dagId }) {
  const el = h("div", { class: "overview" });
  return {
    el,
    update({ dag, grid }) {
      const runs = [...grid.dag_runs].reverse();
      put(el,
        h("section", { class: "ov-card", id: "ov-next" }, h("h2", {}, "Next run"), nextRun(dag)),
        h("section", { class: "ov-card", id: "ov-durations" },
          h("h2", {}, "Run durations"),
          h("p", { class: "muted small" }, `The last ${runs.length} run${runs.length === 1 ? "" : "s"}, oldest on the left.`),
          durationChart(dagId, grid.dag_runs)),
        h("section", { class: "ov-card", id: "ov-failures" }, h("h2", {}, "Recent failures"), failures(dagId, runs)));
    },
  };
}

function nextRun(dag) {
  if (!dag.next_dagrun_run_after) {
    return h("p", { class: "muted" }, dag.is_paused ? "None: the DAG is paused." : "None scheduled.");
  }
  const row = (k, v) => h("div", {}, h("dt", {}, k), h("dd", {}, v));
  return h("dl", { class: "ov-facts" },
    row("Runs after", time(dag.next_dagrun_run_after)),
    dag.next_dagrun_logical_date ? row("Logical date", time(dag.next_dagrun_logical_date)) : null,
    dag.next_dagrun_data_interval_start ? row("Data interval", [time(dag.next_dagrun_data_interval_start), " – ", time(dag.next_dagrun_data_interval_end)]) : null,
    dag.is_paused ? h("p", { class: "muted small" }, "The DAG is paused: this run waits until it is unpaused.") : null);
}

/** Every failed task instance of `runs` (newest first), linked to its panel in the grid. */
function failures(dagId, runs) {
  const rows = [];
  for (const r of runs) {
    for (const [taskId, ti] of Object.entries(r.task_instances ?? {})) {
      if (ti.state === "failed") rows.push({ run: r, taskId, ti });
    }
  }
  if (!rows.length) {
    return h("p", { class: "muted empty" }, `No failed task instances in the last ${runs.length} runs.`);
  }
  return h("div", { class: "table-wrap" }, h("table", { class: "ov-failures" },
    h("thead", {}, h("tr", {}, ["Task", "Run", "Try", "Ended", "Duration"].map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map(({ run, taskId, ti }) => h("tr", {},
      h("td", {}, badge(ti.state), " ", h("a", { class: "ov-failed-task", href: href(["dags", dagId, "grid"], { run: run.dag_run_id, task: taskId }) }, taskId),
        ti.map_count != null ? h("span", { class: "muted" }, ` [${ti.map_count}]`) : null),
      h("td", {}, h("a", { href: href(["dags", dagId, "grid"], { run: run.dag_run_id }) }, run.dag_run_id)),
      h("td", { class: "num" }, ti.try_number ?? ""),
      h("td", {}, time(ti.end_date)),
      h("td", { class: "num" }, fmtDuration(durationOf(ti))))))));
}

const BAR_W = 18;
const BAR_GAP = 6;
const CHART_H = 140;
const AXIS_W = 56;

/** The runs' durations (oldest first) as bars in their state's colour, each a link to the run. */
function durationChart(dagId, runs) {
  if (!runs.length) return h("p", { class: "muted empty" }, "No runs yet.");
  const secs = runs.map((r) => durationOf(r) ?? 0);
  const max = Math.max(1, ...secs);
  const width = AXIS_W + runs.length * (BAR_W + BAR_GAP);
  const svg = s("svg", { class: "ov-chart", width, height: CHART_H + 24, viewBox: `0 0 ${width} ${CHART_H + 24}`, role: "group",
    "aria-label": `Durations of the last ${runs.length} runs; the longest took ${fmtDuration(max)}` },
  s("line", { class: "axis", x1: AXIS_W - 4, y1: 4, x2: AXIS_W - 4, y2: CHART_H }),
  s("line", { class: "axis", x1: AXIS_W - 4, y1: CHART_H, x2: width, y2: CHART_H }),
  s("text", { class: "axis-label", x: AXIS_W - 8, y: 12, "text-anchor": "end" }, fmtDuration(max)),
  s("text", { class: "axis-label", x: AXIS_W - 8, y: CHART_H, "text-anchor": "end" }, "0s"));
  runs.forEach((r, i) => {
    const hgt = Math.max(2, (secs[i] / max) * (CHART_H - 8));
    const x = AXIS_W + i * (BAR_W + BAR_GAP);
    svg.append(s("a", { href: href(["dags", dagId, "grid"], { run: r.dag_run_id }), class: "ov-bar-link" },
      s("rect", { class: `ov-bar st-${r.state ?? "none"}`, x, y: CHART_H - hgt, width: BAR_W, height: hgt, rx: 2, dataset: { run: r.dag_run_id } },
        s("title", {}, `${r.dag_run_id} · ${r.state} · ${durationOf(r) == null ? "not started" : fmtDuration(secs[i])}`))));
  });
  return h("div", { class: "ov-chart-wrap" }, svg);
}
