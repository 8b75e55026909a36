// Client-side routing with the History API. Paths are kept relative to the base, so a
// route like `dags/x/grid` lives at `<prefix>/dags/x/grid`; the server answers every
// such deep link with index.html. A route's last segment never holds a dot (the server
// treats `name.ext` as a file), which is why DAG views end in a view name.

import { BASE } from "./api.js";

let listener = () => {};

/** The current location as `{path, segments, query}`, path relative to the base. */
export function current() {
  let rel = location.pathname.startsWith(BASE.pathname) ? location.pathname.slice(BASE.pathname.length) : "";
  rel = rel.replace(/\/+$/, "");
  const segments = rel ? rel.split("/").map((x) => {
    try {
      return decodeURIComponent(x);
    } catch {
      return x;
    }
  }) : [];
  return { path: rel, segments, query: readQuery(location.search) };
}

// The UI's own query strings use one codec both ways: values are written with
// encodeURIComponent (a space is %20, a `+` is %2B) and read with decodeURIComponent,
// so a raw `+` means `+`. Run ids never hold a space but often a `+` (`+00:00`), and a
// link pasted or passed through `?next=` with the `+` raw must still name that run;
// URLSearchParams would read it as a space.

/** A query string (`?a=1&b=2` or without `?`) as URLSearchParams of the decoded pairs. */
export function readQuery(search) {
  const q = new URLSearchParams();
  for (const pair of search.replace(/^\?/, "").split("&")) {
    if (!pair) continue;
    const i = pair.indexOf("=");
    const [k, v] = i < 0 ? [pair, ""] : [pair.slice(0, i), pair.slice(i + 1)];
    q.append(decodeOne(k), decodeOne(v));
  }
  return q;
}

function decodeOne(x) {
  try {
    return decodeURIComponent(x);
  } catch {
    return x;
  }
}

/** Pairs (URLSearchParams or `[k, v]` entries) as a query string without `?`. */
export function writeQuery(pairs) {
  return [...pairs].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
}

/** Goes to `to` (relative to the base, may carry a query); renders without a reload. */
export function navigate(to, { replace = false } = {}) {
  const u = new URL(to, BASE);
  if (u.href === location.href) return;
  history[replace ? "replaceState" : "pushState"](null, "", u.href);
  listener();
}

/** Changes the query of the current URL in place (filters), without a new history entry. */
export function setQuery(params, { push = false } = {}) {
  const u = new URL(location.href);
  const q = readQuery(u.search);
  for (const [k, v] of Object.entries(params)) {
    q.delete(k);
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one !== undefined && one !== null && one !== "" && one !== false) q.append(k, String(one));
    }
  }
  u.search = writeQuery(q);
  if (u.href === location.href) return;
  history[push ? "pushState" : "replaceState"](null, "", u.href);
  if (push) listener();
}

/** A link target relative to the base for `segments` and `query`. */
export function href(segments, query) {
  const p = segments.map((x) => encodeURIComponent(x)).join("/");
  const qs = writeQuery(Object.entries(query ?? {})
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [k, String(v)]));
  return qs ? `${p}?${qs}` : p;
}

/** Starts routing: `render` runs on load, on navigation and on back/forward. */
export function start(render) {
  listener = render;
  window.addEventListener("popstate", render);
  document.addEventListener("click", (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest("a[href]");
    if (!a || a.target || a.hasAttribute("download") || a.dataset.native !== undefined) return;
    const raw = a.getAttribute("href") ?? "";
    if (raw.startsWith("#")) {
      // With <base href>, "#x" would load the base URL: move focus instead.
      e.preventDefault();
      document.getElementById(raw.slice(1))?.focus();
      return;
    }
    const u = new URL(a.href instanceof SVGAnimatedString ? a.href.baseVal : a.href, BASE);
    if (u.origin !== location.origin || !u.pathname.startsWith(BASE.pathname)) return;
    e.preventDefault();
    navigate(u.href);
  });
  render();
}
