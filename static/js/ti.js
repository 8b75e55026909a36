// A task instance, drawn one way for the DAG page's side panel and for its own page
// (tipage.js): state, tries, times with a live duration, the log of a try (following the
// tail while the task runs, through the continuation token, and moving on to the new try
// after a clear or a retry) with search, line numbers, wrapping and download, every
// rendered template field, why it is not running (the Core API's `dependencies`), XComs,
// its note, and clear / mark success / mark failed (their dialogs are in actions.js). The
// run panel: a run's facts, conf, note and the same actions for the run.

import { api, path, url, token, ApiError } from "./api.js";
import { put, h, badge, time, fmtClock, fmtDuration, durationOf, isActive, notify, Poller, errorBox, summarize, zoneLabel } from "./ui.js";
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

/** The link to a task instance's own page (Airflow 3's URL shape), with a tab. */
export function tiHref(dagId, runId, taskId, mapIndex = null, tab = null) {
  return href(["dags", dagId, "runs", runId, "tasks", taskId, ...(mapIndex != null && mapIndex >= 0 ? ["mapped", String(mapIndex)] : []), ...(tab && tab !== "log" ? [tab] : [])]);
}

/** The panel's tabs: `[key, label, URL segment on the task instance page]`. */
const TABS = [["log", "Log", "logs"], ["rendered", "Rendered Templates", "rendered_templates"], ["deps", "Dependencies", "dependencies"],
  ["details", "Details", "details"], ["xcom", "XCom", "xcom"]];
/** The tab a task instance page's URL segment names (`logs` when none). */
export const tabOf = (segment) => TABS.find((t) => t[2] === segment)?.[0] ?? "log";

const PREF = "updraft.log.";
const pref = (name, dflt) => (localStorage.getItem(PREF + name) ?? String(dflt)) === "true";

/**
 * A task instance: the DAG page's side panel, and (with `page`) the whole of its own page;
 * one renderer for both. `onChange` runs after an action so the page polls at once;
 * `onTab(key)` tells the page which tab is shown.
 */
export function tiPanel({ dagId, runId, taskId, view = "grid", me, tryNumber, mapIndex = null, isMapped = false, onChange, page = false, tab = "log", onTab }) {
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
  const renderedBox = h("div", { class: "rendered-fields" }, h("p", { class: "muted" }, "Loading…"));
  const depsBox = h("div", { class: "ti-deps" }, h("p", { class: "muted" }, "Loading…"));
  const summary = h("p", { class: "ti-summary muted" });
  const duration = h("span", { class: "ti-duration" });

  // Log tools: search with next/previous, line numbers, wrapping, download.
  const search = h("input", { type: "search", class: "log-search", placeholder: "Search the log", "aria-label": "Search the log" });
  const hits = h("span", { class: "muted small log-hits", "aria-live": "polite" });
  const prevHit = h("button", { type: "button", class: "btn small", title: "Previous match (Shift+Enter)", "aria-label": "Previous match", onclick: () => step(-1) }, "↑");
  const nextHit = h("button", { type: "button", class: "btn small", title: "Next match (Enter)", "aria-label": "Next match", onclick: () => step(1) }, "↓");
  const numbers = h("input", { type: "checkbox", id: "log-numbers", checked: pref("numbers", true) });
  const wrap = h("input", { type: "checkbox", id: "log-wrap", checked: pref("wrap", true) });
  const download = h("button", { type: "button", class: "btn small log-download", title: "Download the whole log of this try as a text file", onclick: () => downloadLog() }, "Download");
  const zoneNote = h("span", { class: "muted small log-zone", title: "The zone of the log's timestamps" });
  const tools = h("div", { class: "log-tools" },
    h("div", { class: "log-find" }, search, prevHit, nextHit, hits),
    h("label", { class: "follow", for: "log-numbers" }, numbers, " Line numbers"),
    h("label", { class: "follow", for: "log-wrap" }, wrap, " Wrap"),
    download, zoneNote);
  const applyView = () => {
    logBox.classList.toggle("numbered", numbers.checked);
    logBox.classList.toggle("nowrap", !wrap.checked);
  };
  numbers.addEventListener("change", () => {
    localStorage.setItem(PREF + "numbers", String(numbers.checked));
    applyView();
  });
  wrap.addEventListener("change", () => {
    localStorage.setItem(PREF + "wrap", String(wrap.checked));
    applyView();
  });
  applyView();
  search.addEventListener("input", () => highlight());
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      step(e.shiftKey ? -1 : 1);
    } else if (e.key === "Escape") {
      search.value = "";
      highlight();
    }
  });

  const buttons = {};
  const panes = {};
  const logPane = h("div", { class: "pane" },
    h("div", { class: "log-bar" }, tries, h("label", { class: "follow", for: "log-follow" }, follow, " Follow"), logStatus),
    tools, logBox);
  panes.log = logPane;
  panes.rendered = h("div", { class: "pane", hidden: true }, renderedBox);
  panes.deps = h("div", { class: "pane", hidden: true }, depsBox);
  panes.details = h("div", { class: "pane", hidden: true }, command, info);
  panes.xcom = h("div", { class: "pane", hidden: true }, xcomBox);
  for (const [key, label] of TABS) {
    buttons[key] = h("button", { type: "button", class: "subtab", "aria-pressed": "false", dataset: { tab: key }, onclick: () => showTab(key, true) }, label);
  }
  const subtabs = h("div", { class: "subtabs" }, TABS.map(([key]) => buttons[key]));

  const gridLink = href(["dags", dagId, view], { run: runId, task: taskId, ...(mapped ? { map_index: mapIndex } : {}) });
  const el = h("section", { class: `panel ti-panel${page ? " ti-full" : ""}`, "aria-label": `Task ${taskId}` },
    h("header", { class: "panel-head" },
      h("div", {}, h("p", { class: "eyebrow" }, mapped ? [h("a", { href: page ? tiHref(dagId, runId, taskId) : href(["dags", dagId, view], { run: runId, task: taskId }) }, "Mapped task"), ` · map index ${mapIndex}`] : "Task instance"),
        h(page ? "h1" : "h2", { class: "panel-title" }, taskId),
        viewLinks(["task", "task_instance"], { dag_id: dagId, run_id: runId, task_id: taskId })),
      page
        ? h("a", { href: gridLink, class: "btn small", title: "This task instance in the DAG's grid" }, "Show in grid")
        : h("div", { class: "panel-links" },
          h("a", { href: tiHref(dagId, runId, taskId, mapIndex), class: "icon-btn ti-open", "aria-label": "Open the task instance page", title: "Open as a page" }, "⤢"),
          h("a", { href: href(["dags", dagId, view], { run: runId }), class: "icon-btn", "aria-label": "Close the task panel", title: "Close" }, "×"))),
    head, summary, instances, actions, note.el, hitlBox, subtabs,
    TABS.map(([key]) => panes[key]));

  let current = null;
  let shownTry = tryNumber ?? null;
  let log = null;
  let xcomLoaded = false;
  let shownTab = null;

  function showTab(which, byUser = false) {
    shownTab = which;
    for (const [key] of TABS) {
      buttons[key].setAttribute("aria-pressed", String(key === which));
      panes[key].hidden = key !== which;
    }
    if (which === "xcom") loadXcoms();
    if (which === "deps") loadDeps();
    // Drawn only while shown, so a hidden tab holds no copy of the Details' command.
    if (which === "rendered" && current && !Array.isArray(current)) renderFields(current);
    else if (which !== "rendered") put(renderedBox);
    if (byUser) onTab?.(which);
  }
  showTab(tab);

  // A running try's duration, ticking every second between polls.
  const ticker = setInterval(() => {
    if (current && !current.end_date && current.start_date && !document.hidden) showDuration(current);
  }, 1000);

  function showDuration(t) {
    const secs = durationOf(t);
    const text = secs != null ? fmtDuration(secs) : "";
    for (const x of el.querySelectorAll(".ti-duration")) if (x.textContent !== text) x.textContent = text;
  }

  function renderTi(t) {
    put(head, badge(t.state));
    put(summary, `Try ${t.try_number} of ${(t.max_tries ?? 0) + 1}`, t.start_date ? [" · ", duration] : "",
      t.start_date ? [" · started ", time(t.start_date, { relative: true })] : "", " · run ", h("a", { href: href(["dags", dagId, view], { run: runId }) }, runId));
    put(info, facts([
      ["Run", h("a", { href: href(["dags", dagId, view], { run: runId }) }, runId)],
      ["Try", `${t.try_number} of ${(t.max_tries ?? 0) + 1}`],
      ["Operator", t.operator_name ?? t.operator],
      ["Started", time(t.start_date)],
      ["Ended", time(t.end_date)],
      ["Duration", t.start_date ? h("span", { class: "ti-duration" }) : null],
      ["Queued", time(t.queued_when)],
      ["Scheduled", time(t.scheduled_when)],
      ["Host", t.hostname],
      ["PID", t.pid],
      ["Pool", t.pool],
      ["Pool slots", t.pool_slots],
      ["Priority weight", t.priority_weight],
      ["Note", t.note],
    ]));
    showDuration(t);
    const cmd = t.rendered_fields?.bash_command;
    put(command, cmd ? h("div", { class: "rendered" }, h("h3", {}, "Rendered command"), h("pre", { class: "code" }, cmd)) : null);
    if (shownTab === "rendered") renderFields(t);
    renderTries(t);
  }

  /** Every rendered template field, as the worker (or updraft) rendered it for this try. */
  function renderFields(t) {
    const fields = Object.entries(t.rendered_fields ?? {});
    put(renderedBox, fields.length
      ? h("dl", { class: "rendered-list" }, fields.map(([name, value]) => [
        h("dt", {}, h("code", {}, name)),
        h("dd", {}, value === null || value === undefined ? h("span", { class: "muted" }, "None")
          : h("pre", { class: "code", dataset: { field: name } }, typeof value === "string" ? value : JSON.stringify(value, null, 2)))]))
      : h("p", { class: "muted" }, t.state && !isActive(t.state) && t.state !== "running"
        ? "Nothing was rendered: this try did not render its templates." : "The templates are rendered when the task starts."));
  }

  /** Why it is not running: the Core API's `dependencies`. */
  async function loadDeps() {
    try {
      const res = await api(`${ti}/dependencies`);
      const deps = res?.dependencies ?? [];
      const st = current?.state ?? null;
      put(depsBox, deps.length
        ? [h("p", {}, "This task instance is not running because:"),
          h("ul", { class: "dep-list" }, deps.map((d) => h("li", {}, h("strong", { class: "dep-name" }, d.name), h("span", { class: "dep-reason" }, d.reason))))]
        : h("p", { class: "muted" }, st === null || st === "scheduled"
          ? "Every dependency is met: the scheduler starts it on its next pass."
          : `Nothing holds it back: the task instance is ${badge(st).textContent}, past waiting for its dependencies.`));
    } catch (e) {
      put(depsBox, errorBox(e));
    }
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
          // The log follows the try the clear starts, whichever try was shown.
          followLatest = true;
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
    for (const [key] of TABS) panes[key].hidden = true;
    subtabs.style.display = "none";
    put(instances, list.length
      ? h("ul", { class: "instance-list", "aria-label": "Mapped instances" }, list.map((x) => h("li", {},
        h("a", { href: page ? tiHref(dagId, runId, taskId, x.map_index) : href(["dags", dagId, view], { run: runId, task: taskId, map_index: x.map_index }) },
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
    log?.stop();
    log = new LogFollower(`${base}/logs/${shownTry}`, logBox, follow, mapQuery, shownTry, () => highlight(true));
    logStatus.textContent = "";
    zoneNote.textContent = `Times in ${zoneLabel()}`;
  }

  // Search: every match marked, one of them current, Enter / the arrows move through them.
  let marks = [];
  let at = -1;
  function highlight(keep = false) {
    const q = search.value.trim().toLowerCase();
    const before = at;
    for (const m of logBox.querySelectorAll("mark.log-hit")) m.replaceWith(m.textContent);
    for (const msg of logBox.querySelectorAll(".log-msg")) msg.normalize();
    marks = [];
    if (q) {
      for (const msg of logBox.querySelectorAll(".log-msg")) {
        const text = msg.textContent;
        const lower = text.toLowerCase();
        let i = lower.indexOf(q);
        if (i < 0) continue;
        const parts = [];
        let from = 0;
        while (i >= 0) {
          parts.push(text.slice(from, i));
          const m = h("mark", { class: "log-hit" }, text.slice(i, i + q.length));
          marks.push(m);
          parts.push(m);
          from = i + q.length;
          i = lower.indexOf(q, from);
        }
        parts.push(text.slice(from));
        put(msg, ...parts);
      }
    }
    at = keep && before < marks.length ? before : marks.length ? 0 : -1;
    showHit(!keep);
  }

  function step(d) {
    if (!marks.length) return;
    at = (at + d + marks.length) % marks.length;
    showHit(true);
  }

  function showHit(scroll) {
    marks.forEach((m, i) => m.classList.toggle("current", i === at));
    hits.textContent = search.value.trim() ? (marks.length ? `${at + 1} of ${marks.length}` : "No match") : "";
    prevHit.disabled = nextHit.disabled = marks.length < 2;
    const m = marks[at];
    if (m && scroll) {
      // A match inside a folded group opens it.
      for (let g = m.closest("details"); g; g = g.parentElement?.closest("details")) g.open = true;
      follow.checked = false;
      m.scrollIntoView({ block: "center" });
    }
  }

  /** The whole log of the shown try, as the server keeps it, saved as a text file. */
  async function downloadLog() {
    download.disabled = true;
    try {
      const headers = { Accept: "text/plain" };
      const tok = token.get();
      if (tok) headers.Authorization = `Bearer ${tok}`;
      const res = await fetch(url(`${base}/logs/${shownTry}`, mapQuery), { headers });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const blob = new Blob([await res.text()], { type: "text/plain" });
      const name = [dagId, runId, taskId, ...(mapped ? [mapIndex] : []), `try${shownTry}`].join("__").replace(/[^\w.-]+/g, "_");
      const a = h("a", { href: URL.createObjectURL(blob), download: `${name}.log` });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (e) {
      notify(`Could not download the log: ${e.message}`, "error");
    } finally {
      download.disabled = false;
    }
  }

  // After a clear or a retry the log moves on to the new try, unless the user chose an
  // older try to read (a clear always moves it on).
  let followLatest = false;
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
    const before = current?.try_number;
    const tryChanged = current && t.try_number !== before;
    if (tryChanged && (followLatest || shownTry === null || shownTry === before)) {
      shownTry = t.try_number;
      followLatest = false;
    }
    // The panel saw the task move before the page's poll did: let the grid catch up.
    if (changed && current && t.state !== current.state) onChange?.();
    current = t;
    if (changed) {
      renderTi(t);
      renderActions(t);
      if (/^(HITL|Approval)/.test(t.operator ?? "")) tiRequest(hitlBox, { ...t, dag_run_id: runId }, { me, onDone: done });
      if (shownTab === "deps") loadDeps();
    }
    if (!log || log.tryNumber !== shownTry) {
      startLog();
      renderTries(t);
    }
    const running = isActive(t.state) || t.state === null;
    let grew = false;
    if (t.try_number > 0 || t.start_date) grew = await log.fetch(running && shownTry === t.try_number);
    else log.waiting();
    logStatus.textContent = running && shownTry === t.try_number ? "following…" : "";
    if (!panes.xcom.hidden && changed) loadXcoms();
    return { active: running, changed: changed || grew };
  }, { min: 1000, max: 5000, idle: 30000 }).start();

  return {
    el,
    /** Called when the page's grid changed: check the task instance now. */
    refresh: () => poller.kick(),
    /** Shows a tab (the page's URL changed). */
    show: (key) => showTab(key),
    destroy: () => {
      poller.stop();
      log?.stop();
      clearInterval(ticker);
    },
  };
}

/**
 * Reads a log and keeps reading its tail: with the server's continuation token when it
 * gives one, otherwise by fetching the whole log and appending what is new.
 */
class LogFollower {
  constructor(url, box, follow, query = {}, tryNumber = null, onLines = null) {
    this.url = url;
    this.tryNumber = tryNumber;
    this.onLines = onLines;
    this.stopped = false;
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

  /** Another try is shown now: what this one still fetches is dropped. */
  stop() {
    this.stopped = true;
  }

  /** Says the try has not started; the next fetch starts afresh. */
  waiting() {
    put(this.box, h("p", { class: "muted" }, "The task has not started yet."));
    this.fresh = true;
  }

  /** Fetches what is new; resolves true when lines were added. */
  async fetch(live) {
    if (this.finished || this.stopped) return false;
    let res;
    try {
      res = await api(this.url, { query: { ...this.query, ...(this.token ? { token: this.token } : {}) } });
      if (this.stopped) return false;
    } catch (e) {
      if (this.stopped) return false;
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
    if (fresh.length) this.onLines?.();
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
    this.lines = (this.lines ?? 0) + 1;
    const row = h("div", { class: `log-line ${level ? `lvl-${level}` : ""}` },
      h("span", { class: "log-no", "aria-hidden": "true" }, String(this.lines)),
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
