// The DAG page: a header (pause, schedule, next run, tags, trigger), then one of its
// views (overview, grid, graph, runs, tasks, calendar, audit log, code, details) with a side panel for the chosen run or task
// instance. The URL holds everything: `dags/<id>/<view>?run=<run_id>&task=<task_id>`,
// so reloads, deep links and back/forward land on the same screen. The page polls while
// runs are active and updates in place.

import { api, path, ApiError } from "./api.js";
import { put, h, badge, time, fmtTime, fmtTimeZone, fromWallClock, fmtDuration, durationOf, isActive, Poller, errorBox, pauseSwitch, notify } from "./ui.js";
import { href, navigate } from "./router.js";
import { renderGrid } from "./grid.js";
import { renderGraph, panZoom } from "./graph.js";
import { tiPanel, runPanel } from "./ti.js";
import { openTrigger } from "./trigger.js";
import { viewLinks } from "./plugins.js";
import { assetCondition, assetSchedule } from "./assets.js";
import { overviewView } from "./overview.js";
import { tasksView } from "./tasks.js";
import { calendarView } from "./calendar.js";
import { eventsView } from "./events.js";
import { watchChanges, reportFetch } from "./fresh.js";

// Airflow 3's tabs in its order (Overview, Runs, Tasks, Calendar, Audit Log, Code,
// Details), with the grid and graph, which its page keeps beside them, after Overview.
const VIEWS = [["overview", "Overview"], ["grid", "Grid"], ["graph", "Graph"], ["runs", "Runs"], ["tasks", "Tasks"],
  ["calendar", "Calendar"], ["events", "Audit Log"], ["code", "Code"], ["details", "Details"]];
/** The views drawn by a module of their own: each makes `{el, update(data)}`. */
const MODULE_VIEWS = { overview: overviewView, tasks: tasksView, calendar: calendarView, events: eventsView };
/** Runs the grid shows at once: Airflow's choices, and its default. */
const GRID_COUNTS = [10, 25, 50, 100, 365];
const GRID_RUNS = 25;
/** Rows a page of the Runs tab shows: the choices and the default. */
const RUNS_COUNTS = [10, 25, 50, 100];
const RUNS_PAGE = 50;
/** The filters by run state and type, shared by the grid and the Runs tab. */
const RUN_STATES = ["queued", "running", "success", "failed"];
const RUN_TYPES = ["manual", "scheduled", "backfill", "asset_triggered", "asset_materialization", "operator_triggered"];
/** The Runs tab's sortable columns: header -> `order_by` field. */
const RUN_SORTS = { State: "state", Run: "run_id", "Run after": "run_after", "Logical date": "logical_date", Started: "start_date", Ended: "end_date", Duration: "duration" };

export function dagPage(main, route, ctx) {
  const dagId = route.segments[1];
  let view = route.segments[2] ?? "grid";
  let sel = selection(route.query);
  const storeKey = `updraft.collapsed:${location.pathname.split("/dags/")[0]}:${dagId}`;
  const collapsed = new Set(JSON.parse(sessionStorage.getItem(storeKey) ?? "[]"));

  let dag = null;
  let structure = null;
  let parsedAt = null;
  let grid = null;
  let lastKey = "";
  let graph = null;
  let graphKey = "";
  /** Zoom and pan of the graph on screen (`panZoom`). */
  let zoomer = null;
  let panel = null;
  let panelKey = "";
  let details = null;
  let source = null;
  /** The DAG's versions (`dagVersions`), newest first, read with the source. */
  let versions = [];
  let runsList = null;
  /** The view a module draws (`MODULE_VIEWS`), while it is shown: `{view, v}`. */
  let moduleView = null;
  /** The query the shown `runsList` answered, to refetch when the URL asks for another. */
  let runsKey = "";
  /** The query the shown `grid` answered. */
  let gridKey = "";
  /** The DAG's backfill while it is not completed (from `ui/backfill`), else null. */
  let backfill = null;
  /** What the DAG does with assets: `{condition, produces, consumes}` (read when it is parsed). */
  let assets = null;

  const head = h("header", { class: "dag-head" }, h("p", { class: "muted" }, "Loading…"));
  const tabs = h("nav", { class: "tabs", "aria-label": "DAG views" });
  const content = h("div", { class: "dag-main" });
  const side = h("aside", { class: "side", hidden: true });
  const body = h("div", { class: "dag-body" }, content, side);
  main.append(h("section", { class: "page dag-page" },
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "dags" }, "DAGs"), h("span", { "aria-hidden": "true" }, " / "), h("span", {}, dagId)),
    head, tabs, body));

  function selection(q) {
    const map = q.get("map_index");
    const version = q.get("version");
    const num = (k, dflt) => (/^\d+$/.test(q.get(k) ?? "") ? Number(q.get(k)) : dflt);
    return { run: q.get("run"), task: q.get("task"), try: q.get("try") ? Number(q.get("try")) : null, map: map != null && map !== "" ? Number(map) : null,
      version: version ? Number(version) : null,
      // Paging and filters of the grid and the Runs tab, kept in the URL.
      limit: num("limit", null), offset: num("offset", null),
      runState: RUN_STATES.includes(q.get("run_state")) ? q.get("run_state") : null,
      runType: RUN_TYPES.includes(q.get("run_type")) ? q.get("run_type") : null,
      from: q.get("run_after_gte"), to: q.get("run_after_lte"), user: q.get("triggered_by"), order: q.get("order_by") };
  }

  /** The URL query of the current filters, paging and selection, with `over` applied. */
  function listQuery(over = {}) {
    return {
      run: sel.run, task: sel.task, limit: sel.limit, offset: sel.offset, run_state: sel.runState, run_type: sel.runType,
      run_after_gte: sel.from, run_after_lte: sel.to, triggered_by: sel.user, order_by: sel.order, ...over,
    };
  }

  /** What the grid asks the server for: a page by offset, or the page of the chosen run. */
  function gridQuery() {
    const q = { limit: GRID_COUNTS.includes(sel.limit) ? sel.limit : GRID_RUNS, state: sel.runState, run_type: sel.runType };
    if (sel.offset != null) q.offset = sel.offset;
    else if (sel.run) q.around = sel.run;
    return q;
  }

  function renderTabs() {
    put(tabs, ...VIEWS.map(([v, label]) => h("a", {
      href: href(["dags", dagId, v], { run: sel.run, task: sel.task, run_state: sel.runState, run_type: sel.runType }), class: "tab", "aria-current": v === view ? "page" : null,
    }, label)));
  }

  function renderHead() {
    // The newest run, when the grid shows the newest page unfiltered.
    const latest = !grid?.offset && !sel.runState && !sel.runType ? grid?.dag_runs.at(-1) : null;
    put(head,
      h("div", { class: "dag-title" },
        pauseSwitch(dag, async (unpause) => {
          try {
            await api(path`api/v2/dags/${dagId}`, { method: "PATCH", body: { is_paused: !unpause } });
            notify(unpause ? `${dagId} is active` : `${dagId} is paused`, "success");
            poller.kick();
          } catch (e) {
            notify(e.message, "error");
          }
        }),
        h("h1", {}, dag.dag_display_name ?? dagId),
        dag.is_paused ? h("span", { class: "pill muted-pill" }, "paused") : null,
        latest ? badge(latest.state) : null,
        h("span", { class: "spacer" }),
        viewLinks(["dag"], { dag_id: dagId }),
        h("button", { type: "button", class: "btn primary", id: "trigger", onclick: trigger },
          h("span", { "aria-hidden": "true" }, "▶ "), "Trigger")),
      dag.description ? h("p", { class: "muted desc" }, dag.description) : null,
      h("dl", { class: "dag-facts" },
        h("div", {}, h("dt", {}, "Schedule"), h("dd", {}, assets?.condition ? h("code", { class: "asset-schedule", title: dag.timetable_description ?? "" }, assets.condition)
          : dag.timetable_summary ? h("code", { title: dag.timetable_description ?? "" }, dag.timetable_summary) : h("span", { class: "muted" }, dag.timetable_description ?? "None"))),
        h("div", {}, h("dt", {}, "Next run"), h("dd", {}, dag.next_dagrun_run_after ? time(dag.next_dagrun_run_after) : h("span", { class: "muted" }, "–"))),
        h("div", {}, h("dt", {}, "Owner"), h("dd", {}, (dag.owners ?? []).join(", ") || "–")),
        assets?.consumes.length ? h("div", { class: "dag-assets dag-consumes" }, h("dt", {}, "Consumes"), h("dd", {}, assets.consumes.map(assetLink))) : null,
        assets?.produces.length ? h("div", { class: "dag-assets dag-produces" }, h("dt", {}, "Produces"), h("dd", {}, assets.produces.map(assetLink))) : null,
        dag.tags?.length ? h("div", {}, h("dt", {}, "Tags"), h("dd", { class: "tags" }, dag.tags.map((t) => h("a", { class: "tag small", href: href(["dags"], { tags: t.name }) }, t.name)))) : null),
      dag.has_import_errors ? h("div", { class: "banner banner-error" }, "This DAG's file has an import error; the page shows its last good version.") : null,
      backfill ? backfillBanner(backfill) : null);
  }

  /** A link to an asset's page; a producer's link names the tasks that update it. */
  function assetLink(a) {
    return h("a", { href: href(["assets", String(a.id)]), class: "asset-link-inline", title: a.tasks ? `updated by ${a.tasks.join(", ")}` : a.uri }, a.name);
  }

  /** The assets this DAG's schedule waits on and its tasks' outlets update. */
  async function loadAssets(d) {
    const onAssets = /^Asset( or |$)/.test(d.timetable_summary ?? "");
    const [list, det] = await Promise.all([
      api("api/v2/assets", { query: { dag_ids: dagId, limit: 100, order_by: "name" } }),
      onAssets ? api(path`api/v2/dags/${dagId}/details`) : null,
    ]);
    const consumes = [];
    const produces = [];
    for (const a of list.assets) {
      if ((a.scheduled_dags ?? []).some((x) => x.dag_id === dagId)) consumes.push(a);
      const tasks = (a.producing_tasks ?? []).filter((x) => x.dag_id === dagId).map((x) => x.task_id);
      if (tasks.length) produces.push({ ...a, tasks });
    }
    return { condition: det ? assetSchedule(det.timetable_summary, det.asset_expression) : null, consumes, produces };
  }

  /** "Backfill in progress: N of M runs", with pause/unpause and cancel. */
  function backfillBanner(b) {
    const r = b.runs;
    const done = r.success + r.failed;
    const act = (verb, label, danger = false) => h("button", {
      type: "button", class: danger ? "btn small danger" : "btn small", id: `backfill-${verb}`,
      onclick: async () => {
        try {
          await api(path`api/v2/backfills/${b.id}/${verb}`, { method: "PUT" });
          notify(`Backfill ${b.id}: ${label.toLowerCase()}`, "success");
          poller.kick();
        } catch (e) {
          notify(e.message, "error");
        }
      },
    }, label);
    return h("div", { class: "banner banner-backfill", id: "backfill-banner", role: "status" },
      h("strong", {}, b.is_paused ? "Backfill paused: " : "Backfill in progress: "),
      `${done} of ${r.total} runs`,
      h("progress", { max: r.total || 1, value: done, "aria-label": "Backfill progress" }),
      h("span", { class: "muted" }, time(b.from_date), " – ", time(b.to_date),
        r.running ? ` · ${r.running} running` : "", r.failed ? ` · ${r.failed} failed` : "",
        r.skipped_dates ? ` · ${r.skipped_dates} dates skipped` : "",
        dag.is_paused ? " · the DAG is paused: its runs wait" : ""),
      h("span", { class: "spacer" }),
      b.is_paused ? act("unpause", "Unpause") : act("pause", "Pause"),
      act("cancel", "Cancel", true));
  }

  async function trigger() {
    try {
      const run = await openTrigger(dagId);
      if (run?.backfill) poller.kick();
      else if (run) {
        navigate(href(["dags", dagId, view === "graph" ? "graph" : "grid"], { run: run.dag_run_id }));
        poller.kick();
      }
    } catch (e) {
      notify(e.message, "error");
    }
  }

  const onToggle = (id) => {
    if (collapsed.has(id)) collapsed.delete(id);
    else collapsed.add(id);
    sessionStorage.setItem(storeKey, JSON.stringify([...collapsed]));
    renderView(true);
  };
  const onToggleAll = (collapse) => {
    collapsed.clear();
    if (collapse) (function walk(nodes) {
      for (const n of nodes) if (n.type === "task_group") {
        collapsed.add(n.id);
        walk(n.children);
      }
    })(structure.nodes);
    sessionStorage.setItem(storeKey, JSON.stringify([...collapsed]));
    renderView(true);
  };

  /** The run whose states the graph shows: the chosen one, else the newest. */
  const shownRun = () => grid?.dag_runs.find((r) => r.dag_run_id === sel.run) ?? (sel.run ? null : grid?.dag_runs.at(-1));

  function renderView(force = false) {
    if (!dag || !structure || !grid) return;
    if (view === "grid") {
      const keep = { limit: sel.limit, offset: sel.offset, run_state: sel.runState, run_type: sel.runType };
      keepFocus(content, () => h("div", { class: "grid-view" }, gridBar(), renderGrid({ dagId, view, structure, grid, collapsed, selected: sel, onToggle, onToggleAll, keep })), (el) => {
        const wrap = el.querySelector(".grid-wrap") ?? el;
        wrap.scrollLeft = wrap.scrollWidth;
      });
    } else if (view === "graph") {
      const key = JSON.stringify([structure, [...collapsed]]);
      if (force || !graph || key !== graphKey || !content.querySelector(".graph-wrap")) {
        graphKey = key;
        graph = renderGraph({ dagId, structure, collapsed, onToggle });
        const run = shownRun();
        const runPicker = h("select", { id: "graph-run", "aria-label": "Run shown in the graph" },
          grid.dag_runs.length ? [...grid.dag_runs].reverse().map((r) => h("option", { value: r.dag_run_id, selected: run?.dag_run_id === r.dag_run_id }, `${r.dag_run_id} · ${r.state}`))
            : h("option", { value: "" }, "No runs yet"));
        runPicker.addEventListener("change", () => navigate(href(["dags", dagId, "graph"], { run: runPicker.value, task: sel.task })));
        const focused = document.activeElement?.dataset?.key;
        const wrap = h("div", {
          class: "graph-wrap zoomable", tabindex: 0, style: `height: clamp(240px, ${Math.ceil(graph.size.h) + 8}px, 70vh)`,
          "aria-label": "Task graph: + and - zoom, 0 fits, arrows pan, drag to pan", title: "Wheel or +/- to zoom, drag to pan",
        }, graph.el);
        const btn = (id, label, text, onclick) => h("button", { type: "button", class: "btn small", id, "aria-label": label, title: label, onclick }, text);
        const zoomBar = h("span", { class: "zoom-bar", role: "group", "aria-label": "Zoom" },
          btn("graph-zoom-out", "Zoom out", "−", () => zoomer?.zoomBy(0.8)),
          btn("graph-zoom-in", "Zoom in", "+", () => zoomer?.zoomBy(1.25)),
          btn("graph-fit", "Fit the graph to the view", "Fit", () => zoomer?.fit()),
          btn("graph-full", "Full size 1:1", "1:1", () => zoomer?.reset()));
        put(content,
          h("div", { class: "view-bar" }, h("label", { for: "graph-run" }, "Run"), runPicker, zoomBar, legend()),
          wrap);
        zoomer?.destroy();
        zoomer = panZoom(wrap, graph);
        // A deep link to a task shows its node, wherever it is in a wide graph.
        if (sel.task) zoomer.reveal(content.querySelector(`[data-key="${CSS.escape(`node:${sel.task}`)}"]`));
        if (focused) content.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
      }
      const run = shownRun();
      const picker = content.querySelector("#graph-run");
      if (picker && run) {
        if (![...picker.options].some((o) => o.value === run.dag_run_id)) {
          renderView(true);
          return;
        }
        picker.value = run.dag_run_id;
        const opt = [...picker.options].find((o) => o.value === run.dag_run_id);
        opt.textContent = `${run.dag_run_id} · ${run.state}`;
      }
      const states = Object.fromEntries(Object.entries(run?.task_instances ?? {}).map(([k, v]) => [k, v.state]));
      const counts = Object.fromEntries(Object.entries(run?.task_instances ?? {}).filter(([, v]) => v.map_count != null).map(([k, v]) => [k, v.map_count]));
      graph.update(states, run?.dag_run_id ?? null, sel.task, counts);
    } else if (MODULE_VIEWS[view]) {
      if (moduleView?.view !== view || !content.contains(moduleView.v.el)) {
        moduleView = { view, v: MODULE_VIEWS[view]({ dagId }) };
        put(content, moduleView.v.el);
      }
      moduleView.v.update({ dag, structure, grid, sel });
    } else if (view === "runs") {
      if (runsList) keepFocus(content, () => h("div", { class: "runs-view" }, runsBar(runsList), runsTable(runsList), runsPager(runsList)));
      else if (!content.querySelector(".loading")) put(content, h("p", { class: "muted loading" }, "Loading…"));
    } else if (view === "details") {
      if (details) put(content, detailsView(details));
      else loadDetails();
    } else if (view === "code") {
      if (source && source.wanted === sel.version) put(content, codeView(source));
      else loadSource();
    }
  }

  function legend() {
    return h("div", { class: "legend", "aria-hidden": "true" }, ["success", "running", "failed", "queued", "up_for_retry", "upstream_failed", "skipped", "scheduled"]
      .map((st) => h("span", {}, h("span", { class: `dot st-${st}` }), st.replaceAll("_", " "))));
  }

  function runsTable(list) {
    const filtered = sel.runState || sel.runType || sel.from || sel.to || sel.user;
    if (!list.dag_runs.length) return h("p", { class: "muted empty" }, filtered ? "No runs match these filters." : "No runs yet.");
    const order = sel.order ?? "-run_after";
    const head = (x) => {
      const field = RUN_SORTS[x];
      if (!field) return h("th", { scope: "col" }, x);
      const dir = order === field ? "ascending" : order === `-${field}` ? "descending" : null;
      // A click sorts by the column, newest/largest first; a second click flips it.
      const next = order === `-${field}` ? field : `-${field}`;
      return h("th", { scope: "col", "aria-sort": dir ?? "none" },
        h("a", { href: href(["dags", dagId, "runs"], listQuery({ order_by: next === "-run_after" ? null : next, offset: null })), class: "sort", id: `sort-${field}`, dataset: { key: `sort:${field}` } },
          x, h("span", { class: "sort-mark", "aria-hidden": "true" }, dir === "ascending" ? " ▲" : dir === "descending" ? " ▼" : "")));
    };
    return h("div", { class: "table-wrap" }, h("table", { class: "runs" },
      h("thead", {}, h("tr", {}, ["State", "Run", "Type", "Run after", "Logical date", "Started", "Ended", "Duration", "Triggered by"].map(head))),
      h("tbody", {}, list.dag_runs.map((r) => h("tr", { class: r.dag_run_id === sel.run ? "sel" : "" },
        h("td", {}, badge(r.state)),
        h("td", {}, h("a", { href: href(["dags", dagId, "runs"], listQuery({ run: r.dag_run_id, task: null })) }, r.dag_run_id)),
        h("td", {}, r.run_type),
        h("td", {}, time(r.run_after)),
        h("td", {}, time(r.logical_date)),
        h("td", {}, time(r.start_date)),
        h("td", {}, time(r.end_date)),
        h("td", { class: "num" }, fmtDuration(durationOf(r))),
        h("td", {}, [r.triggered_by, r.triggering_user_name].filter(Boolean).join(" · ")))))));
  }

  /** The Core API's list query for the Runs tab's filters, order and page. */
  function runsQuery() {
    const limit = RUNS_COUNTS.includes(sel.limit) ? sel.limit : RUNS_PAGE;
    return {
      limit, offset: sel.offset ?? 0, order_by: sel.order ?? "-run_after", state: sel.runState, run_type: sel.runType,
      run_after_gte: sel.from, run_after_lte: sel.to,
      triggering_user_name_pattern: sel.user ? `%${sel.user}%` : null,
    };
  }

  async function loadRuns() {
    const q = runsQuery();
    const key = JSON.stringify(q);
    const list = await api(path`api/v2/dags/${dagId}/dagRuns`, { query: q });
    const changed = key !== runsKey || JSON.stringify(list) !== JSON.stringify(runsList);
    runsList = list;
    runsKey = key;
    if (changed && view === "runs") renderView();
  }

  /** A `<select>` that navigates to the URL `to(value)` when changed. */
  function picker(id, label, value, options, to) {
    const el = h("select", { id, "aria-label": label, dataset: { key: id } },
      options.map(([v, text]) => h("option", { value: v, selected: String(value ?? "") === v }, text)));
    el.addEventListener("change", () => navigate(to(el.value || null)));
    return el;
  }

  const stateOptions = [["", "All states"], ...RUN_STATES.map((s) => [s, s])];
  const typeOptions = [["", "All types"], ...RUN_TYPES.map((t) => [t, t.replaceAll("_", " ")])];

  /** Pager buttons: `[label, offset or undefined when disabled, id]` each. */
  function pagerButtons(base, items) {
    return items.map(([label, offset, id, title]) => (offset === undefined
      ? h("button", { type: "button", class: "btn small", disabled: true, id, title }, label)
      : h("a", { class: "btn small", href: href(base, listQuery({ offset })), id, title, dataset: { key: id } }, label)));
  }

  /** Above the grid: how many runs, their state and type, and paging back through history. */
  function gridBar() {
    const limit = grid.limit ?? GRID_RUNS;
    const offset = grid.offset ?? 0;
    const total = grid.total_entries ?? grid.dag_runs.length;
    const base = ["dags", dagId, view];
    const to = (over) => href(base, listQuery(over));
    const shown = grid.dag_runs.length;
    return h("div", { class: "view-bar grid-bar", role: "group", "aria-label": "Runs shown in the grid" },
      h("label", { for: "grid-limit" }, "Runs"),
      picker("grid-limit", "Runs shown", String(limit), GRID_COUNTS.map((n) => [String(n), String(n)]), (v) => to({ limit: Number(v) === GRID_RUNS ? null : v, offset: null })),
      picker("grid-state", "Filter by run state", sel.runState, stateOptions, (v) => to({ run_state: v, offset: null })),
      picker("grid-type", "Filter by run type", sel.runType, typeOptions, (v) => to({ run_type: v, offset: null })),
      h("span", { class: "spacer" }),
      h("span", { class: "muted small", id: "grid-range" }, total ? `Runs ${total - offset - shown + 1}–${total - offset} of ${total}` : "No runs"),
      pagerButtons(base, [
        ["« Oldest", offset + limit < total ? Math.floor((total - 1) / limit) * limit : undefined, "grid-oldest", "The oldest runs"],
        ["‹ Older", offset + limit < total ? offset + limit : undefined, "grid-older", `The ${limit} runs before these`],
        ["Newer ›", offset > 0 ? Math.max(0, offset - limit) : undefined, "grid-newer", `The ${limit} runs after these`],
        ["Newest »", offset > 0 ? null : undefined, "grid-newest", "The newest runs"],
      ]).map((b) => {
        // "Newest" drops the offset and the chosen run, so the page is the newest one.
        if (b.id === "grid-newest" && b.tagName === "A") b.href = href(base, listQuery({ offset: null, run: null, task: null }));
        return b;
      }));
  }

  /** Above the Runs tab: filters by state, type, run-after range and who triggered. */
  function runsBar(list) {
    const base = ["dags", dagId, "runs"];
    const to = (over) => href(base, listQuery({ ...over, offset: null }));
    const dateInput = (id, label, iso, key) => {
      const el = h("input", { id, type: "datetime-local", step: 1, value: iso ? fmtTime(iso).replace(" ", "T") : "", "aria-label": label, dataset: { key: id } });
      el.addEventListener("change", () => {
        const d = el.value ? fromWallClock(el.value) : null;
        if (el.value && !d) return;
        navigate(to({ [key]: d ? d.toISOString() : null }));
      });
      return el;
    };
    const user = h("input", { id: "runs-user", type: "search", placeholder: "Triggered by", value: sel.user ?? "", "aria-label": "Filter by who triggered", dataset: { key: "runs-user" } });
    user.addEventListener("change", () => navigate(to({ triggered_by: user.value.trim() || null })));
    return h("div", { class: "view-bar runs-bar", role: "group", "aria-label": "Filter the runs" },
      picker("runs-state", "Filter by run state", sel.runState, stateOptions, (v) => to({ run_state: v })),
      picker("runs-type", "Filter by run type", sel.runType, typeOptions, (v) => to({ run_type: v })),
      h("label", { for: "runs-from" }, "Run after"), dateInput("runs-from", "Run after, from", sel.from, "run_after_gte"),
      h("label", { for: "runs-to" }, "to"), dateInput("runs-to", "Run after, to", sel.to, "run_after_lte"),
      user,
      sel.runState || sel.runType || sel.from || sel.to || sel.user
        ? h("a", { class: "btn small", href: href(base, { run: sel.run, order_by: sel.order, limit: sel.limit }), id: "runs-clear" }, "Clear filters") : null,
      h("span", { class: "spacer" }),
      h("span", { class: "muted small", id: "runs-total" }, `${list.total_entries} run${list.total_entries === 1 ? "" : "s"}`));
  }

  /** Below the Runs tab: page size and pages. */
  function runsPager(list) {
    const q = runsQuery();
    const total = list.total_entries;
    const base = ["dags", dagId, "runs"];
    const last = Math.max(0, Math.floor((total - 1) / q.limit) * q.limit);
    return h("div", { class: "view-bar runs-pager" },
      h("label", { for: "runs-limit" }, "Per page"),
      picker("runs-limit", "Runs per page", String(q.limit), RUNS_COUNTS.map((n) => [String(n), String(n)]),
        (v) => href(base, listQuery({ limit: Number(v) === RUNS_PAGE ? null : v, offset: null }))),
      h("span", { class: "spacer" }),
      h("span", { class: "muted small", id: "runs-range" }, total ? `${q.offset + 1}–${Math.min(total, q.offset + q.limit)} of ${total}` : ""),
      pagerButtons(base, [
        ["« First", q.offset > 0 ? null : undefined, "runs-first"],
        ["‹ Previous", q.offset > 0 ? Math.max(0, q.offset - q.limit) : undefined, "runs-prev"],
        ["Next ›", q.offset + q.limit < total ? q.offset + q.limit : undefined, "runs-next"],
        ["Last »", q.offset < last ? last : undefined, "runs-last"],
      ]));
  }

  async function loadDetails() {
    put(content, h("p", { class: "muted loading" }, "Loading…"));
    try {
      details = await api(path`api/v2/dags/${dagId}/details`);
      if (view === "details") renderView();
    } catch (e) {
      put(content, errorBox(e));
    }
  }

  function detailsView(d) {
    const params = Object.entries(d.params ?? {});
    const row = (k, v) => (v === null || v === undefined || v === "" ? null : h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v)));
    return h("div", { class: "details" },
      h("table", { class: "kv" }, h("tbody", {},
        row("DAG id", h("code", {}, d.dag_id)),
        row("Description", d.description),
        row("Schedule", d.timetable_summary ? h("code", {}, d.timetable_summary) : "None"),
        row("Schedule, in words", d.timetable_description),
        row("Runs on assets", d.asset_expression ? h("code", { class: "asset-condition" }, "on " + assetCondition(d.asset_expression)) : null),
        row("Start date", time(d.start_date)),
        row("End date", d.end_date ? time(d.end_date) : null),
        row("Catchup", String(d.catchup)),
        row("Owners", (d.owners ?? []).join(", ")),
        row("Tags", (d.tags ?? []).map((t) => t.name).join(", ")),
        row("Max active runs", d.max_active_runs),
        row("Max active tasks", d.max_active_tasks),
        row("Run timeout", d.dag_run_timeout),
        row("File", h("code", {}, d.fileloc)),
        row("Bundle", d.bundle_name),
        row("Last parsed", time(d.last_parsed_time)),
        row("Time zone", d.timezone))),
      h("h2", {}, "Params"),
      params.length ? h("table", { class: "kv" },
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Default"), h("th", {}, "Description"))),
        h("tbody", {}, params.map(([k, v]) => {
          const dumped = v && typeof v === "object" && "value" in v;
          return h("tr", {}, h("th", { scope: "row" }, h("code", {}, k)), h("td", {}, h("code", {}, JSON.stringify(dumped ? v.value : v))), h("td", {}, dumped ? v.description ?? "" : ""));
        })))
        : h("p", { class: "muted" }, "No params."),
      d.doc_md ? [h("h2", {}, "Documentation"), h("pre", { class: "doc" }, d.doc_md)] : null);
  }

  /** The DAG's versions, newest first, and the source of the one the URL names (else the newest). */
  async function loadSource() {
    put(content, h("p", { class: "muted loading" }, "Loading…"));
    try {
      const want = sel.version;
      const [list, src] = await Promise.all([
        api(path`api/v2/dags/${dagId}/dagVersions`, { query: { order_by: "-version_number", limit: 100 } }),
        api(path`api/v2/dagSources/${dagId}`, { query: want != null ? { version_number: want } : {} }),
      ]);
      versions = list.dag_versions ?? [];
      source = { ...src, wanted: want };
      if (view === "code") renderView();
    } catch (e) {
      put(content, errorBox(e));
    }
  }

  function taskLines() {
    const out = [];
    (function walk(nodes) {
      for (const n of nodes) {
        if (n.type === "task") out.push(n);
        else walk(n.children);
      }
    })(structure?.nodes ?? []);
    return out;
  }

  function codeView(src) {
    const lines = (src.content ?? "").split("\n");
    if (lines.at(-1) === "") lines.pop();
    const tasks = taskLines();
    const task = tasks.find((t) => t.id === sel.task);
    const [from, to] = task?.line ? blockOf(lines, task.line) : [0, -1];
    const picker = h("select", { id: "code-task", "aria-label": "Highlight a task" },
      h("option", { value: "" }, "Highlight a task…"),
      tasks.map((t) => h("option", { value: t.id, selected: t.id === sel.task }, t.id)));
    picker.addEventListener("change", () => navigate(href(["dags", dagId, "code"], { run: sel.run, task: picker.value || null, version: sel.version })));
    // Which version's file is shown; the newest unless the URL names one.
    const shown = src.version_number ?? versions[0]?.version_number ?? null;
    const versionPicker = h("select", { id: "code-version", "aria-label": "DAG version" },
      versions.length ? versions.map((v, i) => h("option", { value: String(v.version_number), selected: v.version_number === shown },
        `v${v.version_number}${i === 0 ? " (latest)" : ""} · ${fmtTimeZone(v.created_at)}`))
        : h("option", { value: "" }, "No versions"));
    versionPicker.addEventListener("change", () => {
      const n = Number(versionPicker.value);
      navigate(href(["dags", dagId, "code"], { run: sel.run, task: sel.task, version: n === versions[0]?.version_number ? null : n }));
    });
    const pre = h("pre", { class: "source", tabindex: 0, "aria-label": "DAG file" }, lines.map((text, i) => {
      const n = i + 1;
      return h("span", { class: `src-line ${n >= from && n <= to ? "hl" : ""}`, id: `L${n}` },
        h("span", { class: "ln", "aria-hidden": "true" }, String(n)), yamlLine(text), "\n");
    }));
    const wrap = h("div", { class: "code-view" },
      h("div", { class: "view-bar" }, h("label", { for: "code-version" }, "Version"), versionPicker, picker,
        h("span", { class: "muted small" }, dag?.relative_fileloc ?? dag?.fileloc ?? "")),
      pre);
    // Scroll the file, not the page, to the task.
    if (from) requestAnimationFrame(() => {
      const line = pre.querySelector(`#L${from}`);
      if (line) pre.scrollTop = Math.max(0, line.offsetTop - pre.clientHeight / 3);
    });
    return wrap;
  }

  async function refreshPanel() {
    let key = "";
    let runId = sel.run;
    if (sel.task && !runId && view === "graph") runId = shownRun()?.dag_run_id ?? null;
    // A mapped task without a map index shows the list of its instances.
    const isMapped = Boolean(taskLines().find((n) => n.id === sel.task)?.is_mapped);
    if (sel.task && runId) key = `ti:${runId}:${sel.task}:${sel.try ?? ""}:${sel.map ?? ""}:${isMapped}`;
    else if (runId) {
      const run = grid?.dag_runs.find((r) => r.dag_run_id === runId);
      key = `run:${runId}:${JSON.stringify(run ?? null)}`;
    }
    if (key === panelKey) {
      panel?.refresh();
      return;
    }
    panelKey = key;
    panel?.destroy();
    panel = null;
    put(side);
    side.hidden = !key;
    body.classList.toggle("with-side", Boolean(key));
    if (!key) return;
    const common = { dagId, view, me: ctx.me, onChange: () => poller.kick() };
    if (key.startsWith("ti:")) {
      panel = tiPanel({ ...common, runId, taskId: sel.task, tryNumber: sel.try, mapIndex: sel.map, isMapped });
    } else {
      let run = grid?.dag_runs.find((r) => r.dag_run_id === runId);
      if (!run) {
        try {
          run = await api(path`api/v2/dags/${dagId}/dagRuns/${runId}`);
        } catch (e) {
          put(side, errorBox(e));
          return;
        }
      }
      panel = runPanel({ ...common, run });
    }
    put(side, panel.el);
  }

  async function tick() {
    const [d, g, b] = await Promise.all([
      api(path`api/v2/dags/${dagId}`),
      api(path`ui/grid/${dagId}`, { query: gridQuery() }),
      api(path`ui/backfill/${dagId}`),
    ]);
    if (!structure || d.last_parsed_time !== parsedAt) {
      [structure, assets] = await Promise.all([api(path`ui/structure/${dagId}`), loadAssets(d).catch(() => null)]);
      parsedAt = d.last_parsed_time;
      source = null;
      details = null;
    }
    if (view === "runs") await loadRuns();
    gridKey = JSON.stringify(gridQuery());
    const key = JSON.stringify([d, g, b]);
    const changed = key !== lastKey;
    lastKey = key;
    dag = d;
    grid = g;
    backfill = b.backfill && !b.backfill.completed_at ? b.backfill : null;
    if (changed) {
      document.title = `${d.dag_display_name ?? dagId} · updraft`;
      renderHead();
      renderView();
      refreshPanel();
    }
    return { active: Boolean(backfill) || g.dag_runs.some((r) => isActive(r.state)), changed };
  }

  const poller = new Poller(async () => {
    try {
      const r = await tick();
      reportFetch("dag", null);
      return r;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        reportFetch("dag", null);
        put(head, h("h1", {}, dagId));
        put(content, errorBox(new Error(`There is no DAG ${dagId}.`)));
        return { active: false, changed: false };
      }
      // What is on screen stays, marked stale, until the server answers again.
      if (grid && dag) reportFetch("dag", e);
      else put(content, errorBox(e));
      throw e;
    }
  }, { min: 1000, max: 8000, idle: 60000 });

  renderTabs();
  poller.start();
  // New runs and state changes, from any process, bring a refetch within a second.
  const unwatch = watchChanges(() => poller.kick());

  return {
    update(r) {
      const newView = r.segments[2] ?? "grid";
      const viewChanged = newView !== view;
      view = newView;
      sel = selection(r.query);
      renderTabs();
      if (viewChanged) {
        graph = null;
        zoomer?.destroy();
        zoomer = null;
        moduleView = null;
        put(content);
      }
      if (view === "runs" && (viewChanged || JSON.stringify(runsQuery()) !== runsKey)) {
        loadRuns().then(() => reportFetch("dag", null), (e) => (runsList ? reportFetch("dag", e) : put(content, errorBox(e))));
      }
      // Another page of runs, or other filters: fetch it now rather than at the next poll.
      if (grid && JSON.stringify(gridQuery()) !== gridKey) poller.kick();
      renderView();
      refreshPanel();
    },
    unmount() {
      unwatch();
      reportFetch("dag", null);
      poller.stop();
      zoomer?.destroy();
      panel?.destroy();
    },
  };
}

/**
 * Replaces `container`'s content with `build()`, keeping keyboard focus on the element
 * with the same `data-key` and the scroll position of `.grid-wrap`.
 */
function keepFocus(container, build, firstTime) {
  const focused = container.contains(document.activeElement) ? document.activeElement?.dataset?.key : null;
  const oldWrap = container.querySelector(".grid-wrap");
  const scroll = oldWrap ? [oldWrap.scrollLeft, oldWrap.scrollTop, oldWrap.scrollWidth - oldWrap.scrollLeft - oldWrap.clientWidth] : null;
  const el = build();
  put(container, el);
  const wrap = container.querySelector(".grid-wrap");
  if (scroll && wrap) {
    // Stay pinned to the newest run when the user was looking at it.
    wrap.scrollLeft = scroll[2] < 4 ? wrap.scrollWidth : scroll[0];
    wrap.scrollTop = scroll[1];
  } else firstTime?.(el);
  if (focused) container.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}

/** The lines of a YAML list item starting at `line`: up to the next line indented as little. */
function blockOf(lines, line) {
  const indent = (s) => s.length - s.trimStart().length;
  const start = lines[line - 1] ?? "";
  const base = indent(start);
  let end = line;
  for (let i = line; i < lines.length; i++) {
    const l = lines[i];
    if (l.trim() === "" || l.trimStart().startsWith("#")) continue;
    if (indent(l) <= base) break;
    end = i + 1;
  }
  return [line, end];
}

/** One YAML line with keys, strings, comments and Jinja marked for colour. */
function yamlLine(text) {
  const parts = [];
  const m = /^(\s*(?:-\s+)?)([\w.$-]+)(:)(?=\s|$)/.exec(text);
  let rest = text;
  if (m) {
    parts.push(m[1], h("span", { class: "y-key" }, m[2]), m[3]);
    rest = text.slice(m[0].length);
  }
  const re = /(#.*$)|("(?:[^"\\]|\\.)*"|'[^']*')|(\{\{.*?\}\}|\{%.*?%\})/g;
  let last = 0;
  for (let x; (x = re.exec(rest));) {
    if (x[1] && last < x.index && !/\s$/.test(rest.slice(0, x.index)) && x.index !== 0) continue;
    parts.push(rest.slice(last, x.index));
    const cls = x[1] ? "y-comment" : x[2] ? "y-str" : "y-tpl";
    parts.push(h("span", { class: cls }, x[0]));
    last = x.index + x[0].length;
  }
  parts.push(rest.slice(last));
  return parts;
}
