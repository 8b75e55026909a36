// The side panels of the DAG page. The task instance panel: state, tries, times, the
// rendered command, the log of a try (following the tail while the task runs, through
// the continuation token), XComs, its note, and clear / mark success / mark failed
// (their dialogs are in actions.js). The run panel: a run's facts, conf, note and the
// same actions for the run.

import { api, path, ApiError } from "./api.js";
import { put, h, badge, time, fmtClock, fmtDuration, durationOf, isActive, Poller, errorBox, summarize } from "./ui.js";
import { tiActions, runActions, noteBox } from "./actions.js";
import { href } from "./router.js";
import { tiRequest } from "./hitl.js";
import { viewLinks } from "./plugins.js";
import { eventsList } from "./assets.js";

const ROLES = ["viewer", "user", "op", "admin"];
/** Whether the logged-in user may change runs and task instances. */
export const canEdit = (me) => ROLES.indexOf(String(me?.role ?? "").toLowerCase()) >= 1;

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** The task instance panel. `onChange` runs after an action so the page polls at once. */
export function tiPanel({ dagId, runId, taskId, view, me, tryNumber, mapIndex = null, isMapped = false, onChange }) {
  const base = `api/v2/dags/${encodeURIComponent(dagId)}/dagRuns/${encodeURIComponent(runId)}/taskInstances/${encodeURIComponent(taskId)}`;
  // One instance of a mapped task has its own routes; its log and XComs take its map index.
  const mapped = mapIndex != null;
  const ti = mapped ? `${base}/${mapIndex}` : base;
  const mapQuery = mapped ? { map_index: mapIndex } : {};
  const instances = h("div", { class: "instances" });
  const head = h("div", { class: "panel-state" });
  const info = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const command = h("div", {});
  const actions = h("div", { class: "actions" });
  const note = noteBox({
    label: "Task instance", note: null, edit: canEdit(me),
    save: async (text) => (await api(ti, { method: "PATCH", body: { note: text } }))?.task_instances?.[0]?.note ?? null,
  });
  // A human-in-the-loop task's request: its form while it waits, its answer after.
  const hitlBox = h("div", { class: "ti-hitl" });
  const logBox = h("div", { class: "log", id: "ti-log", tabindex: 0, role: "log", "aria-label": "Task log", "aria-live": "off" });
  const logStatus = h("span", { class: "muted small log-status" });
  const follow = h("input", { type: "checkbox", id: "log-follow", checked: true });
  const tries = h("div", { class: "tries", role: "group", "aria-label": "Try" });
  const xcomBox = h("div", { class: "xcoms" }, h("p", { class: "muted" }, "Loading…"));
  const tabLog = h("button", { type: "button", class: "subtab", "aria-pressed": "true", onclick: () => showTab("log") }, "Log");
  const tabDetails = h("button", { type: "button", class: "subtab", "aria-pressed": "false", onclick: () => showTab("details") }, "Details");
  const tabXcom = h("button", { type: "button", class: "subtab", "aria-pressed": "false", onclick: () => showTab("xcom") }, "XCom");
  const summary = h("p", { class: "ti-summary muted" });
  const logPane = h("div", { class: "pane" },
    h("div", { class: "log-bar" }, tries, h("label", { class: "follow", for: "log-follow" }, follow, " Follow"), logStatus),
    logBox);
  const xcomPane = h("div", { class: "pane", hidden: true }, xcomBox);
  const detailsPane = h("div", { class: "pane", hidden: true }, command, info);

  const el = h("section", { class: "panel ti-panel", "aria-label": `Task ${taskId}` },
    h("header", { class: "panel-head" },
      h("div", {}, h("p", { class: "eyebrow" }, mapped ? [h("a", { href: href(["dags", dagId, view], { run: runId, task: taskId }) }, "Mapped task"), ` · map index ${mapIndex}`] : "Task instance"),
        h("h2", { class: "panel-title" }, taskId),
        viewLinks(["task", "task_instance"], { dag_id: dagId, run_id: runId, task_id: taskId })),
      h("a", { href: href(["dags", dagId, view], { run: runId }), class: "icon-btn", "aria-label": "Close the task panel", title: "Close" }, "×")),
    head, summary, instances, actions, note.el, hitlBox,
    h("div", { class: "subtabs" }, tabLog, tabDetails, tabXcom),
    logPane, detailsPane, xcomPane);

  let current = null;
  let shownTry = tryNumber ?? null;
  let log = null;
  let xcomLoaded = false;

  function showTab(which) {
    tabLog.setAttribute("aria-pressed", String(which === "log"));
    tabDetails.setAttribute("aria-pressed", String(which === "details"));
    tabXcom.setAttribute("aria-pressed", String(which === "xcom"));
    logPane.hidden = which !== "log";
    detailsPane.hidden = which !== "details";
    xcomPane.hidden = which !== "xcom";
    if (which === "xcom") loadXcoms();
  }

  function renderTi(t) {
    put(head, badge(t.state));
    const dur = durationOf(t);
    put(summary, `Try ${t.try_number} of ${(t.max_tries ?? 0) + 1}`, dur != null ? ` · ${fmtDuration(dur)}` : "",
      t.start_date ? [" · started ", time(t.start_date)] : "", " · run ", h("a", { href: href(["dags", dagId, view], { run: runId }) }, runId));
    put(info, facts([
      ["Run", h("a", { href: href(["dags", dagId, view], { run: runId }) }, runId)],
      ["Try", `${t.try_number} of ${(t.max_tries ?? 0) + 1}`],
      ["Operator", t.operator_name ?? t.operator],
      ["Started", time(t.start_date)],
      ["Ended", time(t.end_date)],
      ["Duration", fmtDuration(durationOf(t))],
      ["Queued", time(t.queued_when)],
      ["Host", t.hostname],
      ["PID", t.pid],
      ["Pool", t.pool],
    ]));
    const cmd = t.rendered_fields?.bash_command;
    put(command, cmd ? h("div", { class: "rendered" }, h("h3", {}, "Rendered command"), h("pre", { class: "code" }, cmd)) : null);
    renderTries(t);
  }

  function renderTries(t) {
    const n = Math.max(1, t.try_number ?? 1);
    if (shownTry === null || shownTry > n) shownTry = n;
    put(tries, h("span", { class: "muted small" }, "Try"), ...Array.from({ length: n }, (_, i) => i + 1).map((k) => h("button", {
      type: "button", class: "try", "aria-pressed": String(k === shownTry),
      onclick: () => {
        shownTry = k;
        startLog();
        renderTries(t);
        poller.kick();
      },
    }, String(k))));
  }

  function renderActions(t) {
    put(actions,
      tiActions({
        dagId, runId, taskId, mapIndex, logicalDate: t.logical_date, states: [t.state], note: t.note, edit: canEdit(me),
        onDone: () => {
          shownTry = null;
          done();
        },
      }),
      t.state === "awaiting_input" ? h("span", { class: "muted small" }, "Waiting for an answer")
        : t.state && isActive(t.state) ? h("span", { class: "muted small" }, "Running now") : null);
    note.set(t.note);
  }

  function done() {
    onChange?.();
    poller.kick();
  }

  /** A mapped task without a map index: its instances, each a link to its own panel. */
  async function listInstances() {
    const res = await api(`${base}/listMapped`, { query: { limit: 1000 } });
    const list = res.task_instances ?? [];
    const changed = JSON.stringify(list) !== JSON.stringify(current);
    current = list;
    put(head, badge(summarize(list.map((x) => x.state))));
    put(summary, `${res.total_entries} mapped instances`);
    // The actions cover every instance; a note belongs to one, so it waits for a pick.
    if (changed) put(actions, tiActions({
      dagId, runId, taskId, isMapped: true, logicalDate: list[0]?.logical_date, states: list.map((x) => x.state),
      edit: canEdit(me), onDone: done,
    }));
    note.el.hidden = true;
    for (const pane of [logPane, detailsPane, xcomPane]) pane.hidden = true;
    el.querySelector(".subtabs").style.display = "none";
    put(instances, list.length
      ? h("ul", { class: "instance-list", "aria-label": "Mapped instances" }, list.map((x) => h("li", {},
        h("a", { href: href(["dags", dagId, view], { run: runId, task: taskId, map_index: x.map_index }) },
          x.rendered_map_index ?? `map index ${x.map_index}`),
        " ", badge(x.state))))
      : h("p", { class: "muted" }, "This task was mapped to nothing in this run."));
    if (changed) onChange?.();
    return { active: list.some((x) => isActive(x.state) || x.state === null), changed };
  }

  async function loadXcoms() {
    if (xcomLoaded && !isActive(current?.state)) return;
    try {
      const res = await api(`${base}/xcomEntries`, { query: mapped ? mapQuery : { map_index: -1 } });
      const entries = res.xcom_entries ?? [];
      const values = await Promise.all(entries.map((x) => api(`${base}/xcomEntries/${encodeURIComponent(x.key)}`, { query: { map_index: x.map_index } })
        .then((v) => v.value, (e) => `(could not read: ${e.message})`)));
      put(xcomBox, entries.length ? h("table", { class: "kv" },
        h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Value"))),
        h("tbody", {}, entries.map((x, i) => h("tr", {}, h("td", {}, h("code", {}, x.key)),
          h("td", {}, h("pre", { class: "code" }, typeof values[i] === "string" ? values[i] : JSON.stringify(values[i], null, 2)))))))
        : h("p", { class: "muted" }, "No XComs."));
      xcomLoaded = true;
    } catch (e) {
      put(xcomBox, errorBox(e));
    }
  }

  function startLog() {
    log = new LogFollower(`${base}/logs/${shownTry}`, logBox, follow, mapQuery);
    logStatus.textContent = "";
  }

  const poller = new Poller(async () => {
    if (isMapped && !mapped) return listInstances();
    let t;
    try {
      t = await api(ti);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        put(head, badge(null));
        put(info, h("p", { class: "muted" }, "This task instance does not exist in this run."));
        return { active: false, changed: false };
      }
      throw e;
    }
    const changed = JSON.stringify(t) !== JSON.stringify(current);
    const tryChanged = current && t.try_number !== current.try_number;
    // The panel saw the task move before the page's poll did: let the grid catch up.
    if (changed && current && t.state !== current.state) onChange?.();
    current = t;
    if (changed) {
      renderTi(t);
      renderActions(t);
      if (/^(HITL|Approval)/.test(t.operator ?? "")) tiRequest(hitlBox, { ...t, dag_run_id: runId }, { me, onDone: done });
    }
    if (!log || (tryChanged && shownTry === current.try_number - 1)) {
      if (tryChanged) shownTry = t.try_number;
      startLog();
      renderTries(t);
    }
    const running = isActive(t.state) || t.state === null;
    let grew = false;
    if (t.try_number > 0 || t.start_date) grew = await log.fetch(running && shownTry === t.try_number);
    else log.waiting();
    logStatus.textContent = running && shownTry === t.try_number ? "following…" : "";
    if (!xcomPane.hidden && changed) loadXcoms();
    return { active: running, changed: changed || grew };
  }, { min: 1000, max: 5000, idle: 30000 }).start();

  return {
    el,
    /** Called when the page's grid changed: check the task instance now. */
    refresh: () => poller.kick(),
    destroy: () => poller.stop(),
  };
}

/**
 * Reads a log and keeps reading its tail: with the server's continuation token when it
 * gives one, otherwise by fetching the whole log and appending what is new.
 */
class LogFollower {
  constructor(url, box, follow, query = {}) {
    this.url = url;
    this.query = query;
    this.box = box;
    this.follow = follow;
    this.token = null;
    this.count = 0;
    this.group = null;
    this.finished = false;
    this.missing = false;
    put(box, h("p", { class: "muted" }, "Loading the log…"));
    this.fresh = true;
  }

  /** Says the try has not started; the next fetch starts afresh. */
  waiting() {
    put(this.box, h("p", { class: "muted" }, "The task has not started yet."));
    this.fresh = true;
  }

  /** Fetches what is new; resolves true when lines were added. */
  async fetch(live) {
    if (this.finished) return false;
    let res;
    try {
      res = await api(this.url, { query: { ...this.query, ...(this.token ? { token: this.token } : {}) } });
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        put(this.box, h("p", { class: "muted" }, "No log for this try yet."));
        this.missing = true;
        return false;
      }
      put(this.box, errorBox(e));
      return false;
    }
    const content = Array.isArray(res?.content) ? res.content : typeof res?.content === "string" ? res.content.split("\n") : [];
    const fresh = this.token ? content : content.slice(this.count);
    if (this.fresh || this.missing) {
      put(this.box);
      this.fresh = false;
      this.missing = false;
    }
    const atBottom = this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight < 40;
    for (const line of fresh) this.append(line);
    this.count += fresh.length;
    this.token = res?.continuation_token ?? null;
    if (!this.count && !this.box.childElementCount) this.box.append(h("p", { class: "muted empty-log" }, live ? "Waiting for output…" : "The log is empty."));
    else this.box.querySelector(".empty-log")?.remove();
    if (fresh.length && this.follow.checked && (atBottom || live)) this.box.scrollTop = this.box.scrollHeight;
    // A finished try's log does not grow: stop asking once it has been read after the end.
    if (!live) this.finished = true;
    return fresh.length > 0;
  }

  append(line) {
    const entry = typeof line === "string" ? { event: line } : line ?? {};
    const event = String(entry.event ?? "");
    if (event.startsWith("::group::")) {
      this.group = h("div", { class: "log-group-body" });
      this.box.append(h("details", { class: "log-group" }, h("summary", {}, event.slice(9)), this.group));
      return;
    }
    if (event.startsWith("::endgroup::")) {
      this.group = null;
      return;
    }
    const level = String(entry.level ?? "").toLowerCase();
    const ts = entry.timestamp ? new Date(entry.timestamp) : null;
    const row = h("div", { class: `log-line ${level ? `lvl-${level}` : ""}` },
      ts && !Number.isNaN(ts.getTime()) ? h("span", { class: "log-ts" }, fmtClock(ts) + `.${String(ts.getMilliseconds()).padStart(3, "0")}`) : null,
      level ? h("span", { class: "log-lvl" }, level) : null,
      h("span", { class: "log-msg" }, event),
      entry.error_detail ? h("pre", { class: "log-err" }, JSON.stringify(entry.error_detail, null, 2)) : null);
    (this.group ?? this.box).append(row);
  }
}

/** The run panel: facts, conf, note and the run's actions. */
export function runPanel({ dagId, run, view, me, onChange }) {
  const runPath = path`api/v2/dags/${dagId}/dagRuns/${run.dag_run_id}`;
  const counts = {};
  for (const t of Object.values(run.task_instances ?? {})) {
    const st = t.state ?? "none";
    counts[st] = (counts[st] ?? 0) + 1;
  }
  const edit = canEdit(me);
  const note = noteBox({
    label: "Run", note: run.note, edit,
    save: async (text) => (await api(runPath, { method: "PATCH", body: { note: text } }))?.note ?? null,
    // The grid carries the note too: let the page read it now.
    onSaved: () => onChange?.(),
  });
  const el = h("section", { class: "panel run-panel", "aria-label": `Run ${run.dag_run_id}` },
    h("header", { class: "panel-head" },
      h("div", {}, h("p", { class: "eyebrow" }, `${run.run_type} run`), h("h2", { class: "panel-title" }, run.dag_run_id),
        viewLinks(["dag_run"], { dag_id: dagId, run_id: run.dag_run_id })),
      h("a", { href: href(["dags", dagId, view]), class: "icon-btn", "aria-label": "Close the run panel", title: "Close" }, "×")),
    h("div", { class: "panel-state" }, badge(run.state)),
    h("div", { class: "actions" }, runActions({ dagId, run, edit, onDone: () => onChange?.(), note: () => note.value() })),
    facts([
      ["Run after", time(run.run_after)],
      ["Logical date", run.logical_date ? time(run.logical_date) : null],
      ["Queued", time(run.queued_at)],
      ["Started", time(run.start_date)],
      ["Ended", time(run.end_date)],
      ["Duration", fmtDuration(durationOf(run))],
    ]),
    note.el,
    h("div", { class: "state-counts" }, Object.entries(counts).map(([st, n]) => h("span", { class: "count-chip" }, badge(st === "none" ? null : st), ` ${n}`))),
    h("p", { class: "muted small" }, "Pick a task in the grid or the graph to see its log."));

  // The asset events that triggered the run (an asset-triggered run consumed them).
  if (run.run_type === "asset_triggered") api(`${runPath}/upstreamAssetEvents`).then((res) => {
    const events = res?.asset_events ?? [];
    if (!events.length) return;
    el.insertBefore(h("div", { class: "rendered run-assets", id: "run-asset-events" }, h("h3", {}, "Triggered by asset events"),
      eventsList(events)), el.lastChild);
  }, () => {});
  // The conf is not in the grid data; read the run itself.
  api(runPath).then((full) => {
    note.set(full?.note);
    // The DAG version(s) the run used, each a link to that version's file in the Code tab.
    const used = full?.dag_versions ?? [];
    if (used.length) {
      el.insertBefore(h("dl", { class: "facts", id: "run-dag-versions" }, h("dt", {}, used.length > 1 ? "DAG versions" : "DAG version"),
        h("dd", {}, used.map((v, i) => [i ? ", " : "", h("a", { href: href(["dags", dagId, "code"], { version: v.version_number }), class: "run-dag-version" }, `v${v.version_number}`)]))),
      el.querySelector(".state-counts"));
    }
    if (full?.conf && Object.keys(full.conf).length) {
      el.insertBefore(h("div", { class: "rendered" }, h("h3", {}, "Conf"), h("pre", { class: "code" }, JSON.stringify(full.conf, null, 2))), el.lastChild);
    }
  }, () => {});
  return { el, refresh() {}, destroy() {} };
}
