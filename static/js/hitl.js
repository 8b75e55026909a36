// Human in the loop: the "Required actions" page (the requests tasks wait on, and the
// latest answers), the form that answers one (its options, one or several, and its
// params as fields), used by that page and by the task instance panel, and the count
// the navigation bar shows.

import { api, path } from "./api.js";
import { put, h, badge, time, notify, Poller, errorBox } from "./ui.js";
import { href } from "./router.js";

const ALL = "api/v2/dags/~/dagRuns/~/hitlDetails";

/** The detail route of one task instance. */
function detailPath(ti) {
  return path`api/v2/dags/${ti.dag_id}/dagRuns/${ti.dag_run_id ?? ti.run_id}/taskInstances/${ti.task_id}/${ti.map_index ?? -1}/hitlDetails`;
}

/** How many requests wait for an answer now (the navigation bar's badge). */
export async function waitingCount() {
  const res = await api(ALL, { query: { response_received: false, state: "awaiting_input", limit: 1 }, quiet401: true });
  return res?.total_entries ?? 0;
}

/** One field of a request's params, filled with its value; `read()` gives what was entered. */
function paramField(name, param, id) {
  const schema = param?.schema ?? {};
  const value = param?.value;
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  let input;
  let read;
  if (Array.isArray(schema.enum)) {
    input = h("select", { id }, ...schema.enum.map((v) => h("option", { value: JSON.stringify(v), selected: v === value }, String(v))));
    read = () => JSON.parse(input.value);
  } else if (type === "boolean") {
    input = h("input", { type: "checkbox", id, checked: !!value });
    read = () => input.checked;
  } else if (type === "integer" || type === "number") {
    input = h("input", { type: "number", id, step: type === "integer" ? "1" : "any", value: value ?? "" });
    read = () => {
      if (input.value === "") return null;
      const n = Number(input.value);
      if (Number.isNaN(n)) throw new Error(`${name} must be a number`);
      return n;
    };
  } else if (type === "array" || type === "object" || (value !== null && typeof value === "object")) {
    input = h("textarea", { id, rows: 3, class: "code" }, value == null ? "" : JSON.stringify(value, null, 2));
    read = () => {
      try {
        return input.value.trim() === "" ? null : JSON.parse(input.value);
      } catch {
        throw new Error(`${name} must be JSON`);
      }
    };
  } else {
    input = h("input", { type: "text", id, value: value ?? "" });
    read = () => input.value;
  }
  const row = h("div", { class: "field" },
    h("label", { for: id }, name),
    input,
    param?.description ? h("p", { class: "muted small" }, param.description) : null);
  return { row, read };
}

let formCount = 0;

/**
 * The form that answers `detail` (Airflow's `HITLDetail`): options as radio buttons or,
 * with `multiple`, checkboxes (the defaults chosen), the params as fields. `onDone` runs
 * after the answer is accepted.
 */
export function hitlForm(detail, { me, onDone } = {}) {
  const n = ++formCount;
  const ti = detail.task_instance ?? {};
  const status = h("div", { class: "hitl-status", role: "status" });
  const assigned = (detail.assigned_users ?? []).map((u) => u.id);
  const mayAnswer = me && (me.all_admins || assigned.length === 0 || assigned.includes(me.username))
    && ["user", "op", "admin"].includes(String(me.role ?? "").toLowerCase());
  const defaults = new Set(detail.defaults ?? []);
  const kind = detail.multiple ? "checkbox" : "radio";
  const choices = (detail.options ?? []).map((o, i) => {
    const id = `hitl-${n}-opt-${i}`;
    const input = h("input", { type: kind, name: `hitl-${n}`, id, value: o, checked: defaults.has(o) });
    return { o, input, row: h("label", { class: "hitl-option", for: id }, input, " ", o) };
  });
  // One option without params: a button is the whole form (an approval is two).
  const params = Object.entries(detail.params ?? {}).map(([name, p], i) => ({ name, ...paramField(name, p, `hitl-${n}-param-${i}`) }));
  const submit = h("button", { type: "submit", class: "btn primary small", disabled: !mayAnswer }, "Respond");
  const form = h("form", { class: "hitl-form", "aria-label": `Respond to ${detail.subject}` },
    h("fieldset", { class: "hitl-options" },
      h("legend", {}, detail.multiple ? "Choose one or more" : "Choose one"),
      ...choices.map((c) => c.row)),
    params.length ? h("fieldset", { class: "hitl-params" }, h("legend", {}, "Input"), ...params.map((p) => p.row)) : null,
    h("div", { class: "actions" }, submit,
      mayAnswer ? null : h("span", { class: "muted small" }, assigned.length ? `Only ${assigned.join(", ")} may respond` : "Your role may not respond")),
    status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const chosen = choices.filter((c) => c.input.checked).map((c) => c.o);
    if (!chosen.length) {
      put(status, h("p", { class: "bad-text" }, "Choose an option first."));
      return;
    }
    let input = {};
    try {
      for (const p of params) input[p.name] = p.read();
    } catch (e) {
      put(status, h("p", { class: "bad-text" }, e.message));
      return;
    }
    submit.disabled = true;
    try {
      await api(detailPath(ti), { method: "PATCH", body: { chosen_options: chosen, params_input: input } });
      notify(`Responded ${chosen.join(", ")} to “${detail.subject}”`, "ok");
      put(status, h("p", {}, `Responded: ${chosen.join(", ")}`));
      onDone?.();
    } catch (e) {
      submit.disabled = false;
      put(status, errorBox(e));
    }
  });
  return form;
}

/** A request as a card: what it asks, where it comes from, and its form or its answer. */
function card(detail, { me, onDone }) {
  const ti = detail.task_instance ?? {};
  const runId = ti.dag_run_id ?? ti.run_id;
  const where = h("p", { class: "muted small" },
    h("a", { href: href(["dags", ti.dag_id, "grid"], { run: runId, task: ti.task_id }) }, `${ti.dag_id} · ${ti.task_id}`),
    ti.map_index >= 0 ? ` [${ti.map_index}]` : "", " · run ", runId, " · asked ", time(detail.created_at));
  const answer = detail.response_received
    ? h("p", {}, "Answered ", h("strong", {}, (detail.chosen_options ?? []).join(", ")),
      " by ", detail.responded_by_user?.name ?? "the timeout (defaults)", " ", time(detail.responded_at),
      Object.keys(detail.params_input ?? {}).length ? h("pre", { class: "code small" }, JSON.stringify(detail.params_input, null, 2)) : null)
    : hitlForm(detail, { me, onDone });
  return h("article", { class: "card hitl-card", "data-ti": ti.id ?? "" },
    h("header", {}, h("h2", {}, detail.subject), badge(ti.state)),
    where,
    detail.body ? h("div", { class: "hitl-body" }, detail.body) : null,
    answer);
}

/** The "Required actions" page. */
export function requiredActionsPage(main, _route, { me }) {
  document.title = "Required actions · updraft";
  const waiting = h("div", { class: "hitl-list", id: "hitl-waiting" }, h("p", { class: "muted" }, "Loading…"));
  const answered = h("div", { class: "hitl-list", id: "hitl-answered" });
  main.append(h("section", { class: "page hitl-page" },
    h("header", { class: "page-head" }, h("h1", {}, "Required actions")),
    h("p", { class: "muted" }, "Tasks waiting for a person's decision. Responding lets the task go on."),
    waiting,
    h("h2", {}, "Recently answered"),
    answered));
  let last = "";
  const poller = new Poller(async () => {
    try {
      const [open, done] = await Promise.all([
        api(ALL, { query: { response_received: false, state: "awaiting_input", order_by: "-created_at", limit: 100 } }),
        api(ALL, { query: { response_received: true, order_by: "-responded_at", limit: 20 } }),
      ]);
      const json = JSON.stringify([open, done]);
      const changed = json !== last;
      // A form being filled in is not swept away by a poll that found nothing new.
      if (changed) {
        last = json;
        const onDone = () => poller.now();
        put(waiting, ...(open.hitl_details.length
          ? open.hitl_details.map((d) => card(d, { me, onDone }))
          : [h("p", { class: "empty" }, "Nothing waits for an answer.")]));
        put(answered, ...(done.hitl_details.length
          ? done.hitl_details.map((d) => card(d, { me, onDone }))
          : [h("p", { class: "empty" }, "No answers yet.")]));
        document.dispatchEvent(new CustomEvent("hitl-changed"));
      }
      return { active: true, changed };
    } catch (e) {
      put(waiting, errorBox(e));
      throw e;
    }
  }, { min: 3000, max: 10000, idle: 15000 }).start();
  return { unmount: () => poller.stop() };
}

/**
 * The task instance panel's part: the request of a task that asked one (its form while
 * it waits, its answer after), or nothing. `box` is filled; errors leave it empty.
 */
export async function tiRequest(box, ti, { me, onDone }) {
  try {
    // The run's list, filtered to this instance: empty (not a 404) before the task asks.
    const res = await api(path`api/v2/dags/${ti.dag_id}/dagRuns/${ti.dag_run_id}/hitlDetails`,
      { query: { task_id: ti.task_id, map_index: ti.map_index ?? -1 }, quiet401: true });
    const detail = res?.hitl_details?.[0];
    put(box, detail ? h("div", { class: "rendered hitl-in-panel" }, h("h3", {}, "Required action"), card(detail, { me, onDone })) : null);
  } catch {
    put(box);
  }
}
