// Plugins' external views (GET api/v2/plugins), shown where Airflow 3 shows them: the
// main navigation (`nav`), a DAG's page (`dag`), a run's panel (`dag_run`) and a task
// instance's panel (`task`, `task_instance`). Each opens its href, its {dag_id},
// {run_id} and {task_id} filled in, in a new tab.

import { api } from "./api.js";
import { h } from "./ui.js";

let views = null;

/** Every external view of every plugin, fetched once per page load. */
export function externalViews() {
  views ??= api("api/v2/plugins", { query: { limit: 1000 } })
    .then((body) => body.plugins.flatMap((p) => p.external_views ?? []))
    .catch(() => []);
  return views;
}

/** `href` with its placeholders filled from `ids`. */
export function fillHref(href, ids) {
  return href.replace(/\{(dag_id|run_id|task_id)\}/g, (_, k) => encodeURIComponent(ids[k] ?? ""));
}

/** A view with a `url_route` opens inside the UI (an iframe at `plugin/<url_route>`), as
 * in Airflow 3; one without, in a new tab. */
function link(view, ids, cls) {
  const inside = (view.destination ?? "nav") === "nav" && view.url_route;
  return h("a", {
    class: cls,
    href: inside ? `plugin/${encodeURIComponent(view.url_route)}` : fillHref(view.href, ids),
    target: inside ? null : "_blank",
    rel: inside ? null : "noopener",
    title: view.category ? `${view.category}: ${view.name}` : view.name,
    dataset: { plugin: "external-view" },
  }, view.icon ? h("img", { src: view.icon, alt: "", width: 14, height: 14, class: "view-icon" }) : null, view.name);
}

/** A box that fills with the views of `destinations` once they are known. */
export function viewLinks(destinations, ids) {
  const box = h("span", { class: "plugin-views" });
  externalViews().then((vs) => {
    for (const v of vs.filter((v) => destinations.includes(v.destination ?? "nav"))) {
      box.append(link(v, ids, "btn small plugin-view"));
    }
  });
  return box;
}

let navDone = false;
/** Adds the `nav` views to the main navigation, once. */
export function addNavViews(nav) {
  if (navDone || !nav) return;
  navDone = true;
  externalViews().then((vs) => {
    for (const v of vs.filter((v) => (v.destination ?? "nav") === "nav")) nav.append(link(v, {}, "plugin-view"));
  });
}

/** The page of a `nav` view with a `url_route`: its href in an iframe. */
export function pluginPage(main, route) {
  const name = decodeURIComponent(route.segments[1] ?? "");
  const box = h("div", { class: "plugin-frame" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("section", { class: "page" }, box));
  externalViews().then((vs) => {
    const view = vs.find((v) => (v.destination ?? "nav") === "nav" && v.url_route === name);
    box.replaceChildren();
    if (!view) {
      document.title = "Not found · updraft";
      box.append(h("p", { class: "muted" }, `No plugin view is at ${name}.`));
      return;
    }
    document.title = `${view.name} · updraft`;
    box.append(h("iframe", { src: view.href, title: view.name, class: "plugin-iframe" }));
  });
}
