// The login page: username and password to `POST auth/token`, then back to where the
// user was going. When `ui/auth/me` answers without a token (all-admins mode), there is
// nothing to log in to and the page moves on at once.

import { api, token, BASE, ApiError } from "./api.js";
import { h } from "./ui.js";
import { navigate } from "./router.js";

/** Where to go after login: `next` if it stays under the base, else the DAG list. */
function nextTarget(query) {
  const next = query.get("next");
  if (next && next.startsWith(BASE.pathname) && !next.startsWith("//") && !next.includes("://")) {
    const rel = next.slice(BASE.pathname.length);
    if (!rel.startsWith("login")) return rel || "dags";
  }
  return "dags";
}

export function loginPage(main, route, ctx) {
  document.title = "Log in · updraft";
  let alive = true;
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true, autofocus: true });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "btn primary wide" }, "Log in");
  const form = h("form", { class: "login-card", novalidate: true },
    h("div", { class: "login-brand" }, h("img", { src: "favicon.svg", alt: "", width: 40, height: 40 }), h("h1", {}, "Log in to updraft")),
    h("label", { for: "username" }, "Username"), user,
    h("label", { for: "password" }, "Password"), pass,
    error, submit,
    h("p", { class: "muted small" }, "The admin password is printed when ", h("code", {}, "updraft standalone"), " starts, and kept in ",
      h("code", {}, "simple_auth_manager_passwords.json.generated"), " in the home folder."));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    if (!user.value || !pass.value) {
      error.textContent = "Enter a username and a password.";
      error.hidden = false;
      (user.value ? pass : user).focus();
      return;
    }
    submit.disabled = true;
    try {
      const res = await api("auth/token", { method: "POST", body: { username: user.value, password: pass.value }, quiet401: true });
      token.set(res.access_token);
      const who = await ctx.whoAmI();
      ctx.setMe(who);
      navigate(nextTarget(route.query), { replace: true });
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401 ? "Wrong username or password." : err.message;
      error.hidden = false;
      pass.select();
    } finally {
      submit.disabled = false;
    }
  });
  main.append(h("section", { class: "login-page" }, form));
  // Already logged in, or no login needed: move on.
  (async () => {
    const who = token.get() || !ctx.me ? await ctx.whoAmI() : ctx.me;
    if (alive && who) {
      ctx.setMe(who);
      navigate(nextTarget(route.query), { replace: true });
    }
  })();
  return { unmount: () => { alive = false; } };
}
