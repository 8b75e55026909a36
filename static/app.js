// updraft's UI entry point: the page shell, who is logged in, and which page a path
// shows. Every URL is relative to <base href> (see js/api.js), so the same files work
// at / and under any base_url prefix without a rebuild.

import { api, token, url, setUnauthorizedHandler } from "./js/api.js";
import { put, h, zone, zones, setZone, zoneChoice, browserZone, setDagZone, currentDagZone } from "./js/ui.js";
import * as router from "./js/router.js";
import { addNavViews } from "./js/plugins.js";
import { initTheme } from "./js/theme.js";
import { initKeys } from "./js/keys.js";
import { initResponsive } from "./js/responsive.js";

const main = document.getElementById("main");
const userBox = document.getElementById("user");

/** Who is logged in: `{username, role, all_admins}`, or null. */
let me = null;
/** The page on screen: `{key, update(route)?, unmount()}`. */
let page = null;

// Each page's module is loaded when first shown, so the first load fetches only what
// the page on screen needs.
const ROUTES = [
  { match: (s) => s.length === 1 && s[0] === "login", key: () => "login", load: () => import("./js/login.js").then((m) => m.loginPage), public: true },
  { match: (s) => s.length === 0 || (s.length === 1 && s[0] === "dags"), key: () => "dags", load: () => import("./js/dags.js").then((m) => m.dagsPage) },
  { match: (s) => s[0] === "dags" && (s.length === 2 || s.length === 3), key: (s) => `dag:${s[1]}`, load: () => import("./js/dag.js").then((m) => m.dagPage) },
  { match: (s) => s.length === 1 && s[0] === "assets", key: () => "assets", load: () => import("./js/assets.js").then((m) => m.assetsPage) },
  { match: (s) => s.length === 2 && s[0] === "assets", key: (s) => `asset:${s[1]}`, load: () => import("./js/assets.js").then((m) => m.assetPage) },
  { match: (s) => s.length === 2 && s[0] === "admin", key: (s) => `admin:${s[1]}`, load: () => import("./js/admin.js").then((m) => m.adminPage) },
  // Airflow's link to one task's request (`HITLOperator.generate_link_to_ui`): its panel.
  { match: (s) => s.length === 7 && s[0] === "dags" && s[2] === "runs" && s[4] === "tasks" && s[6] === "required_actions", key: () => "required_action_link", load: async () => (_main, route) => {
    const [, dagId, , runId, , taskId] = route.segments;
    const mapIndex = route.query.get("map_index");
    router.navigate(router.href(["dags", dagId, "grid"], { run: runId, task: taskId, ...(mapIndex && mapIndex !== "-1" ? { map_index: mapIndex } : {}) }), { replace: true });
  } },
  // A task instance's own page, as Airflow 3's: `dags/<dag>/runs/<run>/tasks/<task>`, a
  // mapped one's `.../mapped/<index>` or `?map_index=`, and a tab after either.
  { match: (s) => s[0] === "dags" && s[2] === "runs" && s[4] === "tasks" && (s.length === 6 || s.length === 7 || (s[6] === "mapped" && (s.length === 8 || s.length === 9))),
    key: (s) => `ti:${s.slice(1, 6).join("/")}:${s[6] === "mapped" ? s[7] : ""}`, load: () => import("./js/tipage.js").then((m) => m.tiPage) },
  { match: (s) => s.length === 1 && s[0] === "required_actions", key: () => "required_actions", load: () => import("./js/hitl.js").then((m) => m.requiredActionsPage) },
  { match: (s) => s.length === 2 && s[0] === "plugin", key: (s) => `plugin:${s[1]}`, load: () => import("./js/plugins.js").then((m) => m.pluginPage) },
  { match: (s) => s.length === 1 && s[0] === "about", key: () => "about", load: () => import("./js/about.js").then((m) => m.aboutPage) },
  // Browse and Admin pages, at Airflow 3's paths.
  { match: (s) => s.length === 1 && s[0] === "events", key: () => "events", load: () => import("./js/events.js").then((m) => m.auditLogPage) },
  { match: (s) => s.length === 1 && s[0] === "xcoms", key: () => "xcoms", load: () => import("./js/xcoms.js").then((m) => m.xcomsPage) },
  { match: (s) => s.length === 1 && s[0] === "import_errors", key: () => "import_errors", load: () => import("./js/browse.js").then((m) => m.importErrorsPage) },
  { match: (s) => s.length === 1 && s[0] === "configs", key: () => "configs", load: () => import("./js/browse.js").then((m) => m.configPage) },
  { match: (s) => s.length === 1 && s[0] === "plugins", key: () => "plugins", load: () => import("./js/browse.js").then((m) => m.pluginsPage) },
  { match: (s) => s.length === 1 && s[0] === "providers", key: () => "providers", load: () => import("./js/browse.js").then((m) => m.providersPage) },
];

// The navigation's Browse and Admin menus close once one of their pages is chosen, or
// on a click elsewhere. A menu's list is fixed (the scrolling bar would clip it), so it
// is placed under its summary when it opens, kept inside the window.
document.addEventListener("click", (e) => {
  for (const d of document.querySelectorAll("nav.main-nav details.nav-menu[open]")) {
    if (!d.contains(e.target) || e.target.closest("a")) d.open = false;
  }
});
document.addEventListener("toggle", (e) => {
  const d = e.target;
  if (!(d instanceof HTMLDetailsElement) || !d.matches("nav.main-nav details.nav-menu") || !d.open) return;
  const list = d.querySelector(".nav-menu-list");
  const r = d.querySelector("summary").getBoundingClientRect();
  list.style.top = `${Math.round(r.bottom + 4)}px`;
  list.style.left = `${Math.round(Math.max(8, Math.min(r.left, window.innerWidth - list.offsetWidth - 8)))}px`;
}, true);
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape") return;
  for (const d of document.querySelectorAll("nav.main-nav details.nav-menu[open]")) {
    d.open = false;
    d.querySelector("summary").focus();
  }
});

function goLogin() {
  const { path } = router.current();
  if (path === "login") return;
  token.clear();
  me = null;
  const next = location.pathname + location.search;
  router.navigate(`login?next=${encodeURIComponent(next)}`, { replace: true });
}
setUnauthorizedHandler(goLogin);

/** Asks the server who we are; without a token this works only in all-admins mode. */
async function whoAmI() {
  try {
    me = await api("ui/auth/me", { quiet401: true });
  } catch {
    me = null;
    token.clear();
  }
  return me;
}

function showUser() {
  put(userBox);
  if (!me) return;
  put(userBox,
    h("span", { class: "who", title: `Logged in as ${me.username}` },
      h("span", { class: "avatar", "aria-hidden": "true" }, me.username.slice(0, 1).toUpperCase()),
      h("span", { class: "name" }, me.username),
      h("span", { class: "role" }, me.role)),
    zonePicker(),
    me.all_admins ? null : h("button", { type: "button", class: "btn small", id: "logout", onclick: logout }, "Log out"),
  );
}

/**
 * The time zone times are shown in: UTC, the browser's, the DAG's own (`timezone`, on a
 * DAG's pages) first, then every zone; a change shows the page again in it.
 */
function zonePicker() {
  const choice = zoneChoice();
  const dz = currentDagZone();
  const quick = [["UTC", "UTC"], [browserZone(), `Browser: ${browserZone()}`], ["dag", dz ? `DAG: ${dz}` : "The DAG's own zone"]];
  const option = ([value, text]) => h("option", { value, selected: value === choice }, text);
  const select = h("select", { id: "timezone", class: "zone", title: `Times are shown in ${zone()}`, "aria-label": "Time zone" },
    h("optgroup", { label: "Quick" }, ...quick.filter(([v], i) => i !== 1 || v !== "UTC").map(option)),
    h("optgroup", { label: "Every zone" }, ...zones().filter((z) => z !== "UTC" && z !== browserZone()).map((z) => option([z, z]))));
  select.addEventListener("change", () => {
    setZone(select.value);
    rerender();
  });
  return select;
}

/** Shows the page again, mounted afresh (a new key unmounts this one), in the new zone. */
function rerender() {
  if (page) page.key = null;
  render();
}

// The DAG on screen's own zone, read once per DAG from its details, for the zone picker.
const dagZones = new Map();
async function noteDagZone(route) {
  const dagId = route.segments[0] === "dags" && route.segments.length > 1 ? route.segments[1] : null;
  if (!dagId) {
    if (setDagZone(null)) rerender();
    return;
  }
  if (!dagZones.has(dagId)) {
    dagZones.set(dagId, api(`api/v2/dags/${encodeURIComponent(dagId)}/details`).then((d) => d?.timezone ?? null, () => null));
  }
  const name = await dagZones.get(dagId);
  // Still on that DAG: the zone changes what is shown only when the user chose the DAG's.
  if (router.current().segments[1] !== dagId) return;
  const moved = setDagZone(name);
  showUser();
  if (moved) rerender();
}

/** Forgets the token, then lets the server clear its cookie and send us to login. */
function logout() {
  token.clear();
  me = null;
  location.assign(url("api/v2/auth/logout"));
}

/** The navigation bar's count of requests waiting for a person, polled while logged in. */
const hitlBadge = document.getElementById("hitl-badge");
let badgeTimer = null;
async function refreshBadge() {
  clearTimeout(badgeTimer);
  if (!me || !hitlBadge) return;
  try {
    const { waitingCount } = await import("./js/hitl.js");
    const n = await waitingCount();
    hitlBadge.textContent = n ? String(n) : "";
    hitlBadge.hidden = !n;
    hitlBadge.title = `${n} waiting for an answer`;
  } catch {
    // The badge is a hint: a failed count leaves the last one.
  }
  if (!document.hidden) badgeTimer = setTimeout(refreshBadge, 10000);
}
document.addEventListener("hitl-changed", refreshBadge);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshBadge();
});

function markNav(path) {
  for (const a of document.querySelectorAll("nav.main-nav a:not(.plugin-view)")) {
    const target = a.getAttribute("href");
    const here = target === "dags" ? path === "" || path.startsWith("dags") : path.startsWith(target);
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  for (const d of document.querySelectorAll("nav.main-nav details.nav-menu")) {
    d.classList.toggle("current", Boolean(d.querySelector("a[aria-current=page]")));
  }
}

let rendering = Promise.resolve();
function render() {
  rendering = rendering.then(renderNow, renderNow);
}

async function renderNow() {
  const route = router.current();
  const r = ROUTES.find((x) => x.match(route.segments));
  if (!r) {
    swap("notfound", () => notFound(route.path));
    return;
  }
  if (!r.public && !me && !(await whoAmI())) {
    goLogin();
    return;
  }
  document.body.classList.toggle("logged-out", !me);
  showUser();
  if (me) addNavViews(document.querySelector("nav.main-nav"));
  markNav(route.path);
  refreshBadge();
  if (me) noteDagZone(route);
  const key = r.key(route.segments);
  if (page && page.key === key && page.update) {
    page.update(route);
    return;
  }
  const mount = await r.load();
  swap(key, () => mount(main, route, { me, setMe: (m) => { me = m; showUser(); }, whoAmI }));
}

function swap(key, mount) {
  page?.unmount?.();
  put(main);
  window.scrollTo(0, 0);
  page = { key, ...(mount() ?? {}) };
}

function notFound(path) {
  document.title = "Not found · updraft";
  main.append(h("section", { class: "empty-page" },
    h("h1", {}, "Page not found"),
    h("p", { class: "muted" }, `Nothing lives at /${path}.`),
    h("a", { href: "dags", class: "btn primary" }, "Go to the DAGs")));
}

// The theme picker, the phone layout's helpers and the keyboard shortcuts serve every page.
initTheme();
initResponsive();
initKeys();
router.start(render);
