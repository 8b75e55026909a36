// The DAG list: search, tag and active/paused filters kept in the URL, a pause switch,
// schedule, last and next run, the recent runs as coloured marks, a trigger button, and
// a banner for import errors that opens to file, line and message.

import { api, path } from "./api.js";
import { put, h, badge, time, fmtDuration, durationOf, isActive, Poller, errorBox, pauseSwitch, notify } from "./ui.js";
import { watchChanges, reportFetch } from "./fresh.js";
import { href, navigate, setQuery, readQuery } from "./router.js";
import { openTrigger } from "./trigger.js";
import { assetSchedule } from "./assets.js";

const PAGE = 50;
const RECENT = 10;

export function dagsPage(main, route) {
  document.title = "DAGs · updraft";
  let query = route.query;
  let lastJson = "";
  let tagsLoaded = false;
  /** Asset-scheduled DAGs' conditions, by dag id, kept while the DAG's parse time stays. */
  const conditions = new Map();

  const banner = h("div", { class: "import-errors" });
  const search = h("input", {
    type: "search", id: "dag-search", placeholder: "Search DAGs", "aria-label": "Search DAGs by id",
    value: query.get("search") ?? "",
  });
  const stateFilter = h("div", { class: "segmented", role: "group", "aria-label": "Filter by state" });
  const tagBox = h("div", { class: "tag-filter", role: "group", "aria-label": "Filter by tag" });
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 8, class: "muted loading" }, "Loading…")));
  const table = h("table", { class: "dag-list" },
    h("thead", {}, h("tr", {},
      h("th", { class: "col-toggle" }, h("span", { class: "sr-only" }, "Active")),
      h("th", {}, "DAG"),
      h("th", { class: "col-schedule" }, "Schedule"),
      h("th", { class: "col-owner" }, "Owner"),
      h("th", {}, "Last run"),
      h("th", { class: "col-next" }, "Next run"),
      h("th", { class: "col-recent" }, "Recent runs"),
      h("th", { class: "col-actions" }, h("span", { class: "sr-only" }, "Actions")))),
    body);
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const count = h("span", { class: "muted count" });

  main.append(h("section", { class: "page" },
    h("header", { class: "page-head" }, h("h1", {}, "DAGs"), count),
    banner,
    h("div", { class: "toolbar" }, search, stateFilter),
    tagBox,
    h("div", { class: "table-wrap" }, table),
    pager));

  let debounce;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      setQuery({ search: search.value, offset: null });
      query = readQuery(location.search);
      poller.kick();
    }, 250);
  });

  const filters = () => ({
    search: query.get("search") ?? "",
    paused: query.get("paused"),
    tags: query.getAll("tags"),
    offset: Number(query.get("offset") ?? 0) || 0,
  });

  async function load() {
    const f = filters();
    const common = { dag_id_pattern: f.search || null, tags: f.tags };
    const [list, all, active, paused, errors] = await Promise.all([
      api("api/v2/dags", { query: { ...common, limit: PAGE, offset: f.offset, paused: f.paused, order_by: "dag_id" } }),
      api("api/v2/dags", { query: { ...common, limit: 1 } }),
      api("api/v2/dags", { query: { ...common, limit: 1, paused: false } }),
      api("api/v2/dags", { query: { ...common, limit: 1, paused: true } }),
      api("api/v2/importErrors", { query: { limit: 100 } }),
    ]);
    if (!tagsLoaded) {
      tagsLoaded = true;
      api("api/v2/dagTags", { query: { limit: 100 } }).then((t) => renderTags(t.tags ?? []), () => { tagsLoaded = false; });
    }
    const ids = list.dags.map((d) => d.dag_id);
    const recent = ids.length ? await api("ui/dags/recent_runs", { query: { dag_ids: ids, limit: RECENT } }) : { dags: [] };
    const runs = Object.fromEntries(recent.dags.map((d) => [d.dag_id, d.latest_dag_runs]));
    // The list route says only "Asset": the condition is in each such DAG's details.
    await Promise.all(list.dags.filter((d) => /^Asset( or |$)/.test(d.timetable_summary ?? "")).map(async (d) => {
      const known = conditions.get(d.dag_id);
      if (known && known.parsed === d.last_parsed_time) return;
      try {
        const det = await api(path`api/v2/dags/${d.dag_id}/details`);
        conditions.set(d.dag_id, { parsed: d.last_parsed_time, text: assetSchedule(det.timetable_summary, det.asset_expression) });
      } catch {
        // The summary stays as the list gives it.
      }
    }));
    const schedules = Object.fromEntries(list.dags.map((d) => [d.dag_id, conditions.get(d.dag_id)?.text ?? null]));
    const data = { list, counts: [all.total_entries, active.total_entries, paused.total_entries], errors, runs, schedules };
    const json = JSON.stringify(data);
    const changed = json !== lastJson;
    if (changed) {
      lastJson = json;
      render(data, f);
    }
    const activeRuns = Object.values(runs).some((rs) => rs.some((r) => isActive(r.state)));
    return { active: activeRuns, changed };
  }

  function render({ list, counts, errors, runs, schedules }, f) {
    count.textContent = `${list.total_entries} shown of ${counts[0]}`;
    renderBanner(errors);
    renderStateFilter(counts, f.paused);
    put(body, ...(list.dags.length ? list.dags.map((d) => row(d, runs[d.dag_id] ?? [], schedules[d.dag_id]))
      : [h("tr", {}, h("td", { colspan: 8, class: "empty" }, f.search || f.tags.length || f.paused ? "No DAG matches these filters." : "No DAGs yet: put a YAML file in the DAG folder."))]));
    put(pager);
    if (list.total_entries > PAGE) {
      const pages = Math.ceil(list.total_entries / PAGE);
      const cur = Math.floor(f.offset / PAGE);
      for (let i = 0; i < pages; i++) {
        pager.append(h("a", { href: href(["dags"], { ...Object.fromEntries(query), offset: i * PAGE || null }), "aria-current": i === cur ? "page" : null, class: "page-link" }, String(i + 1)));
      }
    }
  }

  function renderBanner(errors) {
    const n = errors.total_entries ?? errors.import_errors.length;
    const wasOpen = banner.querySelector("details")?.open ?? false;
    put(banner);
    if (!n) return;
    banner.append(h("details", { class: "banner banner-error", id: "import-errors", open: wasOpen },
      h("summary", {}, h("strong", {}, `${n} DAG import error${n === 1 ? "" : "s"}`), h("span", { class: "muted" }, " · files that could not be read; their DAGs keep their last good version")),
      h("ul", { class: "import-error-list" }, errors.import_errors.map((e) => {
        const pos = /:(\d+):(\d+):/.exec(e.stack_trace ?? "") ?? /line (\d+)/.exec(e.stack_trace ?? "");
        const line = e.line ?? (pos ? Number(pos[1]) : null);
        return h("li", {},
          h("div", { class: "ie-head" }, h("code", { class: "ie-file" }, e.filename), line ? h("span", { class: "ie-line" }, `line ${line}`) : null,
            e.bundle_name ? h("span", { class: "muted" }, e.bundle_name) : null, time(e.timestamp, { relative: true })),
          h("pre", { class: "ie-trace" }, e.stack_trace));
      }))));
  }

  function renderStateFilter([all, active, paused], current) {
    const opt = (label, value, n) => h("button", {
      type: "button", class: "seg", "aria-pressed": String((current ?? null) === value),
      onclick: () => {
        setQuery({ paused: value, offset: null });
        query = readQuery(location.search);
        poller.kick();
      },
    }, label, h("span", { class: "seg-count" }, String(n)));
    put(stateFilter, opt("All", null, all), opt("Active", "false", active), opt("Paused", "true", paused));
  }

  function renderTags(tags) {
    const selected = new Set(query.getAll("tags"));
    put(tagBox, tags.length ? h("span", { class: "muted small" }, "Tags:") : null,
      ...tags.map((t) => h("button", {
        type: "button", class: "tag", "aria-pressed": String(selected.has(t)),
        onclick: () => toggleTag(t),
      }, t)));
  }

  function toggleTag(t) {
    const tags = new Set(query.getAll("tags"));
    if (tags.has(t)) tags.delete(t);
    else tags.add(t);
    setQuery({ tags: [...tags], offset: null });
    query = readQuery(location.search);
    tagsLoaded = false;
    poller.kick();
  }

  function row(d, runs, onAssets) {
    const dagHref = href(["dags", d.dag_id, "grid"]);
    const last = runs[0];
    return h("tr", { class: d.is_paused ? "paused" : "", dataset: { dagId: d.dag_id } },
      h("td", { class: "col-toggle" }, pauseSwitch(d, async (unpause) => {
        try {
          await api(path`api/v2/dags/${d.dag_id}`, { method: "PATCH", body: { is_paused: !unpause } });
          poller.kick();
        } catch (e) {
          notify(e.message, "error");
        }
      })),
      h("td", { class: "col-dag" },
        h("a", { href: dagHref, class: "dag-link" }, d.dag_display_name ?? d.dag_id),
        d.description ? h("div", { class: "muted small desc" }, d.description) : null,
        d.tags?.length ? h("div", { class: "tags" }, d.tags.map((t) => h("button", {
          type: "button", class: "tag small", title: `Show DAGs tagged ${t.name}`, onclick: () => toggleTag(t.name),
        }, t.name))) : null),
      h("td", { class: "col-schedule" }, onAssets
        ? h("code", { class: "schedule asset-schedule", title: d.timetable_description ?? "" }, onAssets)
        : d.timetable_summary
        ? h("code", { class: "schedule", title: d.timetable_description ?? "" }, d.timetable_summary)
        : h("span", { class: "muted", title: d.timetable_description ?? "" }, "None")),
      h("td", { class: "col-owner" }, (d.owners ?? []).join(", ")),
      h("td", { class: "col-last" }, last
        ? h("a", { href: href(["dags", d.dag_id, "grid"], { run: last.dag_run_id }), class: "last-run" }, badge(last.state), " ", time(last.run_after, { relative: true }))
        : h("span", { class: "muted" }, "Never")),
      h("td", { class: "col-next" }, d.next_dagrun_run_after ? time(d.next_dagrun_run_after, { relative: true }) : h("span", { class: "muted" }, "–")),
      h("td", { class: "col-recent" }, marks(d.dag_id, runs)),
      h("td", { class: "col-actions" }, h("button", {
        type: "button", class: "btn small trigger", "aria-label": `Trigger ${d.dag_id}`, title: "Trigger a run",
        onclick: async () => {
          try {
            const run = await openTrigger(d.dag_id);
            if (run) navigate(href(["dags", d.dag_id, "grid"], { run: run.backfill ? null : run.dag_run_id }));
          } catch (e) {
            notify(e.message, "error");
          }
        },
      }, h("span", { "aria-hidden": "true" }, "▶"), " Trigger")));
  }

  /** The recent runs, oldest on the left, bar height by duration as in Airflow's list. */
  function marks(dagId, runs) {
    if (!runs.length) return h("span", { class: "muted" }, "–");
    const ordered = [...runs].reverse();
    const max = Math.max(1, ...ordered.map((r) => durationOf(r) ?? 0));
    return h("div", { class: "marks" }, ordered.map((r) => {
      const dur = durationOf(r);
      const pct = Math.max(18, Math.round(((dur ?? 0) / max) * 100));
      return h("a", {
        href: href(["dags", dagId, "grid"], { run: r.dag_run_id }), class: `mark st-${r.state}`,
        style: `height:${pct}%`, title: `${r.dag_run_id}\n${r.state}${dur != null ? ` · ${fmtDuration(dur)}` : ""}`,
        "aria-label": `Run ${r.dag_run_id}: ${r.state}`,
      });
    }));
  }

  const poller = new Poller(async () => {
    try {
      const r = await load();
      reportFetch("dags", null);
      return r;
    } catch (e) {
      // Rows already shown stay, marked stale, until the server answers again.
      if (lastJson) reportFetch("dags", e);
      else put(body, h("tr", {}, h("td", { colspan: 8 }, errorBox(e))));
      throw e;
    }
  }, { min: 1500, max: 8000, idle: 60000 }).start();
  // New runs, state changes and pauses, from any process, bring a refetch within a second.
  const unwatch = watchChanges(() => poller.kick());

  return {
    update(r) {
      query = r.query;
      search.value = query.get("search") ?? "";
      tagsLoaded = false;
      poller.kick();
    },
    unmount() {
      unwatch();
      reportFetch("dags", null);
      poller.stop();
      clearTimeout(debounce);
    },
  };
}
