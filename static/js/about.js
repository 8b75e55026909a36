// About and health: the version, each component's health, the scheduler's heartbeat, the
// API worker pool (workers, refresh generation) and the check of the Execution API URL
// that tasks are given, in red when it fails (the misconfiguration behind Airflow's
// "tasks stuck in queued" reports under a base_url).

import { api, BASE } from "./api.js";
import { put, h, time, ago, Poller, errorBox } from "./ui.js";

export function aboutPage(main) {
  document.title = "About · updraft";
  const box = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main.append(h("section", { class: "page about" }, h("header", { class: "page-head" }, h("h1", {}, "About")), box));
  let last = "";

  const status = (st) => {
    const cls = st === "healthy" ? "ok" : st ? "bad" : "unknown";
    return h("span", { class: `health ${cls}` }, h("span", { class: "health-dot", "aria-hidden": "true" }), st ?? "not checked yet");
  };

  function render(version, health) {
    const pool = health.api_server ?? {};
    const exec = health.execution_api ?? {};
    const sched = health.scheduler ?? {};
    const execBad = exec.status && exec.status !== "healthy";
    const card = (title, st, ...rows) => h("article", { class: `card ${st && st !== "healthy" ? "card-bad" : ""}` },
      h("header", {}, h("h2", {}, title), st !== undefined ? status(st) : null), ...rows);
    put(box,
      h("div", { class: "cards" },
        card("updraft", undefined,
          h("p", { class: "big", id: "updraft-version" }, `v${version.updraft_version ?? "?"}`),
          h("p", { class: "small", id: "airflow-version" }, `Implements the Apache Airflow ${version.version} API`),
          version.git_version ? h("p", { class: "muted small" }, version.git_version) : null,
          h("p", { class: "muted small" }, "Served at ", h("code", {}, BASE.pathname)),
          h("p", { class: "small" }, h("a", { href: "docs", "data-native": "" }, "API routes"), " · ", h("a", { href: "openapi.json", "data-native": "" }, "openapi.json"))),
        card("Metadata database", health.metadatabase?.status,
          h("p", { class: "muted small" }, "The SQLite file that holds DAGs, runs, task states, variables and connections.")),
        card("Scheduler", sched.status,
          h("p", {}, "Last heartbeat: ", sched.latest_scheduler_heartbeat
            ? [time(sched.latest_scheduler_heartbeat), h("span", { class: "muted" }, ` (${ago(sched.latest_scheduler_heartbeat)})`)]
            : h("span", { class: "muted" }, "none yet"))),
        card("API server", pool.status,
          h("dl", { class: "facts" },
            h("dt", {}, "Workers"), h("dd", {}, `${pool.workers_alive ?? "?"} alive of ${pool.workers_configured ?? "?"}`),
            h("dt", {}, "Generation"), h("dd", {}, String(pool.generation ?? "?")),
            h("dt", {}, "Refreshes"), h("dd", {}, String(pool.refreshes_completed ?? "?")),
            h("dt", {}, "Apps"), h("dd", {}, (pool.apps ?? []).join(", ")),
            pool.uptime_seconds != null ? [h("dt", {}, "Up for"), h("dd", {}, `${Math.round(pool.uptime_seconds)} s`)] : null))),
      h("article", { class: `card wide-card ${execBad ? "card-bad" : ""}`, id: "execution-check" },
        h("header", {}, h("h2", {}, "Execution API URL"), status(exec.status)),
        h("p", {}, h("code", {}, exec.url ?? "")),
        exec.detail ? h("p", { class: execBad ? "bad-text" : "muted" }, exec.detail) : null,
        execBad ? h("p", {}, "Tasks report their state to this URL. Set ", h("code", {}, "[core] execution_api_server_url"),
          " (", h("code", {}, "UPDRAFT__CORE__EXECUTION_API_SERVER_URL"), ") to an address where this server answers ",
          h("code", {}, "/execution/health"), ", or fix ", h("code", {}, "[api] base_url"), ".") : null));
  }

  const poller = new Poller(async () => {
    try {
      const [version, health] = await Promise.all([api("api/v2/version"), api("api/v2/monitor/health")]);
      const json = JSON.stringify([version, health]);
      const changed = json !== last;
      last = json;
      render(version, health);
      return { active: true, changed };
    } catch (e) {
      put(box, errorBox(e));
      throw e;
    }
  }, { min: 5000, max: 15000, idle: 15000 }).start();
  return { unmount: () => poller.stop() };
}
