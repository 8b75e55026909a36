// Assets: the list (name and URI, group, last event, the DAGs scheduled on each and the
// tasks that produce it; searchable, the search kept in the URL) and one asset's page
// (its consumers and producers, its events with where they came from, and a "Create
// event" button for the roles the API lets create one). Only the Core API's asset routes.

import { api, path } from "./api.js";
import { put, h, time, Poller, errorBox, modal, notify } from "./ui.js";
import { href, setQuery, readQuery } from "./router.js";

const PAGE = 100;
const ROLES = ["viewer", "user", "op", "admin"];
/** Whether the logged-in user may create asset events (the route wants Op or more). */
export const canCreateEvent = (me) => Boolean(me?.all_admins) || ROLES.indexOf(String(me?.role ?? "").toLowerCase()) >= 2;

/** An asset's label: its name, and its URI when that says something more. */
function assetLabel(a) {
  return a.uri && a.uri !== a.name ? [h("span", { class: "asset-name" }, a.name), h("code", { class: "asset-uri muted small" }, a.uri)] : h("span", { class: "asset-name" }, a.name);
}

/** Links to the DAGs scheduled on the asset. */
function consumers(a) {
  const dags = a.scheduled_dags ?? [];
  if (!dags.length) return h("span", { class: "muted" }, "–");
  return h("ul", { class: "plain-list consumers" }, dags.map((d) => h("li", {}, h("a", { href: href(["dags", d.dag_id, "grid"]) }, d.dag_id))));
}

/** Links to the tasks that have the asset as an outlet. */
function producers(a) {
  const tasks = a.producing_tasks ?? [];
  if (!tasks.length) return h("span", { class: "muted" }, "–");
  return h("ul", { class: "plain-list producers" }, tasks.map((t) => h("li", {},
    h("a", { href: href(["dags", t.dag_id, "grid"]) }, t.dag_id), " · ", h("code", {}, t.task_id))));
}

/** An asset condition (`asset_expression`) in words: names joined by & (all) and | (any). */
export function assetCondition(e, nested = false) {
  if (!e) return "";
  if (e.asset) return e.asset.name;
  if (e.alias) return `alias ${e.alias.name}`;
  const [items, op] = e.all ? [e.all, " & "] : [e.any ?? [], " | "];
  const text = items.map((i) => assetCondition(i, true)).join(op);
  return nested && items.length > 1 ? `(${text})` : text;
}

/**
 * A DAG's schedule in words when it runs on assets: "on <condition>", and for an asset
 * or time schedule ("Asset or <timetable>") "on <condition> or <timetable>"; else null.
 */
export function assetSchedule(summary, expression) {
  if (!expression || !/^Asset( or |$)/.test(summary ?? "")) return null;
  const rest = summary.startsWith("Asset or ") ? ` or ${summary.slice("Asset or ".length)}` : "";
  return `on ${assetCondition(expression)}${rest}`;
}

/** The Assets page. */
export function assetsPage(main, route) {
  document.title = "Assets · updraft";
  let query = route.query;
  let lastJson = "";
  const search = h("input", {
    type: "search", id: "asset-search", placeholder: "Search assets", "aria-label": "Search assets by name or URI",
    value: query.get("search") ?? "",
  });
  const count = h("span", { class: "muted count" });
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 5, class: "muted loading" }, "Loading…")));
  const table = h("table", { class: "asset-list" },
    h("thead", {}, h("tr", {},
      h("th", {}, "Asset"),
      h("th", {}, "Group"),
      h("th", {}, "Last event"),
      h("th", {}, "Consumed by (DAGs)"),
      h("th", {}, "Produced by (tasks)"))),
    body);
  main.append(h("section", { class: "page assets-page" },
    h("header", { class: "page-head" }, h("h1", {}, "Assets"), count),
    h("div", { class: "toolbar" }, search),
    h("div", { class: "table-wrap" }, table)));

  let debounce;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      setQuery({ search: search.value });
      query = readQuery(location.search);
      poller.kick();
    }, 250);
  });

  async function load() {
    const term = query.get("search") ?? "";
    // The API filters names and URIs separately (both would have to match): ask twice.
    const lists = await Promise.all(term
      ? [api("api/v2/assets", { query: { name_pattern: term, limit: PAGE, order_by: "name" } }),
        api("api/v2/assets", { query: { uri_pattern: term, limit: PAGE, order_by: "name" } })]
      : [api("api/v2/assets", { query: { limit: PAGE, order_by: "name" } })]);
    const seen = new Map();
    for (const l of lists) for (const a of l.assets) seen.set(a.id, a);
    const assets = [...seen.values()].sort((a, b) => a.name.localeCompare(b.name));
    const total = term ? assets.length : lists[0].total_entries;
    const json = JSON.stringify([assets, total]);
    const changed = json !== lastJson;
    if (changed) {
      lastJson = json;
      count.textContent = `${assets.length} shown of ${total}`;
      put(body, ...(assets.length ? assets.map(row)
        : [h("tr", {}, h("td", { colspan: 5, class: "empty" }, term ? "No asset matches this search." : "No assets yet: a DAG's schedule or a task's outlets name them."))]));
    }
    return { active: false, changed };
  }

  function row(a) {
    const last = a.last_asset_event?.timestamp;
    return h("tr", { dataset: { assetId: String(a.id) } },
      h("td", { class: "col-asset" }, h("a", { href: href(["assets", String(a.id)]), class: "asset-link" }, assetLabel(a))),
      h("td", {}, a.group || h("span", { class: "muted" }, "–")),
      h("td", { class: "col-last-event" }, last ? time(last, { relative: true }) : h("span", { class: "muted" }, "Never")),
      h("td", { class: "col-consumers" }, consumers(a)),
      h("td", { class: "col-producers" }, producers(a)));
  }

  const poller = new Poller(async () => {
    try {
      return await load();
    } catch (e) {
      put(body, h("tr", {}, h("td", { colspan: 5 }, errorBox(e))));
      lastJson = "";
      throw e;
    }
  }, { min: 3000, max: 10000, idle: 15000 }).start();

  return {
    update(r) {
      query = r.query;
      search.value = query.get("search") ?? "";
      poller.kick();
    },
    unmount() {
      poller.stop();
      clearTimeout(debounce);
    },
  };
}

/** Where an event came from: its DAG, run and task linked, or "manual" for one made through the API. */
function source(e) {
  if (!e.source_dag_id) return h("span", { class: "muted" }, e.extra?.from_rest_api ? "created through the API" : "–");
  const run = e.source_run_id;
  return h("span", { class: "event-source" },
    h("a", { href: href(["dags", e.source_dag_id, "grid"]) }, e.source_dag_id),
    run ? [" · ", h("a", { href: href(["dags", e.source_dag_id, "grid"], { run }) }, run)] : null,
    e.source_task_id ? [" · ", h("a", { href: href(["dags", e.source_dag_id, "grid"], { run, task: e.source_task_id }) }, h("code", {}, e.source_task_id))] : null,
    e.source_map_index >= 0 ? ` [${e.source_map_index}]` : null);
}

/** An event's extra as JSON, or a dash when it carries nothing. */
function extra(e) {
  const x = e.extra ?? {};
  return Object.keys(x).length ? h("pre", { class: "code small event-extra" }, JSON.stringify(x, null, 2)) : h("span", { class: "muted" }, "–");
}

/** The runs an event triggered, linked. */
function createdRuns(e) {
  const runs = e.created_dagruns ?? [];
  if (!runs.length) return h("span", { class: "muted" }, "–");
  return h("ul", { class: "plain-list created-runs" }, runs.map((r) => h("li", {},
    h("a", { href: href(["dags", r.dag_id, "grid"], { run: r.run_id }) }, `${r.dag_id} · ${r.run_id}`))));
}

/** Asset events as a short list, for the narrow run panel: time, asset, source, extra. */
export function eventsList(events) {
  return h("ul", { class: "plain-list asset-events-list" }, events.map((e) => {
    const x = e.extra ?? {};
    return h("li", { dataset: { eventId: String(e.id) } },
      h("div", {}, h("a", { href: href(["assets", String(e.asset_id)]), class: "asset-link-inline" }, e.name ?? e.uri), " ", h("span", { class: "muted small" }, time(e.timestamp))),
      h("div", { class: "small" }, "from ", source(e)),
      Object.keys(x).length ? h("code", { class: "small event-extra" }, JSON.stringify(x)) : null);
  }));
}

/** A table of asset events: time, asset (unless `withAsset` is false), source, extra, triggered runs. */
export function eventsTable(events, { withAsset = false, withRuns = true } = {}) {
  return h("div", { class: "table-wrap" }, h("table", { class: "asset-events" },
    h("thead", {}, h("tr", {},
      h("th", {}, "Time"),
      withAsset ? h("th", {}, "Asset") : null,
      h("th", {}, "Source"),
      h("th", {}, "Extra"),
      withRuns ? h("th", {}, "Triggered runs") : null)),
    h("tbody", {}, events.map((e) => h("tr", { dataset: { eventId: String(e.id) } },
      h("td", { class: "col-time" }, time(e.timestamp)),
      withAsset ? h("td", {}, h("a", { href: href(["assets", String(e.asset_id)]) }, e.name ?? e.uri)) : null,
      h("td", {}, source(e)),
      h("td", {}, extra(e)),
      withRuns ? h("td", {}, createdRuns(e)) : null)))));
}

/** One asset's page. */
export function assetPage(main, route, { me }) {
  const id = route.segments[1];
  document.title = "Asset · updraft";
  let lastJson = "";
  const head = h("header", { class: "page-head" }, h("h1", {}, "Asset"));
  const facts = h("div", { class: "asset-facts" }, h("p", { class: "muted loading" }, "Loading…"));
  const events = h("div", { id: "asset-events" });
  const eventCount = h("span", { class: "muted count" });
  main.append(h("section", { class: "page asset-page" },
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "assets" }, "Assets"), h("span", { "aria-hidden": "true" }, " / "), h("span", { class: "crumb-here" }, id)),
    head, facts,
    h("h2", {}, "Events ", eventCount),
    events));

  async function createEvent(asset) {
    const box = h("textarea", { id: "event-extra", rows: 6, class: "code", placeholder: "{\"rows\": 42}" });
    const created = await modal({
      title: `Create an event for ${asset.name}`,
      content: h("div", { class: "field" },
        h("label", { for: "event-extra" }, "Extra (JSON object, optional)"),
        box,
        h("p", { class: "muted small" }, "The DAGs scheduled on this asset are triggered as by a producer.")),
      submitLabel: "Create event",
      onSubmit: async () => {
        let body = { asset_id: asset.id };
        const text = box.value.trim();
        if (text) {
          try {
            body.extra = JSON.parse(text);
          } catch (e) {
            throw new Error(`Extra is not JSON: ${e.message}`);
          }
        }
        // The API's own words on what it refuses (e.g. an extra that is not an object).
        return api("api/v2/assets/events", { method: "POST", body });
      },
    });
    if (created) {
      notify(`Event created for ${asset.name}`, "success");
      poller.kick();
    }
  }

  function render(asset, list) {
    document.title = `${asset.name} · Assets · updraft`;
    main.querySelector(".crumb-here").textContent = asset.name;
    put(head,
      h("h1", {}, asset.name),
      asset.group ? h("span", { class: "pill muted-pill" }, asset.group) : null,
      h("span", { class: "spacer" }),
      canCreateEvent(me)
        ? h("button", { type: "button", class: "btn primary", id: "create-event", onclick: () => createEvent(asset) }, "Create event")
        : null);
    const x = asset.extra ?? {};
    put(facts, h("dl", { class: "dag-facts" },
      h("div", {}, h("dt", {}, "URI"), h("dd", {}, h("code", { class: "asset-uri" }, asset.uri))),
      h("div", {}, h("dt", {}, "Last event"), h("dd", {}, asset.last_asset_event?.timestamp ? time(asset.last_asset_event.timestamp) : h("span", { class: "muted" }, "Never"))),
      h("div", { class: "asset-consumers" }, h("dt", {}, "Consumed by (DAGs)"), h("dd", {}, consumers(asset))),
      h("div", { class: "asset-producers" }, h("dt", {}, "Produced by (tasks)"), h("dd", {}, producers(asset))),
      Object.keys(x).length ? h("div", {}, h("dt", {}, "Extra"), h("dd", {}, h("code", {}, JSON.stringify(x)))) : null));
    eventCount.textContent = `(${list.total_entries})`;
    put(events, list.asset_events.length ? eventsTable(list.asset_events) : h("p", { class: "muted empty" }, "No events yet."));
  }

  const poller = new Poller(async () => {
    try {
      const [asset, list] = await Promise.all([
        api(path`api/v2/assets/${id}`),
        api("api/v2/assets/events", { query: { asset_id: id, order_by: "-timestamp", limit: 50 } }),
      ]);
      const json = JSON.stringify([asset, list]);
      const changed = json !== lastJson;
      if (changed) {
        lastJson = json;
        render(asset, list);
      }
      return { active: false, changed };
    } catch (e) {
      put(facts, errorBox(e.status === 404 ? new Error(e.message) : e));
      lastJson = "";
      if (e.status === 404) return { active: false, changed: false };
      throw e;
    }
  }, { min: 2000, max: 8000, idle: 15000 }).start();

  return { unmount: () => poller.stop() };
}
