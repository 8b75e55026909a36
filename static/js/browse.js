// Global pages that show what the server knows rather than what it runs: Import Errors
// (each DAG file that failed to parse, with its line and the parser's text), and, as in
// Airflow 3's Admin menu, Config (only where `[api] expose_config` allows; otherwise the
// API's refusal in its own words), Plugins and Providers.

import { api, ApiError } from "./api.js";
import { h, put, time, errorBox } from "./ui.js";
import { setQuery, current } from "./router.js";
import { pager } from "./events.js";

const PAGE = 25;

function shell(main, title, cls) {
  document.title = `${title} · updraft`;
  const box = h("div", {}, h("p", { class: "muted loading" }, "Loading…"));
  main.append(h("section", { class: `page ${cls}` }, h("header", { class: "page-head" }, h("h1", {}, title)), box));
  return box;
}

/** The line an import error's text names (`line 3`, `line 3, column 5`, `:3:`), or null. */
export function errorLine(text) {
  const m = /\bline (\d+)/i.exec(text ?? "") ?? /:(\d+):\d+\b/.exec(text ?? "");
  return m ? Number(m[1]) : null;
}

/** Import Errors (`import_errors`): every file that failed to parse, newest first, paged. */
export function importErrorsPage(main) {
  const box = shell(main, "Import Errors", "import-errors");
  let seq = 0;
  async function load() {
    const mine = ++seq;
    const offset = Math.max(0, Number(current().query.get("offset")) || 0);
    try {
      const list = await api("api/v2/importErrors", { query: { order_by: "-timestamp", limit: PAGE, offset } });
      if (mine !== seq) return;
      put(box, list.import_errors.length
        ? h("ul", { class: "import-error-list" }, list.import_errors.map((e) => {
          const line = errorLine(e.stack_trace);
          return h("li", { class: "import-error card card-bad", dataset: { file: e.filename } },
            h("header", {},
              h("h2", {}, h("code", { class: "ie-file" }, e.filename), line ? h("span", { class: "ie-line" }, ` line ${line}`) : null),
              h("span", { class: "muted small" }, e.bundle_name ? `${e.bundle_name} · ` : "", time(e.timestamp))),
            h("pre", { class: "ie-stack", tabindex: 0, "aria-label": `Error text of ${e.filename}` }, e.stack_trace));
        }))
        : h("p", { class: "muted empty" }, "No import errors: every DAG file parsed."),
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

/** Config (`configs`): each section's options, or the API's 403 when it is not exposed. */
export function configPage(main) {
  const box = shell(main, "Config", "config-page");
  api("api/v2/config").then((cfg) => {
    put(box, cfg.sections.map((sec) => h("section", { class: "config-section", id: `config-${sec.name}` },
      h("h2", {}, `[${sec.name}]`),
      h("div", { class: "table-wrap" }, h("table", { class: "kv" }, h("tbody", {}, sec.options.map((o) => h("tr", {},
        h("th", { scope: "row" }, h("code", {}, o.key)),
        h("td", {}, h("code", { class: "clip" }, o.value))))))))));
  }, (e) => {
    if (e instanceof ApiError && e.status === 403) {
      put(box, h("div", { class: "banner banner-error", id: "config-refused", role: "alert" }, e.message),
        h("p", { class: "muted" }, "An administrator can set ", h("code", {}, "[api] expose_config"), " (",
          h("code", {}, "UPDRAFT__API__EXPOSE_CONFIG"), ") to ", h("code", {}, "non-sensitive-only"), " to show it here."));
    } else put(box, errorBox(e));
  });
}

/** Plugins (`plugins`): each plugin file with what it adds, and the files that failed to load. */
export function pluginsPage(main) {
  const box = shell(main, "Plugins", "plugins-page");
  Promise.all([api("api/v2/plugins", { query: { limit: 100 } }), api("api/v2/plugins/importErrors")]).then(([list, errs]) => {
    put(box,
      list.plugins.length ? h("div", { class: "table-wrap" }, h("table", { class: "plugin-list" },
        h("thead", {}, h("tr", {}, ["Name", "Source", "Macros", "External views"].map((x) => h("th", {}, x)))),
        h("tbody", {}, list.plugins.map((p) => h("tr", {},
          h("th", { scope: "row" }, p.name),
          h("td", {}, h("code", {}, p.source ?? "")),
          h("td", {}, (p.macros ?? []).join(", ")),
          h("td", {}, (p.external_views ?? []).map((v) => v.name).join(", ")))))))
        : h("p", { class: "muted empty" }, "No plugins loaded."),
      errs.import_errors.length ? [h("h2", {}, "Plugins that failed to load"),
        h("ul", { class: "import-error-list" }, errs.import_errors.map((e) => h("li", { class: "card card-bad" },
          h("code", {}, e.source), h("pre", { class: "ie-stack" }, e.error))))] : null);
  }, (e) => put(box, errorBox(e)));
}

/** Providers (`providers`): the provider packages, which updraft does not install. */
export function providersPage(main) {
  const box = shell(main, "Providers", "providers-page");
  api("api/v2/providers", { query: { limit: 100 } }).then((list) => {
    put(box, list.providers.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Package", "Version", "Description"].map((x) => h("th", {}, x)))),
      h("tbody", {}, list.providers.map((p) => h("tr", {}, h("td", {}, h("code", {}, p.package_name)), h("td", {}, p.version), h("td", {}, p.description ?? ""))))))
      : h("p", { class: "muted empty" }, "No provider packages are installed: updraft runs its built-in operators (the standard provider's) itself."));
  }, (e) => put(box, errorBox(e)));
}
