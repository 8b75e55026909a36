// Talking to the server. Every URL here is relative and resolved against <base href>,
// which the server sets to the base_url prefix at serve time: the same files work at /
// and under any prefix, and nothing names a host. The login token is kept per prefix
// (two updrafts on one host do not share it) and sent as a Bearer header.

const baseHref = document.querySelector("base")?.href ?? window.UPDRAFT?.base ?? "/";

/** The base URL: `http://host:port/prefix/`, always with a trailing slash. */
export const BASE = new URL(baseHref, location.href);

const TOKEN_KEY = `updraft.token:${BASE.pathname}`;

/** The token, kept in localStorage under a key that names the prefix. */
export const token = {
  get: () => localStorage.getItem(TOKEN_KEY),
  set: (t) => localStorage.setItem(TOKEN_KEY, t),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

/** A URL under the base; `path` has no leading slash. */
export function url(path, query) {
  const u = new URL(path, BASE);
  for (const [k, v] of Object.entries(query ?? {})) {
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one !== undefined && one !== null && one !== "") u.searchParams.append(k, String(one));
    }
  }
  return u;
}

/** A path with each interpolated value percent-encoded as one segment. */
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ""), "");
}

/** An HTTP error with the server's `detail` (a string, a list of field errors, or an object). */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detailText(detail) || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
  /** Field errors as `{field: message}` from a pydantic-style 422 list. */
  fields() {
    const out = {};
    if (Array.isArray(this.detail)) {
      for (const e of this.detail) {
        const loc = (e.loc ?? []).filter((p) => p !== "body" && p !== "query");
        const key = loc.length ? String(loc[0]) : "";
        out[key] = out[key] ? `${out[key]}; ${e.msg}` : e.msg;
      }
    }
    return out;
  }
}

/** One readable line from any of Airflow's error body shapes. */
export function detailText(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => {
      const loc = (e.loc ?? []).filter((p) => p !== "body").join(".");
      return loc ? `${loc}: ${e.msg}` : e.msg;
    }).join("; ");
  }
  if (typeof detail === "object") {
    // Airflow's `{reason, message, ...}` (its 409 for a unique constraint, the execution
    // API's conflicts): the reason says what went wrong, the message where to look, and
    // fields Airflow blanks out as "hidden" say nothing.
    const parts = [detail.reason, detail.message].filter((x) => typeof x === "string" && x);
    for (const [k, v] of Object.entries(detail)) {
      if (k === "reason" || k === "message" || v == null || v === "hidden") continue;
      parts.push(`${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
    }
    if (!parts.length) return JSON.stringify(detail);
    return parts.map((p, i) => (i < parts.length - 1 && !/[.!?:]$/.test(p) ? `${p}.` : p)).join(" ");
  }
  return String(detail);
}

let onUnauthorized = () => {};
/** Sets what happens when the server says the login is missing or no longer valid. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/**
 * Calls the API and returns the parsed JSON (null for an empty body). Throws ApiError on
 * 4xx/5xx; a 401, or a 403 for a bad or expired token, also sends the user to login
 * unless `quiet401` is set.
 */
export async function api(p, { method = "GET", body, query, quiet401 = false } = {}) {
  const headers = { Accept: "application/json" };
  const t = token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url(p, query), init);
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!res.ok) {
    const detail = data && typeof data === "object" && "detail" in data ? data.detail : data;
    const err = new ApiError(res.status, detail);
    const badToken = res.status === 401 || (res.status === 403 && /JWT|Expired/i.test(err.message));
    if (badToken && !quiet401) onUnauthorized();
    throw err;
  }
  return data;
}
