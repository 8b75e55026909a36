// The XComs page (`xcoms`), as Airflow 3's Browse → XComs: every XCom of every DAG
// (`api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries`), filtered by DAG, run, task
// and key (kept in the URL), paged, newest first; a value is read when asked for.

import { api, path } from "./api.js";
import { h, put, time, errorBox } from "./ui.js";
import { href, setQuery, current } from "./router.js";
import { pager } from "./events.js";

const PAGE = 25;
const FILTERS = [
  ["dag", "DAG", "dag_display_name_pattern"],
  ["run", "Run", "run_id_pattern"],
  ["task", "Task", "task_id_pattern"],
  ["key", "Key", "xcom_key_pattern"],
];

/** A button that reads one XCom's value and shows it below itself. */
function valueCell(x) {
  const out = h("pre", { class: "xcom-value", hidden: true });
  const btn = h("button", {
    type: "button", class: "btn small xcom-show", "aria-expanded": "false",
    onclick: async () => {
      if (!out.hidden) {
        out.hidden = true;
        btn.setAttribute("aria-expanded", "false");
        return;
      }
      try {
        const one = await api(path`api/v2/dags/${x.dag_id}/dagRuns/${x.run_id}/taskInstances/${x.task_id}/xcomEntries/${x.key}`,
          { query: { map_index: x.map_index, deserialize: true, stringify: false } });
        const v = one.value;
        out.textContent = typeof v === "string" ? v : JSON.stringify(v, null, 2);
      } catch (e) {
        out.textContent = `Could not read the value: ${e.message}`;
      }
      out.hidden = false;
      btn.setAttribute("aria-expanded", "true");
    },
  }, "Value");
  return [btn, out];
}

export function xcomsPage(main, route) {
  document.title = "XComs · updraft";
  const box = h("div", {}, h("p", { class: "muted loading" }, "Loading…"));
  const inputs = {};
  const fields = FILTERS.map(([k, label]) => {
    inputs[k] = h("input", { type: "search", id: `xcom-${k}`, value: route.query.get(k) ?? "", placeholder: `${label} contains…` });
    return h("label", { class: "filter" }, h("span", {}, label), inputs[k]);
  });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter the XComs" }, fields,
    h("button", { type: "submit", class: "btn" }, "Filter"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    setQuery({ ...Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.value.trim()])), offset: null });
    load();
  });
  main.append(h("section", { class: "page xcoms" }, h("header", { class: "page-head" }, h("h1", {}, "XComs")), form, box));

  let seq = 0;
  async function load() {
    const mine = ++seq;
    const q = current().query;
    const offset = Math.max(0, Number(q.get("offset")) || 0);
    const query = { limit: PAGE, offset, order_by: "-timestamp" };
    for (const [k, , param] of FILTERS) if (q.get(k)) query[param] = q.get(k);
    try {
      const list = await api("api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries", { query });
      if (mine !== seq) return;
      put(box, list.xcom_entries.length ? h("div", { class: "table-wrap" }, h("table", { class: "xcom-list" },
        h("thead", {}, h("tr", {}, ["Key", "DAG", "Run", "Task", "Map index", "Logical date", "Value"].map((x) => h("th", {}, x)))),
        h("tbody", {}, list.xcom_entries.map((x) => h("tr", { dataset: { key: x.key } },
          h("td", {}, h("code", {}, x.key)),
          h("td", {}, h("a", { href: href(["dags", x.dag_id, "grid"]) }, x.dag_display_name ?? x.dag_id)),
          h("td", {}, h("a", { href: href(["dags", x.dag_id, "grid"], { run: x.run_id }) }, x.run_id)),
          h("td", {}, h("a", { href: href(["dags", x.dag_id, "grid"], { run: x.run_id, task: x.task_id, map_index: x.map_index >= 0 ? x.map_index : null }) }, x.task_id)),
          h("td", { class: "num" }, x.map_index >= 0 ? String(x.map_index) : ""),
          h("td", {}, time(x.logical_date)),
          h("td", { class: "xcom-cell" }, valueCell(x)))))))
        : h("p", { class: "muted empty" }, "No XComs match."),
      pager(offset, PAGE, list.total_entries, (o) => {
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
