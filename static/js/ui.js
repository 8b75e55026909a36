// Small helpers every page uses: building elements, formatting times and durations,
// state badges in Airflow's colours, confirmation dialogs, notices and the poller that
// keeps pages fresh while runs are active.

/** Builds an element: `h("a", {href: "x", class: "c", onclick: f}, "text", child)`. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  return fill(el, attrs, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";
/** Builds an SVG element, as `h` does. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value" && "value" in el) el.value = v;
    else if (k === "checked" || k === "selected" || k === "disabled") {
      el[k] = Boolean(v);
      if (v === true) el.setAttribute(k, "");
    } else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

/** Replaces an element's children; null, false and empty strings are left out. */
export function put(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false || c === "") continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Airflow's task and run states, in the order a group summary picks them. */
export const STATES = [
  "failed", "upstream_failed", "up_for_retry", "up_for_reschedule", "running", "restarting",
  "deferred", "awaiting_input", "queued", "scheduled", "success", "skipped", "removed",
];
const ACTIVE = new Set(["running", "queued", "scheduled", "up_for_retry", "restarting", "deferred", "up_for_reschedule", "awaiting_input"]);

/** Whether a run or task state means more is to come. */
export const isActive = (state) => ACTIVE.has(state);

/** The state shown for a group of task states: the most telling one, as Airflow's grid. */
export function summarize(states) {
  const present = new Set(states.map((x) => x ?? "none"));
  for (const st of STATES) if (present.has(st)) {
    // All done but some skipped still reads as success when anything succeeded.
    if (st === "skipped" && present.has("success")) return "success";
    return st;
  }
  return present.size ? "none" : null;
}

const label = (state) => (state ?? "no status").replaceAll("_", " ");

/** A state as a coloured pill. */
export function badge(state) {
  const st = state ?? "none";
  return h("span", { class: `badge st-${st}` }, label(state));
}

/** A small coloured square, with the state as its accessible name. */
export function dot(state, extra = "") {
  const st = state ?? "none";
  return h("span", { class: `dot st-${st} ${extra}`, title: label(state), role: "img", "aria-label": label(state) });
}

const pad = (n) => String(n).padStart(2, "0");

// The time zone times are shown in: the user's choice, kept in this browser, else the
// browser's own zone, as Airflow 3's UI does (its navigation bar has the same choice).
const TZ_KEY = "updraft.timezone";

/** The browser's own IANA zone (`UTC` if it does not say). */
export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** The zone of the DAG on screen (its `timezone`), or null off a DAG's pages. */
let dagZone = null;

/** The zone times are shown in: the chosen one, `dag` meaning the DAG's own zone. */
export function zone() {
  const chosen = localStorage.getItem(TZ_KEY);
  if (chosen === "dag") return dagZone && zoneFormat(dagZone) ? dagZone : browserZone();
  return chosen && zoneFormat(chosen) ? chosen : browserZone();
}

/** What the user chose: an IANA name, or `dag` for the DAG's own zone. */
export function zoneChoice() {
  return localStorage.getItem(TZ_KEY) === "dag" ? "dag" : zone();
}

/** Shows times in `name` from now on (null: the browser's zone; `dag`: the DAG's own). */
export function setZone(name) {
  if (!name || name === browserZone()) localStorage.removeItem(TZ_KEY);
  else localStorage.setItem(TZ_KEY, name);
}

/** The zone of the DAG on screen; says whether the shown zone changed with it. */
export function setDagZone(name) {
  const before = zone();
  dagZone = name || null;
  return zone() !== before;
}

/** The DAG's own zone, null off a DAG's pages. */
export const currentDagZone = () => dagZone;

/** Every zone this browser knows, UTC and its own first. */
export function zones() {
  const all = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return [...new Set(["UTC", browserZone(), zone(), ...(dagZone ? [dagZone] : []), ...all])];
}

const labels = new Map();
/** The shown zone's short name at `d`: `UTC`, `UTC+5:30`, `EST`. */
export function zoneLabel(d = new Date()) {
  const name = zone();
  if (name === "UTC" || name === "Etc/UTC") return "UTC";
  if (!labels.has(name)) {
    let f = null;
    try {
      f = new Intl.DateTimeFormat("en-US", { timeZone: name, timeZoneName: "short" });
    } catch {
      f = null;
    }
    labels.set(name, f);
  }
  const f = labels.get(name);
  const part = f?.formatToParts(d).find((x) => x.type === "timeZoneName")?.value ?? name;
  return part.replace(/^GMT(?=[+-])/, "UTC");
}

const formats = new Map();
/** A formatter of date and time parts in `name`, or null for a zone the browser lacks. */
function zoneFormat(name) {
  if (!formats.has(name)) {
    let f = null;
    try {
      f = new Intl.DateTimeFormat("en-CA", {
        timeZone: name, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit",
      });
    } catch {
      f = null;
    }
    formats.set(name, f);
  }
  return formats.get(name);
}

/** The wall-clock reading of `d` in the shown zone: `{year, month, day, hour, minute, second}`. */
function wallClock(d) {
  const f = zoneFormat(zone());
  if (!f) return { year: d.getFullYear(), month: d.getMonth() + 1, day: d.getDate(), hour: d.getHours(), minute: d.getMinutes(), second: d.getSeconds() };
  const p = Object.fromEntries(f.formatToParts(d).map((x) => [x.type, x.value]));
  return { year: +p.year, month: +p.month, day: +p.day, hour: +p.hour % 24, minute: +p.minute, second: +p.second };
}

/** `2026-11-21 09:59:03` in the shown zone; empty for null. */
export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const w = wallClock(d);
  return `${w.year}-${pad(w.month)}-${pad(w.day)} ${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}`;
}

/** `09:59:03` in the shown zone. */
export function fmtClock(d) {
  const w = wallClock(d);
  return `${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}`;
}

/**
 * The instant a `datetime-local` value (`2026-11-21T09:59` or with seconds) stands for
 * in the shown zone; null if it is not one. A time the zone skips or repeats is found
 * by correcting the offset twice, as wall clocks allow.
 */
export function fromWallClock(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value ?? "");
  if (!m) return null;
  const want = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] ?? 0));
  let t = want;
  for (let i = 0; i < 2; i++) {
    const w = wallClock(new Date(t));
    t += want - Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  }
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** `2026-11-21 09:59:03 UTC+5:30`: a time in the shown zone, saying which; empty for null. */
export function fmtTimeZone(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : `${fmtTime(iso)} ${zoneLabel(d)}`;
}

/**
 * A time as shown everywhere: the time in the shown zone followed by the zone's short
 * name; `relative` shows `3 min ago` instead (kept fresh), the absolute time on hover.
 * The tooltip carries the zone's name and the UTC ISO form.
 */
export function time(iso, { relative = false } = {}) {
  if (!iso) return h("span", { class: "muted" }, "–");
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h("span", {}, String(iso));
  const title = `${fmtTimeZone(iso)} (${zone()}; ${d.toISOString()})`;
  if (relative) return h("time", { datetime: iso, title, "data-relative": "" }, ago(iso));
  return h("span", { class: "when" }, h("time", { datetime: iso, title }, fmtTime(iso)), " ", h("span", { class: "tz" }, zoneLabel(d)));
}

// Relative times say "3 min ago" of the moment they were drawn: keep them true.
setInterval(() => {
  if (document.hidden) return;
  for (const el of document.querySelectorAll("time[data-relative]")) {
    const text = ago(el.getAttribute("datetime"));
    if (el.textContent !== text) el.textContent = text;
  }
}, 15000);

/** `3 min ago`, `in 2 h`. */
export function ago(iso) {
  const secs = (Date.now() - new Date(iso).getTime()) / 1000;
  const abs = Math.abs(secs);
  const [n, unit] = abs < 60 ? [Math.round(abs), "s"] : abs < 3600 ? [Math.round(abs / 60), "min"]
    : abs < 86400 ? [Math.round(abs / 3600), "h"] : [Math.round(abs / 86400), "d"];
  return secs >= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

/** Seconds as `0.42s`, `12s`, `3m 04s`, `1h 02m`. */
export function fmtDuration(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return "";
  if (secs < 10) return `${secs.toFixed(2)}s`;
  if (secs < 60) return `${Math.round(secs)}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m ${pad(Math.round(secs % 60))}s`;
  return `${Math.floor(secs / 3600)}h ${pad(Math.floor((secs % 3600) / 60))}m`;
}

/** The duration of something with start and end dates, running ones up to now. */
export function durationOf(x) {
  if (x.duration != null && x.end_date) return x.duration;
  if (!x.start_date) return null;
  const end = x.end_date ? new Date(x.end_date) : new Date();
  return Math.max(0, (end - new Date(x.start_date)) / 1000);
}

/** Shows a short notice at the bottom of the window. */
export function notify(text, kind = "info") {
  let box = document.getElementById("notices");
  if (!box) {
    box = h("div", { id: "notices", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const n = h("div", { class: `notice notice-${kind}` }, text);
  box.append(n);
  setTimeout(() => n.remove(), kind === "error" ? 8000 : 4000);
}

/**
 * Opens a modal <dialog> with `content` and resolves with what `onSubmit` returns, or
 * null when it is cancelled. `onSubmit` may throw to keep the dialog open.
 */
export function modal({ title, content, submitLabel = "OK", danger = false, onSubmit, wide = false }) {
  return new Promise((resolve) => {
    const error = h("p", { class: "form-error", role: "alert", hidden: true });
    const submit = h("button", { type: "submit", class: danger ? "btn danger" : "btn primary" }, submitLabel);
    const form = h("form", { method: "dialog", class: "dialog-form", novalidate: true },
      h("header", {}, h("h2", {}, title),
        h("button", { type: "button", class: "icon-btn", "aria-label": "Close", onclick: () => close(null) }, "×")),
      h("div", { class: "dialog-body" }, content, error),
      h("footer", {},
        h("button", { type: "button", class: "btn", onclick: () => close(null) }, "Cancel"),
        submit));
    const dlg = h("dialog", { class: wide ? "wide" : "" }, form);
    let done = false;
    const close = (value) => {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      resolve(value);
    };
    dlg.addEventListener("cancel", (e) => {
      e.preventDefault();
      close(null);
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      error.hidden = true;
      submit.disabled = true;
      try {
        const value = onSubmit ? await onSubmit() : true;
        close(value === undefined ? true : value);
      } catch (err) {
        if (err && err.message) {
          error.textContent = err.message;
          error.hidden = false;
        }
      } finally {
        submit.disabled = false;
      }
    });
    document.body.append(dlg);
    dlg.showModal();
    const first = dlg.querySelector("input, select, textarea");
    (first ?? submit).focus();
  });
}

/** Asks for confirmation; resolves true or false. */
export async function confirm(title, body, { label = "Confirm", danger = false } = {}) {
  return (await modal({ title, content: body, submitLabel: label, danger })) === true;
}

/**
 * Calls `tick` again and again: quickly while it reports activity, backing off while
 * nothing changes, slowly when all is idle, and not at all while the tab is hidden.
 * `tick` resolves `{active, changed}`.
 */
export class Poller {
  constructor(tick, { min = 1000, max = 8000, idle = 30000 } = {}) {
    this.tick = tick;
    this.min = min;
    this.max = max;
    this.idle = idle;
    this.delay = min;
    this.timer = null;
    this.stopped = true;
    this.running = false;
    this.onVisible = () => {
      if (document.hidden) this.clear();
      else if (!this.stopped) this.now();
    };
  }
  start() {
    this.stopped = false;
    document.addEventListener("visibilitychange", this.onVisible);
    this.now();
    return this;
  }
  stop() {
    this.stopped = true;
    this.clear();
    document.removeEventListener("visibilitychange", this.onVisible);
  }
  clear() {
    clearTimeout(this.timer);
    this.timer = null;
  }
  /** Runs now and polls quickly again (after a change the user made). */
  kick() {
    this.delay = this.min;
    this.now();
  }
  async now() {
    this.clear();
    if (this.stopped) return;
    if (this.running) {
      // A change was made while a tick was on its way: look again right after it.
      this.again = true;
      return;
    }
    this.running = true;
    this.again = false;
    let r = { active: false, changed: false };
    try {
      r = (await this.tick()) ?? r;
    } catch (e) {
      // A failed poll backs off like an idle one; the page shows its own error.
      r = { active: false, changed: false, error: e };
    } finally {
      this.running = false;
    }
    if (this.stopped || document.hidden) return;
    if (this.again) {
      this.delay = this.min;
      this.now();
      return;
    }
    if (!r.active) this.delay = this.idle;
    else if (r.changed) this.delay = this.min;
    else this.delay = Math.min(Math.max(this.delay, this.min) * 1.6, this.max);
    this.timer = setTimeout(() => this.now(), this.delay);
  }
}

/** An error shown in place of content. */
export function errorBox(err) {
  return h("div", { class: "error-box", role: "alert" }, h("strong", {}, "Could not load: "), err.message ?? String(err));
}

/** A pause switch: on means active (unpaused), as in Airflow's list. `onToggle(unpause)`. */
export function pauseSwitch(dag, onToggle) {
  const btn = h("button", {
    type: "button", role: "switch", class: "switch",
    "aria-checked": String(!dag.is_paused),
    "aria-label": `${dag.is_paused ? "Unpause" : "Pause"} ${dag.dag_id}`,
    title: dag.is_paused ? "Paused: click to unpause" : "Active: click to pause",
    onclick: async () => {
      btn.disabled = true;
      try {
        await onToggle(dag.is_paused);
      } finally {
        btn.disabled = false;
      }
    },
  }, h("span", { class: "knob" }));
  return btn;
}
