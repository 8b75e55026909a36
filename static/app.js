// updraft's UI entry point. Every URL is relative: the server injects <base href> with
// the base_url prefix, so the same files work at / and under any prefix.

const base = (window.UPDRAFT && window.UPDRAFT.base) || document.baseURI;

/** Fetches JSON from a path relative to the base. */
export async function api(path, options = {}) {
  const res = await fetch(new URL(path, new URL(base, location.href)), options);
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error((body && body.detail) || res.statusText);
  return body;
}

function row(name, status, detail) {
  const tr = document.createElement("tr");
  const cls = status === "healthy" ? "ok" : status ? "bad" : "muted";
  for (const [text, c] of [[name, ""], [status || "n/a", cls], [detail || "", "muted"]]) {
    const td = document.createElement("td");
    td.textContent = text;
    if (c) td.className = c;
    tr.append(td);
  }
  return tr;
}

async function showHealth() {
  const [version, health] = await Promise.all([
    api("api/v2/version"),
    api("api/v2/monitor/health"),
  ]);
  document.getElementById("version").textContent = `v${version.version}`;
  const body = document.querySelector("#health tbody");
  const pool = health.api_server;
  const exec = health.execution_api;
  body.replaceChildren(
    row("metadatabase", health.metadatabase.status),
    row("scheduler", health.scheduler.status, health.scheduler.latest_scheduler_heartbeat || "no heartbeat yet"),
    row("api server", pool.status, `${pool.workers_alive} workers, generation ${pool.generation}, ${pool.refreshes_completed} refreshes`),
    row("execution api", exec.status, `${exec.url} ${exec.detail}`),
  );
}

showHealth().catch((e) => {
  document.querySelector("#health tbody").replaceChildren(row("server", "unreachable", e.message));
});
