// Freshness: open pages notice new runs and state changes within a second or two, cheaply.
// One poll for the whole tab asks `ui/changes` for three counts (DAGs, runs, task
// instances) that move whenever such a row is written, by any process on the database;
// only when one moves do the pages that subscribed refetch what they show. Nothing is
// polled while the tab is hidden. When the server stops answering (this poll or a page's
// own refetch), the page keeps what it shows and a marker says it is stale, until an
// answer comes again.

import { api } from "./api.js";
import { h, put, fmtClock, zone } from "./ui.js";

/** How often the counts are asked for. */
const PERIOD = 1000;

const subscribers = new Set();
/** What failed, by source ("changes", or a page's name); the marker shows while any has. */
const failing = new Map();
let timer = null;
let polling = false;
let last = null;
let lastOk = null;
let marker = null;

/**
 * Calls `onChange()` whenever the server's counts move, and once more when the server
 * answers again after failing. Returns the function that stops it.
 */
export function watchChanges(onChange) {
  subscribers.add(onChange);
  if (subscribers.size === 1) {
    document.addEventListener("visibilitychange", onVisible);
    schedule(0);
  }
  return () => {
    subscribers.delete(onChange);
    if (!subscribers.size) {
      clearTimeout(timer);
      timer = null;
      document.removeEventListener("visibilitychange", onVisible);
      failing.clear();
      showMarker();
    }
  };
}

/**
 * Says whether a page's own fetch of `source` failed (`error`) or succeeded (null): a
 * failure marks the page stale, without touching what it shows.
 */
export function reportFetch(source, error) {
  if (error) failing.set(source, error);
  else {
    failing.delete(source);
    lastOk = new Date();
  }
  showMarker();
}

/** Whether the page shows data the server could not refresh. */
export function isStale() {
  return failing.size > 0;
}

function onVisible() {
  if (!document.hidden) schedule(0);
}

function schedule(delay) {
  clearTimeout(timer);
  timer = subscribers.size ? setTimeout(poll, delay) : null;
}

async function poll() {
  timer = null;
  if (!subscribers.size || document.hidden || polling) return;
  polling = true;
  let moved = false;
  try {
    const c = await api("ui/changes");
    const key = `${c.dags}:${c.runs}:${c.task_instances}`;
    moved = last !== null && key !== last;
    last = key;
    // Back after a failure: what the pages show may be old, whatever the counts say.
    if (failing.size) moved = true;
    failing.delete("changes");
    lastOk = new Date();
  } catch (e) {
    failing.set("changes", e);
  } finally {
    polling = false;
  }
  showMarker();
  if (moved) for (const f of [...subscribers]) f();
  if (!document.hidden) schedule(PERIOD);
}

function showMarker() {
  const stale = failing.size > 0;
  document.body.classList.toggle("is-stale", stale);
  if (!stale) {
    marker?.remove();
    marker = null;
    return;
  }
  const err = [...failing.values()][0];
  if (!marker) {
    marker = h("div", { id: "stale-marker", class: "stale-marker", role: "status", "aria-live": "polite" });
    document.body.append(marker);
  }
  put(marker,
    h("strong", {}, "Not up to date: "),
    `the server did not answer (${err?.message ?? err}). `,
    lastOk ? `Showing what it said at ${fmtClock(lastOk)} ${zone()}; ` : "",
    "retrying…");
}
