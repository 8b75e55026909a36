// The trigger form: one field per DAG param (from its JSON schema and default), the raw
// `conf` as JSON kept in step with the fields, an optional logical date, run id and note.
// For a DAG with a repeating schedule it also offers a backfill: a date range and its
// options, with the dry run's logical dates listed before it starts.
// Errors show next to the field they belong to, from our own checks and from the
// server's 400/409/422 answers.

import { api, path, ApiError } from "./api.js";
import { h, put, time, modal, notify, zone, fromWallClock } from "./ui.js";

/** Params in either shape: Airflow's dumped `{value, schema, description}` or plain values. */
function paramSpecs(params) {
  const entries = Object.entries(params ?? {});
  const dumped = entries.length > 0 && entries.every(([, v]) => v && typeof v === "object" && !Array.isArray(v) && "value" in v && ("schema" in v || "description" in v));
  return entries.map(([name, v]) => dumped
    ? { name, value: v.value, schema: v.schema ?? {}, description: v.description ?? v.schema?.description ?? null }
    : { name, value: v, schema: {}, description: null });
}

/** The kind of input a param gets: integer, number, boolean, string, json, or enum. */
function kindOf(spec) {
  const sch = spec.schema ?? {};
  if (Array.isArray(sch.enum) && sch.enum.length) return "enum";
  const types = (Array.isArray(sch.type) ? sch.type : [sch.type]).filter((t) => t && t !== "null");
  const t = types[0] ?? (spec.value === null || spec.value === undefined ? "string"
    : typeof spec.value === "number" ? (Number.isInteger(spec.value) ? "integer" : "number")
      : typeof spec.value === "boolean" ? "boolean" : typeof spec.value === "object" ? "json" : "string");
  return { integer: "integer", number: "number", boolean: "boolean", string: "string", object: "json", array: "json", json: "json" }[t] ?? "string";
}

const nullable = (spec) => spec.value === null || [].concat(spec.schema?.type ?? []).includes("null");

/** Reads and checks one field: `{value}` or `{error}`. */
function readField(spec, kind, input) {
  const sch = spec.schema ?? {};
  const raw = kind === "boolean" ? input.checked : input.value;
  let value;
  if (kind !== "boolean" && raw === "") {
    if (nullable(spec)) return { value: null };
    if (kind === "string" && !sch.minLength) return { value: "" };
    return { error: "A value is required." };
  }
  switch (kind) {
    case "integer":
      if (!/^-?\d+$/.test(raw.trim())) return { error: "Enter a whole number." };
      value = Number(raw);
      break;
    case "number":
      value = Number(raw);
      if (raw.trim() === "" || Number.isNaN(value)) return { error: "Enter a number." };
      break;
    case "boolean":
      value = raw;
      break;
    case "json":
      try {
        value = JSON.parse(raw);
      } catch (e) {
        return { error: `Not valid JSON: ${e.message}` };
      }
      break;
    case "enum":
      value = sch.enum.find((x) => String(x) === raw) ?? raw;
      break;
    default:
      value = raw;
  }
  if (typeof value === "number") {
    if (sch.minimum !== undefined && value < sch.minimum) return { error: `Must be at least ${sch.minimum}.` };
    if (sch.maximum !== undefined && value > sch.maximum) return { error: `Must be at most ${sch.maximum}.` };
  }
  if (typeof value === "string") {
    if (sch.minLength !== undefined && value.length < sch.minLength) return { error: `At least ${sch.minLength} characters.` };
    if (sch.maxLength !== undefined && value.length > sch.maxLength) return { error: `At most ${sch.maxLength} characters.` };
    if (sch.pattern && !new RegExp(sch.pattern).test(value)) return { error: `Must match ${sch.pattern}.` };
  }
  return { value };
}

function writeField(kind, input, value) {
  if (kind === "boolean") input.checked = Boolean(value);
  else if (kind === "json") input.value = JSON.stringify(value ?? null, null, 2);
  else input.value = value === null || value === undefined ? "" : String(value);
}

/**
 * Opens the trigger form for a DAG. Resolves with the new run (DAGRunResponse),
 * `{backfill}` (BackfillResponse) when a backfill was created, or null.
 * `dag` is the DAG (list item or details); its params are read from details.
 */
export async function openTrigger(dagId) {
  const details = await api(path`api/v2/dags/${dagId}/details`);
  const specs = paramSpecs(details.params);
  const fields = [];
  const errors = new Map();
  const errorEl = (id) => {
    const el = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
    errors.set(id, el);
    return el;
  };
  const showError = (id, msg) => {
    const el = errors.get(id);
    const input = document.getElementById(id);
    if (!el) return false;
    el.textContent = msg ?? "";
    el.hidden = !msg;
    if (input) {
      if (msg) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
    return true;
  };

  const conf = h("textarea", { id: "trigger-conf", class: "code", rows: 6, spellcheck: "false", "aria-describedby": "trigger-conf-error" });
  /** The conf text as an object: `{value}` or `{error}`; an empty box is `{}`. */
  const readConf = () => {
    let obj;
    try {
      obj = JSON.parse(conf.value || "{}");
    } catch (e) {
      return { error: `Not valid JSON: ${e.message}` };
    }
    if (!obj || typeof obj !== "object" || Array.isArray(obj)) return { error: "The configuration must be a JSON object." };
    return { value: obj };
  };
  // Fields to conf. Conf text the user typed that is not a JSON object is never replaced:
  // it keeps its error, and the form refuses to trigger until it is fixed.
  const syncConf = () => {
    const obj = {};
    for (const f of fields) {
      const r = readField(f.spec, f.kind, f.input);
      showError(f.id, r.error);
      obj[f.spec.name] = r.error ? f.last : r.value;
      if (!r.error) f.last = r.value;
    }
    const extra = readConf();
    showError("trigger-conf", extra.error);
    if (extra.error) return false;
    conf.value = JSON.stringify({ ...extra.value, ...obj }, null, 2);
    return true;
  };
  conf.addEventListener("input", () => {
    const r = readConf();
    showError("trigger-conf", r.error);
    if (r.error) return;
    for (const f of fields) if (f.spec.name in r.value) {
      writeField(f.kind, f.input, r.value[f.spec.name]);
      f.last = r.value[f.spec.name];
      showError(f.id, readField(f.spec, f.kind, f.input).error);
    }
  });

  const paramRows = specs.map((spec, i) => {
    const id = `param-${i}`;
    const kind = kindOf(spec);
    let input;
    if (kind === "boolean") input = h("input", { id, type: "checkbox" });
    else if (kind === "enum") input = h("select", { id }, spec.schema.enum.map((x) => h("option", { value: String(x) }, String(x))));
    else if (kind === "json") input = h("textarea", { id, class: "code", rows: 3, spellcheck: "false" });
    else input = h("input", { id, type: "text", inputmode: kind === "integer" ? "numeric" : kind === "number" ? "decimal" : null });
    input.name = spec.name;
    input.setAttribute("aria-describedby", `${id}-error ${id}-help`);
    writeField(kind, input, spec.value);
    const f = { spec, kind, input, id, last: spec.value };
    fields.push(f);
    input.addEventListener(kind === "boolean" || kind === "enum" ? "change" : "input", syncConf);
    return h("div", { class: `field ${kind === "boolean" ? "check" : ""}` },
      h("label", { for: id }, spec.name, h("span", { class: "muted type" }, kind === "json" ? "JSON" : kind)),
      input,
      spec.description ? h("p", { class: "help", id: `${id}-help` }, spec.description) : null,
      errorEl(id));
  });
  conf.value = JSON.stringify(Object.fromEntries(specs.map((s) => [s.name, s.value])), null, 2);

  const date = h("input", { id: "trigger-date", type: "datetime-local", step: 1, "aria-describedby": "trigger-date-error trigger-date-help" });
  const runId = h("input", { id: "trigger-run-id", placeholder: "manual__<time> when empty", "aria-describedby": "trigger-run-id-error" });
  const note = h("input", { id: "trigger-note", placeholder: "Optional" });
  const unpause = details.is_paused ? h("input", { id: "trigger-unpause", type: "checkbox", checked: true }) : null;

  // A backfill is offered for DAGs whose schedule repeats, as Airflow's dialog does.
  const periodic = Boolean(details.timetable_summary) && details.timetable_summary !== "@once";
  const bf = periodic ? backfillFields(dagId, errorEl, showError, readConf) : null;
  const singleOnly = h("div", { class: "single-only" },
    h("div", { class: "field" },
      h("label", { for: "trigger-date" }, "Logical date ", h("span", { class: "muted" }, `(${zone()}; empty for none)`)),
      date, errorEl("trigger-date")),
    h("div", { class: "field" }, h("label", { for: "trigger-run-id" }, "Run ID"), runId, errorEl("trigger-run-id")),
    h("div", { class: "field" }, h("label", { for: "trigger-note" }, "Note"), note));
  const isBackfill = () => Boolean(bf?.chosen());
  bf?.onMode((on) => {
    singleOnly.hidden = on;
    const submit = content.closest("form")?.querySelector("button[type=submit]");
    if (submit) submit.textContent = on ? "Run backfill" : "Trigger";
  });

  const content = h("div", { class: "trigger-form" },
    details.description ? h("p", { class: "muted" }, details.description) : null,
    bf ? bf.choice : null,
    bf ? bf.section : null,
    specs.length ? h("fieldset", {}, h("legend", {}, "Parameters"), paramRows) : h("p", { class: "muted" }, "This DAG has no params."),
    h("details", { class: "advanced", open: specs.length === 0 },
      h("summary", {}, "Configuration JSON and run options"),
      h("div", { class: "field" }, h("label", { for: "trigger-conf" }, "Configuration (conf)"), conf, errorEl("trigger-conf")),
      singleOnly),
    unpause ? h("div", { class: "field check warn-box" }, unpause,
      h("label", { for: "trigger-unpause" }, "This DAG is paused: unpause it so the run starts")) : null);

  return modal({
    title: `Trigger ${details.dag_display_name ?? dagId}`,
    content,
    submitLabel: "Trigger",
    wide: true,
    onSubmit: async () => {
      let bad = !syncConf();
      for (const f of fields) {
        const r = readField(f.spec, f.kind, f.input);
        if (r.error) {
          showError(f.id, r.error);
          bad = true;
        }
      }
      const confObj = readConf().value;
      if (!confObj) {
        content.querySelector("details.advanced").open = true;
        bad = true;
      }
      let logical = null;
      if (date.value) {
        const d = fromWallClock(date.value);
        if (!d) {
          showError("trigger-date", "Not a valid date and time.");
          bad = true;
        } else logical = d.toISOString();
      }
      if (isBackfill()) {
        const b = bf.body(confObj);
        if (!b) bad = true;
        if (bad) {
          content.querySelector("[aria-invalid=true]")?.focus();
          throw new Error("Fix the fields marked in red.");
        }
        try {
          if (unpause?.checked) await api(path`api/v2/dags/${dagId}`, { method: "PATCH", body: { is_paused: false } });
          const created = await api("api/v2/backfills", { method: "POST", body: b });
          notify(`Backfill ${created.id} of ${dagId} created`, "success");
          return { backfill: created };
        } catch (err) {
          throw placeServerError(err, { showError, fields, content });
        }
      }
      if (bad) {
        content.querySelector("[aria-invalid=true]")?.focus();
        // Hand-typed conf that does not parse is never replaced or sent: its error is the form's.
        const confError = readConf().error;
        throw new Error(`Fix the fields marked in red.${confError ? ` Configuration (conf): ${confError}` : ""}`);
      }
      const body = { logical_date: logical, conf: confObj };
      if (runId.value.trim()) body.dag_run_id = runId.value.trim();
      if (note.value.trim()) body.note = note.value.trim();
      try {
        if (unpause?.checked) await api(path`api/v2/dags/${dagId}`, { method: "PATCH", body: { is_paused: false } });
        const run = await api(path`api/v2/dags/${dagId}/dagRuns`, { method: "POST", body });
        notify(`Triggered ${run.dag_run_id}`, "success");
        return run;
      } catch (err) {
        throw await explainConflict(placeServerError(err, { showError, fields, content }), dagId, body.dag_run_id, showError);
      }
    },
  });
}

/**
 * A 409 on a trigger is the API's unique-constraint answer, whose words (kept, as the
 * API sent them, in the form's error) name no field: when the run id asked for is
 * taken, say so beside it, with those words.
 */
async function explainConflict(err, dagId, runId, showError) {
  if (!(err instanceof ApiError) || err.status !== 409 || !runId) return err;
  try {
    await api(path`api/v2/dags/${dagId}/dagRuns/${runId}`);
  } catch {
    return err;
  }
  showError("trigger-run-id", `A run with ID ${runId} already exists for this DAG. The API said: ${err.message}`);
  return err;
}

/** Puts a server error next to its field when it names one; returns the error for the form. */
function placeServerError(err, { showError, fields, content }) {
  if (!(err instanceof ApiError)) return err;
  const map = {
    conf: "trigger-conf", logical_date: "trigger-date", dag_run_id: "trigger-run-id",
    from_date: "backfill-from", to_date: "backfill-to", max_active_runs: "backfill-max", dag_run_conf: "trigger-conf",
  };
  let placed = false;
  for (const [name, msg] of Object.entries(err.fields())) {
    if (map[name]) placed = showError(map[name], msg) || placed;
  }
  if (err.status === 409) placed = showError("trigger-run-id", err.message) || placed;
  if (typeof err.detail === "string") {
    for (const f of fields) {
      if (new RegExp(`\\b${f.spec.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\b`).test(err.detail)) {
        placed = showError(f.id, err.detail) || placed;
      }
    }
  }
  if (placed) content.querySelector("details.advanced").open ||= !!content.querySelector("details.advanced [aria-invalid=true]");
  return err;
}

/** Airflow's words for `reprocess_behavior` in its backfill dialog. */
const REPROCESS = [["none", "Missing runs"], ["failed", "Missing and errored runs"], ["completed", "All runs"]];
/** Logical dates the dry run lists before the rest are counted. */
const PREVIEW_DATES = 50;

/**
 * The backfill half of the trigger dialog: a "Single run / Backfill" choice, the range
 * and options, and the dry run's list of logical dates, refreshed as they change.
 */
function backfillFields(dagId, errorEl, showError, readConf) {
  const single = h("input", { type: "radio", name: "trigger-mode", id: "mode-single", value: "single", checked: true });
  const backfill = h("input", { type: "radio", name: "trigger-mode", id: "mode-backfill", value: "backfill" });
  const choice = h("fieldset", { class: "mode-choice" }, h("legend", {}, "Run"),
    h("label", { for: "mode-single" }, single, " Single run"),
    h("label", { for: "mode-backfill" }, backfill, " Backfill"));
  const from = h("input", { id: "backfill-from", type: "datetime-local", step: 1, "aria-describedby": "backfill-from-error" });
  const to = h("input", { id: "backfill-to", type: "datetime-local", step: 1, "aria-describedby": "backfill-to-error" });
  const reprocess = h("select", { id: "backfill-reprocess" }, REPROCESS.map(([v, label]) => h("option", { value: v }, label)));
  const max = h("input", { id: "backfill-max", type: "number", min: 1, step: 1, value: "10", inputmode: "numeric", "aria-describedby": "backfill-max-error" });
  const backwards = h("input", { id: "backfill-backwards", type: "checkbox" });
  const preview = h("div", { id: "backfill-preview", class: "backfill-preview", "aria-live": "polite" },
    h("p", { class: "muted" }, "Choose the range to see the runs it makes."));
  const section = h("fieldset", { class: "backfill-fields", hidden: true }, h("legend", {}, "Backfill"),
    h("div", { class: "field-row" },
      h("div", { class: "field" }, h("label", { for: "backfill-from" }, "From ", h("span", { class: "muted" }, `(${zone()})`)), from, errorEl("backfill-from")),
      h("div", { class: "field" }, h("label", { for: "backfill-to" }, "To ", h("span", { class: "muted" }, "(inclusive)")), to, errorEl("backfill-to"))),
    h("div", { class: "field" }, h("label", { for: "backfill-reprocess" }, "Reprocess behaviour"), reprocess),
    h("div", { class: "field-row" },
      h("div", { class: "field" }, h("label", { for: "backfill-max" }, "Max active runs"), max, errorEl("backfill-max")),
      h("div", { class: "field check" }, backwards, h("label", { for: "backfill-backwards" }, "Run backwards (newest first)"))),
    preview);

  const listeners = [];
  const chosen = () => backfill.checked;
  for (const r of [single, backfill]) {
    r.addEventListener("change", () => {
      section.hidden = !chosen();
      for (const f of listeners) f(chosen());
      if (chosen()) refresh();
    });
  }
  const iso = (input, id) => {
    if (!input.value) {
      showError(id, "Required.");
      return null;
    }
    const d = fromWallClock(input.value);
    if (!d) {
      showError(id, "Not a valid date and time.");
      return null;
    }
    showError(id, null);
    return d.toISOString();
  };
  /** The request body, or null with the bad fields marked. */
  const body = (conf) => {
    const f = iso(from, "backfill-from");
    const t = iso(to, "backfill-to");
    const n = Number(max.value);
    const nOk = Number.isInteger(n) && n >= 1;
    showError("backfill-max", nOk ? null : "A whole number, 1 or more.");
    if (!f || !t || !nOk) return null;
    return {
      dag_id: dagId, from_date: f, to_date: t, run_backwards: backwards.checked,
      reprocess_behavior: reprocess.value, max_active_runs: n, dag_run_conf: conf ?? {},
    };
  };

  let seq = 0;
  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    const mine = ++seq;
    if (!from.value || !to.value) {
      put(preview, h("p", { class: "muted" }, "Choose the range to see the runs it makes."));
      return;
    }
    const b = body(readConf().value);
    if (!b) return;
    try {
      const dry = await api("api/v2/backfills/dry_run", { method: "POST", body: b });
      if (mine !== seq) return;
      const dates = dry.backfills.map((x) => x.logical_date);
      put(preview,
        h("p", { class: "count" }, dates.length === 1 ? "1 run will be made:" : `${dates.length} runs will be made${dates.length ? ":" : "."}`),
        dates.length ? h("ol", { class: "dates" }, dates.slice(0, PREVIEW_DATES).map((d) => h("li", {}, time(d)))) : null,
        dates.length > PREVIEW_DATES ? h("p", { class: "muted" }, `and ${dates.length - PREVIEW_DATES} more`) : null);
    } catch (err) {
      if (mine !== seq) return;
      put(preview, h("p", { class: "field-error" }, err.message));
    }
  }
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  };
  for (const el of [from, to, max]) el.addEventListener("input", later);
  for (const el of [reprocess, backwards]) el.addEventListener("change", later);

  return { choice, section, chosen, body, onMode: (f) => listeners.push(f) };
}
