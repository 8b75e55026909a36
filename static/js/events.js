// The audit log (`api/v2/eventLogs`), newest first and paged: the global Audit Log page
// with filters by DAG, event, user and date (kept in the URL), and a DAG page's Audit
// Log tab (the same table for one DAG), as in Airflow 3.

import { api } from "./api.js";
import { h, put, time, errorBox, fromWallClock } from "./ui.js";
import { href, setQuery, current } from "./router.js";

const PAGE = 25;

function extraText(extra) {
  if (extra == null || extra === "") return "";
  return typeof extra === "string" ? extra : JSON.stringify(extra);
}

/** The entries as a table; `withDag` adds the DAG column (the global page). */
function eventTable(list, withDag) {
  if (!list.event_logs.length) return h("p", { class: "muted empty" }, "No events match.");
  const cols = ["When", "Event", withDag ? "DAG" : null, "Task", "Run", "Map index", "Try", "User", "Extra"].filter(Boolean);
  return h("div", { class: "table-wrap" }, h("table", { class: "event-log" },
    h("thead", {}, h("tr", {}, cols.map((x) => h("th", {}, x)))),
    h("tbody", {}, list.event_logs.map((e) => h("tr", { dataset: { event: e.event } },
      h("td", {}, time(e.when)),
      h("td", { class: "ev-event" }, h("code", {}, e.event)),
      withDag ? h("td", {}, e.dag_id ? h("a", { href: href(["dags", e.dag_id, "grid"]) }, e.dag_id) : "") : null,
      h("td", {}, e.task_id ?? ""),
      h("td", {}, e.run_id && e.dag_id ? h("a", { href: href(["dags", e.dag_id, "grid"], { run: e.run_id }) }, e.run_id) : e.run_id ?? ""),
      h("td", { class: "num" }, e.map_index != null && e.map_index >= 0 ? String(e.map_index) : ""),
      h("td", { class: "num" }, e.try_number ?? ""),
      h("td", { class: "ev-owner" }, e.owner ?? ""),
      h("td", {}, h("span", { class: "mono clip", title: extraText(e.extra) }, extraText(e.extra))))))));
}

/** "1–25 of 80" with previous and next buttons; `go(offset)` moves. */
export function pager(offset, limit, total, go, id = "pager") {
  const last = Math.min(offset + limit, total);
  return h("nav", { class: "pager", id, "aria-label": "Pages" },
    h("button", { type: "button", class: "btn small pager-prev", disabled: offset <= 0, onclick: () => go(Math.max(0, offset - limit)) }, "‹ Newer"),
    h("span", { class: "muted" }, total ? `${offset + 1}–${last} of ${total}` : "0 of 0"),
    h("button", { type: "button", class: "btn small pager-next", disabled: last >= total, onclick: () => go(offset + limit) }, "Older ›"));
}

/** The DAG page's Audit Log tab: `{el, update()}`; reads again when the DAG's data changes. */
export function eventsView({ dagId }) {
  let offset = 0;
  let seq = 0;
  const el = h("div", { class: "events-view" }, h("p", { class: "muted loading" }, "Loading…"));
  async function load() {
    const mine = ++seq;
    try {
      const list = await api("api/v2/eventLogs", { query: { dag_id: dagId, order_by: "-when", limit: PAGE, offset } });
      if (mine !== seq) return;
      put(el, eventTable(list, false), pager(offset, PAGE, list.total_entries, (o) => {
        offset = o;
        load();
      }, "events-pager"));
    } catch (e) {
      if (mine === seq) put(el, errorBox(e));
    }
  }
  load();
  return { el, update: () => load() };
}

const FILTERS = [
  ["dag_id", "DAG", "dag_id_pattern"],
  ["event", "Event", "event_pattern"],
  ["owner", "User", "owner_pattern"],
];

/** The global Audit Log page (`events`). */
export function auditLogPage(main, route) {
  document.title = "Audit Log · updraft";
  const box = h("div", {}, h("p", { class: "muted loading" }, "Loading…"));
  const inputs = {};
  const q = route.query;
  const fields = FILTERS.map(([key, label]) => {
    inputs[key] = h("input", { type: "search", id: `ev-${key}`, value: q.get(key) ?? "", placeholder: `${label} contains…` });
    return h("label", { class: "filter" }, h("span", {}, label), inputs[key]);
  });
  for (const [key, label] of [["after", "From"], ["before", "To"]]) {
    inputs[key] = h("input", { type: "datetime-local", id: `ev-${key}`, value: q.get(key) ?? "" });
    fields.push(h("label", { class: "filter" }, h("span", {}, label), inputs[key]));
  }
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter the audit log" }, fields,
    h("button", { type: "submit", class: "btn" }, "Filter"),
    h("button", { type: "button", class: "btn", onclick: () => {
      for (const i of Object.values(inputs)) i.value = "";
      apply();
    } }, "Clear"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    apply();
  });
  main.append(h("section", { class: "page audit-log" },
    h("header", { class: "page-head" }, h("h1", {}, "Audit Log")), form, box));

  function apply() {
    const params = Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.value.trim()]));
    setQuery({ ...params, offset: null });
    load();
  }

  let seq = 0;
  async function load() {
    const mine = ++seq;
    const now = current().query;
    const offset = Math.max(0, Number(now.get("offset")) || 0);
    const query = { order_by: "-when", limit: PAGE, offset };
    for (const [key, , pattern] of FILTERS) if (now.get(key)) query[pattern] = now.get(key);
    for (const key of ["after", "before"]) {
      const d = fromWallClock(now.get(key));
      if (d) query[key] = d.toISOString();
    }
    try {
      const list = await api("api/v2/eventLogs", { query });
      if (mine !== seq) return;
      put(box, eventTable(list, true), pager(offset, PAGE, list.total_entries, (o) => {
        setQuery({ offset: o || null });
        load();
      }));
    } catch (e) {
      if (mine === seq) put(box, errorBox(e));
    }
  }
  load();
  return { update: () => load() };
}
