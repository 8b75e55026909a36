// Airflow's action dialogs for a run and a task instance, and their notes.
//
// Clear and mark success / failed open a <dialog> whose options are Airflow's: a run
// clears everything or only what failed; a task instance clears or is marked with its
// upstream, downstream, past and future, and clears only what failed, for the one
// instance, every instance of a mapped task, or every task of a group it sits in
// (groups inside groups too). Before the user confirms, the dialog lists what would
// change, as the Core API's own dry run answers for the same options, so the list is
// the server's and never a guess. Actions that cannot change anything are disabled.
// A note is the Core API's `note` field, edited in a dialog and saved with PATCH.

import { api, path } from "./api.js";
import { h, put, badge, modal, notify } from "./ui.js";

/** States a try cannot leave by itself (Airflow's finished states). */
const FINISHED = new Set(["success", "failed", "skipped", "upstream_failed", "removed"]);

const enc = encodeURIComponent;
const runBase = (dagId, runId) => path`api/v2/dags/${dagId}/dagRuns/${runId}`;

/** The submit button of the dialog holding `el`. */
const submitOf = (el) => el.closest("form")?.querySelector("button[type=submit]") ?? null;

/**
 * The dry-run list: `load()` resolves the API's task instances; the newest call wins,
 * so ticking options quickly never shows an older answer. The dialog's confirm button
 * is enabled only when the list has something in it.
 */
function affectedList({ verb, runId, load }) {
  const count = h("p", { class: "affected-count", role: "status", "aria-live": "polite" }, "Listing…");
  const list = h("ul", { class: "affected", "aria-label": `Task instances that would be ${verb}` });
  const el = h("div", { class: "affected-box" }, count, list);
  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    const submit = submitOf(el);
    if (submit) submit.disabled = true;
    el.dataset.loading = "true";
    let tis;
    try {
      tis = (await load()) ?? [];
    } catch (e) {
      if (mine !== seq) return;
      put(count, `Could not list what would be ${verb}: ${e.message}`);
      put(list);
      delete el.dataset.loading;
      return;
    }
    if (mine !== seq) return;
    put(count, tis.length ? `${tis.length} task instance${tis.length === 1 ? "" : "s"} would be ${verb}:` : `Nothing would be ${verb}.`);
    put(list, tis.map((t) => h("li", { dataset: { ti: tiKey(t) } },
      h("code", {}, t.task_id), t.map_index >= 0 ? h("span", { class: "muted" }, ` [${t.map_index}]`) : null,
      t.dag_run_id && t.dag_run_id !== runId ? h("span", { class: "muted small" }, ` · ${t.dag_run_id}`) : null,
      " ", badge(t.state))));
    if (submit) submit.disabled = tis.length === 0;
    delete el.dataset.loading;
  }
  return { el, refresh };
}

/**
 * Puts the focus on the dialog's first choice a keyboard can reach (the shared modal
 * tries the first input, which may be disabled or folded away), else on its confirm.
 */
function focusFirst(el) {
  const dlg = el.closest("dialog");
  const now = document.activeElement;
  if (!dlg || (dlg.contains(now) && /^(INPUT|SELECT|TEXTAREA)$/.test(now.tagName))) return;
  const first = [...dlg.querySelectorAll("input, select, textarea")].find((x) => !x.disabled && shownNow(x));
  (first ?? submitOf(el))?.focus();
}

/**
 * Whether a field is on screen now. A field folded inside a closed `<details>` may still
 * have layout boxes (Chromium hides the content with content-visibility), so
 * `getClientRects` alone is not enough; `checkVisibility` knows.
 */
const shownNow = (x) => (x.checkVisibility ? x.checkVisibility() : x.getClientRects().length > 0);

/** `task_id|map_index|run_id`: one task instance, as the tests compare them. */
export const tiKey = (t) => `${t.task_id}|${t.map_index ?? -1}|${t.dag_run_id}`;

/** A checkbox with its label, for a dialog's options. */
function option(id, label, { checked = false, disabled = false, help = null } = {}) {
  const input = h("input", { type: "checkbox", id, checked, disabled });
  const el = h("div", { class: "field check" }, input, h("label", { for: id }, label),
    help ? h("p", { class: "help" }, help) : null);
  return { el, input };
}

/**
 * A dialog's note, as Airflow's dialogs carry one: the current note to edit, folded
 * away until opened. `changed()` is the text to send when it differs, else undefined.
 */
function noteField(current) {
  const area = h("textarea", { id: "act-note", rows: 3, maxlength: 1000, "aria-label": "Note" });
  area.value = current ?? "";
  const el = h("details", { class: "act-note", open: Boolean(current) },
    h("summary", {}, current ? "Note" : "Add a note"), h("div", { class: "field" }, area));
  return { el, changed: () => (area.value === (current ?? "") ? undefined : area.value) };
}

/** The groups `taskId` sits in, innermost first, each with every task id inside it. */
async function groupsOf(dagId, taskId) {
  let structure;
  try {
    structure = await api(path`ui/structure/${dagId}`);
  } catch {
    return [];
  }
  const idsIn = (n, out = []) => {
    if (n.type === "task") out.push(n.id);
    else for (const c of n.children ?? []) idsIn(c, out);
    return out;
  };
  const trail = (nodes, above) => {
    for (const n of nodes ?? []) {
      if (n.type === "task" && n.id === taskId) return above;
      if (n.type === "task_group") {
        const found = trail(n.children, [...above, n]);
        if (found) return found;
      }
    }
    return null;
  };
  return (trail(structure?.nodes, []) ?? []).reverse().map((g) => ({ id: g.id, label: g.label ?? g.id, taskIds: idsIn(g) }));
}

/**
 * What a task action covers: the instance, every instance of a mapped task, or a group.
 * Resolves `[{key, label, taskIds, url}]`: `taskIds` as `clearTaskInstances` takes them,
 * `url` the PATCH route that marks them.
 */
async function scopes({ dagId, runId, taskId, mapIndex, isMapped }) {
  const tiBase = `${runBase(dagId, runId)}/taskInstances/${enc(taskId)}`;
  const out = [];
  if (mapIndex != null) {
    out.push({ key: "one", label: `This instance (map index ${mapIndex})`, taskIds: [[taskId, mapIndex]], url: `${tiBase}/${mapIndex}` });
    out.push({ key: "task", label: `Every mapped instance of ${taskId}`, taskIds: [taskId], url: tiBase });
  } else if (isMapped) {
    out.push({ key: "task", label: `Every mapped instance of ${taskId}`, taskIds: [taskId], url: tiBase });
  } else {
    out.push({ key: "one", label: "This task", taskIds: [[taskId, -1]], url: tiBase });
  }
  for (const g of await groupsOf(dagId, taskId)) {
    out.push({
      key: `group:${g.id}`, label: `Group ${g.label} (${g.taskIds.length} task${g.taskIds.length === 1 ? "" : "s"})`,
      taskIds: g.taskIds, url: `${runBase(dagId, runId)}/taskGroupInstances/${enc(g.id)}`,
    });
  }
  return out;
}

/** Radio buttons for the scopes (none when there is only one); `current()` is the chosen one. */
function scopePicker(list, onChange) {
  let chosen = list[0];
  if (list.length < 2) return { el: null, current: () => chosen };
  const el = h("fieldset", { class: "action-scope" }, h("legend", {}, "Which"),
    list.map((s, i) => {
      const id = `scope-${s.key.replace(/\W/g, "-")}`;
      return h("div", { class: "field check" },
        h("input", {
          type: "radio", name: "action-scope", id, value: s.key, checked: i === 0,
          onchange: () => {
            chosen = s;
            onChange();
          },
        }),
        h("label", { for: id }, s.label));
    }));
  return { el, current: () => chosen };
}

/** The relatives a task action takes along: Airflow's past, future, upstream, downstream. */
function relativeOptions({ logicalDate, onlyFailed = false }) {
  const noDate = !logicalDate;
  const opts = {
    past: option("act-past", "Past", { disabled: noDate }),
    future: option("act-future", "Future", { disabled: noDate }),
    upstream: option("act-upstream", "Upstream"),
    downstream: option("act-downstream", "Downstream"),
  };
  if (onlyFailed) opts.onlyFailed = option("act-only-failed", "Only failed");
  const el = h("fieldset", { class: "action-options" }, h("legend", {}, "Include"),
    Object.values(opts).map((o) => o.el),
    noDate ? h("p", { class: "help" }, "Past and future follow logical dates; this run has none.") : null);
  const values = () => ({
    include_past: opts.past.input.checked,
    include_future: opts.future.input.checked,
    include_upstream: opts.upstream.input.checked,
    include_downstream: opts.downstream.input.checked,
    ...(opts.onlyFailed ? { only_failed: opts.onlyFailed.input.checked } : {}),
  });
  return { el, values, inputs: Object.values(opts).map((o) => o.input) };
}

/** Opens the clear dialog of a task instance; resolves true when it cleared. */
export async function clearTask({ dagId, runId, taskId, mapIndex = null, isMapped = false, logicalDate, note = null }) {
  const list = await scopes({ dagId, runId, taskId, mapIndex, isMapped });
  const opts = relativeOptions({ logicalDate, onlyFailed: true });
  // The note is the instance's own (Airflow's dialog patches it apart from the clear).
  const noteBox = isMapped && mapIndex == null ? null : noteField(note);
  const body = (dry) => ({ dry_run: dry, dag_run_id: runId, task_ids: picker.current().taskIds, ...opts.values() });
  const affected = affectedList({
    verb: "cleared", runId,
    load: async () => (await api(path`api/v2/dags/${dagId}/clearTaskInstances`, { method: "POST", body: body(true) })).task_instances,
  });
  const picker = scopePicker(list, () => affected.refresh());
  for (const i of opts.inputs) i.addEventListener("change", () => affected.refresh());
  const done = modal({
    title: `Clear ${taskId}${mapIndex != null ? ` [${mapIndex}]` : ""}`,
    content: h("div", { class: "action-dialog" },
      h("p", {}, "Clearing resets task instances so the scheduler runs them again."),
      picker.el, opts.el, affected.el, noteBox?.el),
    submitLabel: "Clear",
    danger: true,
    onSubmit: async () => {
      const res = await api(path`api/v2/dags/${dagId}/clearTaskInstances`, { method: "POST", body: body(false) });
      const text = noteBox?.changed();
      if (text !== undefined) await api(list[0].url, { method: "PATCH", body: { note: text } });
      return res;
    },
  });
  focusFirst(affected.el);
  affected.refresh();
  return Boolean(await done);
}

/** Opens the mark dialog of a task instance (`state` success or failed); resolves true when it changed. */
export async function markTask({ dagId, runId, taskId, mapIndex = null, isMapped = false, logicalDate, state, note = null }) {
  const list = await scopes({ dagId, runId, taskId, mapIndex, isMapped });
  const opts = relativeOptions({ logicalDate });
  const noteBox = isMapped && mapIndex == null ? null : noteField(note);
  const body = () => ({ new_state: state, ...opts.values() });
  const affected = affectedList({
    verb: `marked ${state}`, runId,
    load: async () => (await api(`${picker.current().url}/dry_run`, { method: "PATCH", body: body() })).task_instances,
  });
  const picker = scopePicker(list, () => affected.refresh());
  for (const i of opts.inputs) i.addEventListener("change", () => affected.refresh());
  const done = modal({
    title: `Mark ${taskId}${mapIndex != null ? ` [${mapIndex}]` : ""} as ${state}`,
    content: h("div", { class: "action-dialog" },
      h("p", {}, "These task instances take the state ", badge(state), "; a running try is stopped, and failed tasks downstream are cleared to run again."),
      picker.el, opts.el, affected.el, noteBox?.el),
    submitLabel: `Mark ${state}`,
    danger: state === "failed",
    onSubmit: async () => {
      const res = await api(picker.current().url, { method: "PATCH", body: body() });
      // The note is the instance's own, whatever the scope marked.
      const text = noteBox?.changed();
      if (text !== undefined) await api(list[0].url, { method: "PATCH", body: { note: text } });
      return res;
    },
  });
  focusFirst(affected.el);
  affected.refresh();
  return Boolean(await done);
}

/** Opens the clear dialog of a run; resolves true when it cleared. */
export async function clearRun({ dagId, runId, note = null }) {
  const noteBox = noteField(note);
  const onlyFailed = option("clear-run-only-failed", "Only failed", { help: "Clear only the failed and upstream failed task instances." });
  const url = `${runBase(dagId, runId)}/clear`;
  const affected = affectedList({
    verb: "cleared", runId,
    load: async () => (await api(url, { method: "POST", body: { dry_run: true, only_failed: onlyFailed.input.checked } })).task_instances,
  });
  onlyFailed.input.addEventListener("change", () => affected.refresh());
  const done = modal({
    title: `Clear run ${runId}`,
    content: h("div", { class: "action-dialog" },
      h("p", {}, "Clearing resets the run's task instances so the scheduler runs them again."),
      h("fieldset", { class: "action-options" }, h("legend", {}, "Include"), onlyFailed.el), affected.el, noteBox.el),
    submitLabel: "Clear",
    danger: true,
    onSubmit: () => api(url, { method: "POST", body: { dry_run: false, only_failed: onlyFailed.input.checked, note: noteBox.changed() } }),
  });
  focusFirst(affected.el);
  affected.refresh();
  return Boolean(await done);
}

/**
 * Opens the mark dialog of a run. The Core API has no dry run for a run's state, so the
 * list is what the server's rule does to the run's task instances as read now: running
 * ones take the new state and the other unfinished ones are skipped.
 */
export async function markRun({ dagId, runId, state, note = null }) {
  const noteBox = noteField(note);
  const affected = affectedList({
    verb: `changed`, runId,
    load: async () => {
      const res = await api(`${runBase(dagId, runId)}/taskInstances`, { query: { limit: 1000 } });
      return (res.task_instances ?? []).filter((t) => !FINISHED.has(t.state));
    },
  });
  const done = modal({
    title: `Mark run ${runId} as ${state}`,
    content: h("div", { class: "action-dialog" },
      h("p", {}, "The run becomes ", badge(state), ". Its running task instances become ", badge(state),
        " and its other unfinished ones ", badge("skipped"), "."),
      affected.el, noteBox.el),
    submitLabel: `Mark ${state}`,
    danger: state === "failed",
    onSubmit: () => api(runBase(dagId, runId), { method: "PATCH", body: { state, note: noteBox.changed() } }),
  });
  // Nothing unfinished still changes the run's own state: the button stays enabled.
  await affected.refresh();
  const submit = submitOf(affected.el);
  if (submit) submit.disabled = false;
  focusFirst(affected.el);
  return Boolean(await done);
}

let busy = false;
/**
 * Runs one dialog `fn` at a time (a second click while the first dialog is being set up
 * opens nothing), then says what it did and calls `onDone`.
 */
async function once(fn, text, onDone) {
  if (busy) return;
  busy = true;
  try {
    if (await fn()) {
      notify(text, "success");
      onDone?.();
    }
  } catch (e) {
    notify(e.message, "error");
  } finally {
    busy = false;
  }
}

/**
 * The clear and mark buttons of a task instance. `states` are the states of what the
 * panel shows (one instance, or every instance of a mapped task): an action that would
 * leave all of them as they are is disabled, as Airflow's menu is.
 */
export function tiActions({ dagId, runId, taskId, mapIndex = null, isMapped = false, logicalDate, states, note = null, edit, onDone }) {
  const why = edit ? null : "Your role may not change task instances";
  const args = { dagId, runId, taskId, mapIndex, isMapped, logicalDate, note };
  const run = (fn, text) => once(fn, text, onDone);
  const none = states.every((s) => s == null);
  const all = (st) => states.length > 0 && states.every((s) => s === st);
  const btn = (label, cls, disabled, title, fn) => h("button", {
    type: "button", class: `btn small ${cls}`, disabled: !edit || disabled, title: why ?? (disabled ? title : null), onclick: fn,
  }, label);
  return [
    btn("Clear", "", none, "Nothing to clear: it has not run", () => run(() => clearTask(args), `Cleared ${taskId}`)),
    btn("Mark success", "ok", all("success"), "Already success", () => run(() => markTask({ ...args, state: "success" }), `Marked ${taskId} success`)),
    btn("Mark failed", "bad", all("failed"), "Already failed", () => run(() => markTask({ ...args, state: "failed" }), `Marked ${taskId} failed`)),
  ];
}

/**
 * The clear and mark buttons of a run; mark is disabled for the state it is in. `note()`
 * is the run's note as the panel shows it now.
 */
export function runActions({ dagId, run, edit, onDone, note = () => run.note ?? null }) {
  const why = edit ? null : "Your role may not change runs";
  const tis = Object.values(run.task_instances ?? {});
  // The grid's run carries its task instances; with none that ran there is nothing to clear.
  const nothing = run.task_instances != null && tis.every((t) => t?.state == null);
  const go = (fn, text) => once(fn, text, onDone);
  const runId = run.dag_run_id;
  const btn = (label, cls, disabled, title, fn) => h("button", {
    type: "button", class: `btn small ${cls}`, disabled: !edit || disabled, title: why ?? (disabled ? title : null), onclick: fn,
  }, label);
  return [
    btn("Clear run", "", nothing, "Nothing to clear: no task has run", () => go(() => clearRun({ dagId, runId, note: note() }), "Run cleared")),
    btn("Mark success", "ok", run.state === "success", "Already success", () => go(() => markRun({ dagId, runId, state: "success", note: note() }), "Run marked success")),
    btn("Mark failed", "bad", run.state === "failed", "Already failed", () => go(() => markRun({ dagId, runId, state: "failed", note: note() }), "Run marked failed")),
  ];
}

/**
 * A note shown in a panel, with a button to add or edit it. `save(text)` sends it (an
 * empty text removes the note) and resolves the note the server kept; `onSaved` runs
 * after. `set(note)` shows a note read since (the panel's poll).
 */
export function noteBox({ label, note, edit, save, onSaved }) {
  let current = note ?? null;
  const text = h("p", { class: "note-text" });
  const button = h("button", { type: "button", class: "btn small", disabled: !edit, title: edit ? null : "Your role may not write notes", onclick: () => open() });
  const el = h("section", { class: "note-box", "aria-label": `${label} note` },
    h("div", { class: "note-head" }, h("h3", {}, "Note"), button), text);
  const show = () => {
    put(text, current ? current : h("span", { class: "muted" }, "No note."));
    button.textContent = current ? "Edit note" : "Add note";
  };
  async function open() {
    const area = h("textarea", { id: "note-input", rows: 5, maxlength: 1000, "aria-label": "Note" });
    area.value = current ?? "";
    const saved = await modal({
      title: `${current ? "Edit" : "Add"} the ${label.toLowerCase()} note`,
      content: h("div", {}, h("div", { class: "field" }, h("label", { for: "note-input" }, "Note"), area,
        h("p", { class: "help" }, "Up to 1000 characters, shown to everyone who sees this. Empty removes it."))),
      submitLabel: "Save note",
      onSubmit: async () => ({ note: await save(area.value) }),
    });
    if (!saved) return;
    current = saved.note ?? null;
    show();
    notify("Note saved", "success");
    onSaved?.();
  }
  show();
  return {
    el,
    /** The note shown now. */
    value: () => current,
    set(n) {
      current = n ?? null;
      show();
    },
  };
}
