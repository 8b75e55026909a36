// A task instance's own page, at Airflow 3's address for it:
// `dags/<dag>/runs/<run>/tasks/<task>`, a mapped instance's `.../mapped/<index>` (or
// `?map_index=`), and the tab after either (`rendered_templates`, `dependencies`,
// `details`, `xcom`; the log when none). It draws the task instance with the DAG page's
// panel (ti.js), so both show the same thing the same way.

import { api, path } from "./api.js";
import { h } from "./ui.js";
import { href } from "./router.js";
import { tiPanel, tabOf } from "./ti.js";

/** What a task instance page's route names. */
function parse(route) {
  const s = route.segments;
  const [, dagId, , runId, , taskId] = s;
  const rest = s.slice(6);
  let mapIndex = null;
  if (rest[0] === "mapped") {
    mapIndex = Number(rest[1]);
    rest.splice(0, 2);
  } else if (route.query.get("map_index") != null && route.query.get("map_index") !== "") {
    mapIndex = Number(route.query.get("map_index"));
  }
  if (!Number.isInteger(mapIndex) || mapIndex < 0) mapIndex = null;
  const t = route.query.get("try");
  return { dagId, runId, taskId, mapIndex, tab: tabOf(rest[0]), tryNumber: t ? Number(t) : null };
}

export function tiPage(main, route, ctx) {
  let at = parse(route);
  let panel = null;
  const holder = h("div", { class: "ti-page-body" });
  const { dagId, runId, taskId } = at;
  document.title = `${taskId} · ${dagId} · updraft`;
  main.append(h("section", { class: "page ti-page" },
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "dags" }, "DAGs"), h("span", { "aria-hidden": "true" }, " / "),
      h("a", { href: href(["dags", dagId, "grid"]) }, dagId), h("span", { "aria-hidden": "true" }, " / "),
      h("a", { href: href(["dags", dagId, "grid"], { run: runId }) }, runId), h("span", { "aria-hidden": "true" }, " / "),
      h("span", {}, taskId)),
    holder));

  // The page's URL says which tab is shown: a click on a tab changes it in place.
  const onTab = (key) => {
    const seg = { rendered: "rendered_templates", deps: "dependencies", details: "details", xcom: "xcom" }[key];
    const segs = ["dags", dagId, "runs", runId, "tasks", taskId, ...(at.mapIndex != null ? ["mapped", String(at.mapIndex)] : []), ...(seg ? [seg] : [])];
    const target = new URL(href(segs), document.baseURI);
    target.search = location.search.replace(/([?&])map_index=[^&]*&?/, "$1").replace(/[?&]$/, "");
    history.replaceState(null, "", target.href);
  };

  async function mount() {
    panel?.destroy();
    // A mapped task's page without an index lists its instances, as its panel does.
    let isMapped = false;
    if (at.mapIndex == null) {
      try {
        const s = await api(path`ui/structure/${dagId}`);
        const walk = (nodes) => nodes.some((n) => (n.id === taskId && n.is_mapped) || walk(n.children ?? []));
        isMapped = walk(s?.nodes ?? []);
      } catch {
        isMapped = false;
      }
    }
    panel = tiPanel({ dagId, runId, taskId, view: "grid", me: ctx.me, mapIndex: at.mapIndex, isMapped, tryNumber: at.tryNumber, page: true, tab: at.tab, onTab });
    holder.replaceChildren(panel.el);
  }
  mount();

  return {
    update(next) {
      const was = at;
      at = parse(next);
      if (at.mapIndex !== was.mapIndex || at.tryNumber !== was.tryNumber) mount();
      else if (at.tab !== was.tab) panel?.show(at.tab);
    },
    unmount() {
      panel?.destroy();
    },
  };
}
