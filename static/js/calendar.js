// The DAG page's Calendar tab, after Airflow 3's: a year of days, a cell per day in the
// colour of that day's runs (all succeeded / some failed / running / planned), a week
// per column. A run counts on the day of its `run_after` in the zone times are shown in.
// The runs come from the public `dagRuns` list filtered to the year, read page by page
// up to CAL_MAX runs; past that the tab says how many it left out rather than guess.

import { api, path } from "./api.js";
import { h, put, fmtTime, zone, errorBox } from "./ui.js";

const PAGE = 100;
/** The most runs one year's calendar reads (30 requests); a busier year says so. */
export const CAL_MAX = 3000;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS = ["Mon", "", "Wed", "", "Fri", "", ""];
const pad = (n) => String(n).padStart(2, "0");
/** A date's day of the week, Monday 0, by the calendar alone (no zone). */
const weekday = (y, m, d) => (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7;

/**
 * A day's cell class from its runs counted by state: any failed run makes it failed,
 * else any running one running, else any queued one planned, else all succeeded.
 */
export function dayClass(c) {
  if (c.failed) return "cal-failed";
  if (c.running) return "cal-running";
  if (c.queued || c.planned) return "cal-planned";
  if (c.success) return "cal-success";
  return "cal-none";
}

function dayTitle(date, c) {
  const parts = [["success", "success"], ["failed", "failed"], ["running", "running"], ["queued", "queued"]]
    .filter(([k]) => c[k]).map(([k, label]) => `${c[k]} ${label}`);
  const total = c.success + c.failed + c.running + c.queued;
  const runs = total ? `${total} run${total === 1 ? "" : "s"}: ${parts.join(", ")}` : "no runs";
  return `${date}: ${runs}${c.planned ? " · next run planned" : ""}`;
}

/** The Calendar: `{el, update({dag})}`. */
export function calendarView({ dagId }) {
  let year = Number(fmtTime(new Date().toISOString()).slice(0, 4));
  let dag = null;
  /** `{year, counts: Map(date → counts), total, read}` once loaded. */
  let data = null;
  let loading = null;
  let loadedAt = 0;

  const title = h("h2", { id: "cal-year" });
  const prev = h("button", { type: "button", class: "btn small", id: "cal-prev", "aria-label": "Previous year", onclick: () => go(-1) }, "‹");
  const next = h("button", { type: "button", class: "btn small", id: "cal-next", "aria-label": "Next year", onclick: () => go(1) }, "›");
  const body = h("div", { class: "cal-body" }, h("p", { class: "muted loading" }, "Loading…"));
  const note = h("p", { class: "muted small cal-note" });
  const legend = h("div", { class: "legend cal-legend", "aria-hidden": "true" },
    [["cal-success", "all succeeded"], ["cal-failed", "some failed"], ["cal-running", "running"], ["cal-planned", "planned / queued"], ["cal-none", "no runs"]]
      .map(([cls, label]) => h("span", {}, h("span", { class: `cal-cell ${cls}` }), label)));
  const el = h("div", { class: "calendar-view" }, h("div", { class: "view-bar" }, prev, title, next, legend), body, note);

  function go(step) {
    year += step;
    data = null;
    load();
  }

  async function load() {
    const want = year;
    title.textContent = String(want);
    put(body, h("p", { class: "muted loading" }, "Loading…"));
    // A day either side of the UTC year, so every zone's days of `want` are in.
    const from = new Date(Date.UTC(want, 0, 1) - 86400000).toISOString();
    const to = new Date(Date.UTC(want + 1, 0, 1) + 86400000).toISOString();
    const counts = new Map();
    let total = 0;
    let read = 0;
    const job = (async () => {
      for (let offset = 0; offset < CAL_MAX; offset += PAGE) {
        const page = await api(path`api/v2/dags/${dagId}/dagRuns`, {
          query: { run_after_gte: from, run_after_lt: to, order_by: "run_after", limit: PAGE, offset },
        });
        total = page.total_entries;
        for (const r of page.dag_runs) {
          read += 1;
          const date = fmtTime(r.run_after).slice(0, 10);
          if (!date.startsWith(`${want}-`)) continue;
          const c = counts.get(date) ?? { success: 0, failed: 0, running: 0, queued: 0, planned: 0 };
          if (r.state in c) c[r.state] += 1;
          counts.set(date, c);
        }
        if (page.dag_runs.length < PAGE || offset + PAGE >= total) break;
      }
    })();
    loading = job;
    try {
      await job;
      if (want !== year) return;
      data = { year: want, counts, total, read };
      loadedAt = Date.now();
      draw();
    } catch (e) {
      if (want === year) put(body, errorBox(e));
    } finally {
      if (loading === job) loading = null;
    }
  }

  function draw() {
    if (!data) return;
    const counts = new Map([...data.counts].map(([k, v]) => [k, { ...v }]));
    // The next run the scheduler will create is planned on its day.
    const nextDay = dag?.next_dagrun_run_after && !dag.is_paused ? fmtTime(dag.next_dagrun_run_after).slice(0, 10) : null;
    if (nextDay?.startsWith(`${data.year}-`)) {
      const c = counts.get(nextDay) ?? { success: 0, failed: 0, running: 0, queued: 0, planned: 0 };
      c.planned = 1;
      counts.set(nextDay, c);
    }
    const today = fmtTime(new Date().toISOString()).slice(0, 10);
    const y = data.year;
    const cells = [];
    const months = [];
    // Blank cells before 1 January so each column is a week, Monday on top.
    for (let i = 0; i < weekday(y, 1, 1); i++) cells.push(h("span", { class: "cal-cell cal-pad", "aria-hidden": "true" }));
    for (let m = 1; m <= 12; m++) {
      const days = new Date(Date.UTC(y, m, 0)).getUTCDate();
      months.push(h("span", { class: "cal-month", style: `grid-column: ${Math.floor(cells.length / 7) + 1}` }, MONTHS[m - 1]));
      for (let d = 1; d <= days; d++) {
        const date = `${y}-${pad(m)}-${pad(d)}`;
        const c = counts.get(date) ?? { success: 0, failed: 0, running: 0, queued: 0, planned: 0 };
        const t = dayTitle(date, c);
        cells.push(h("span", {
          class: `cal-cell ${dayClass(c)} ${date === today ? "cal-today" : ""}`, title: t, role: "img", "aria-label": t, dataset: { date },
        }));
      }
    }
    put(body, h("div", { class: "cal-scroll", tabindex: 0, role: "region", "aria-label": "Runs by day" },
      h("div", { class: "cal-months", "aria-hidden": "true" }, months),
      h("div", { class: "cal-wrap" },
        h("div", { class: "cal-weekdays", "aria-hidden": "true" }, WEEKDAYS.map((d) => h("span", {}, d))),
        h("div", { class: "cal-grid", role: "group", "aria-label": `Runs per day in ${y}` }, cells))));
    note.textContent = data.total > data.read
      ? `Counted the first ${data.read} of ${data.total} runs around ${y}; the later ones are left out.`
      : `${data.read} run${data.read === 1 ? "" : "s"} around ${y}, by the day of their run_after in ${zone()}.`;
  }

  load();
  return {
    el,
    update(d) {
      dag = d.dag;
      // Runs changed: read the year again, at most every five seconds.
      if (!loading && data && Date.now() - loadedAt > 5000) load();
      else draw();
    },
  };
}
