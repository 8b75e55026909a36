// Browser tests of the action dialogs (static/js/actions.js) at no prefix and under
// /d12345: each dialog's dry-run list is compared with what the Core API's dry run
// answers for the same options, confirming changes the states (read back through the
// API), an action that cannot change anything is disabled, and notes on a run and on a
// task instance are added, edited and read back through the API.

import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SHOTS, RUN_TIMEOUT, like, startServerAt, stopServer, launch, watch, meProbe, chained } from "./harness.js";

const DAG = "acts_ui";
const BASH = "airflow.providers.standard.operators.bash.BashOperator";
// A group whose second task fails, a mapped task and a task after both: every scope of
// the dialogs has something to list.
const YAML = `${DAG}:
  schedule: null
  default_args:
    start_date: 2024-01-01
  task_groups:
    - group_name: grp
      dependencies: [start]
  tasks:
    - task_id: start
      operator: ${BASH}
      bash_command: "echo start"
    - task_id: a
      operator: ${BASH}
      bash_command: "echo a"
      task_group_name: grp
    - task_id: b
      operator: ${BASH}
      bash_command: "exit 1"
      task_group_name: grp
      dependencies: [a]
    - task_id: m
      operator: ${BASH}
      dependencies: [start]
      expand:
        bash_command: ["echo 0", "echo 1"]
    - task_id: end
      operator: ${BASH}
      bash_command: "echo end"
      dependencies: [grp, m]
`;

const PREFIXES = [
  { label: "root", prefix: "" },
  { label: "d12345", prefix: "/d12345" },
].filter((p) => !process.env.UI_PREFIX || p.label === process.env.UI_PREFIX);

const key = (t) => `${t.task_id}|${t.map_index ?? -1}|${t.dag_run_id}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (const { label, prefix } of PREFIXES) {
  describe(`the action dialogs at ${prefix || "/"}`, { concurrency: false }, () => {
    let srv;
    let ctx;
    let page;
    let w;
    let base;
    let token;
    const runs = [];
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));
    // The steps build on each other: after one fails, the rest are skipped, not timed out.
    const step = chained((name) => page?.screenshot({ path: path.join(SHOTS, `actions-${label}-${name}.png`) }));
    const snap = (name) => page.screenshot({ path: path.join(SHOTS, `actions-${label}-${name}.png`) });

    /** The Core API, from the test, with the admin's token: resolves the parsed body. */
    const call = async (method, p, body) => {
      const res = await fetch(`${base}${p}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      assert.ok(res.ok, `${method} ${p}: ${res.status} ${text}`);
      return text ? JSON.parse(text) : null;
    };
    const runPath = (r) => `api/v2/dags/${DAG}/dagRuns/${encodeURIComponent(r)}`;
    const ti = async (r, task, mapIndex = null) => call("GET", `${runPath(r)}/taskInstances/${task}${mapIndex != null ? `/${mapIndex}` : ""}`);
    const waitFor = async (what, fn) => {
      const end = Date.now() + RUN_TIMEOUT;
      for (;;) {
        const v = await fn();
        if (v) return v;
        assert.ok(Date.now() < end, `timed out waiting for ${what}`);
        await sleep(200);
      }
    };

    /** The open dialog's dry-run list, once the answer for its current options is in. */
    const shown = async (dialog) => {
      await dialog.locator(".affected-box:not([data-loading])").waitFor();
      return (await dialog.locator(".affected li").evaluateAll((lis) => lis.map((li) => li.dataset.ti))).sort();
    };
    const keys = (res) => (res.task_instances ?? []).map(key).sort();

    before(async () => {
      const env = { UPDRAFT__CORE__LOAD_EXAMPLES: "False", UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION: "False" };
      const files = { "acts.yml": YAML };
      srv = await startServerAt(prefix, { env, files });
      base = srv.url;
      ctx = await launch(profile);
      page = ctx.pages()[0] ?? (await ctx.newPage());
      w = watch(page, base);
    });

    after(async () => {
      await ctx?.close();
      await stopServer(srv);
      fs.rmSync(profile, { recursive: true, force: true });
    });

    step("two runs fail in their group; the user logs in", async () => {
      const tok = await fetch(`${base}auth/token`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: "admin", password: srv.password }),
      });
      assert.equal(tok.status, 201);
      token = (await tok.json()).access_token;
      await waitFor("the DAG to be parsed", async () => (await fetch(`${base}api/v2/dags/${DAG}`, { headers: { Authorization: `Bearer ${token}` } })).ok);
      for (const day of ["2024-01-01", "2024-01-02"]) {
        runs.push((await call("POST", `api/v2/dags/${DAG}/dagRuns`, { logical_date: `${day}T00:00:00Z` })).dag_run_id);
      }
      for (const r of runs) await waitFor(`run ${r} to fail`, async () => (await call("GET", runPath(r))).state === "failed");
      const doneProbe = w.allow(meProbe(base));
      await page.goto(`${base}dags/${DAG}/grid?run=${encodeURIComponent(runs[0])}`);
      await page.waitForURL(like(`${base}login?next=**`));
      await page.fill("#username", "admin");
      await page.fill("#password", srv.password);
      await page.click("form.login-card button[type=submit]");
      await page.locator(".run-panel").waitFor();
      doneProbe();
      w.check("login");
    });

    step("clear a run: the dry run's list, only failed, then confirm", async () => {
      const panel = page.locator(".run-panel");
      await panel.getByRole("button", { name: "Clear run" }).click();
      const dialog = page.locator("dialog[open]");
      const api = (onlyFailed) => call("POST", `${runPath(runs[0])}/clear`, { dry_run: true, only_failed: onlyFailed });
      const all = keys(await api(false));
      assert.equal(all.length, 6, `every task instance of the run: ${all}`);
      assert.deepEqual(await shown(dialog), all);
      await dialog.getByLabel("Only failed").check();
      const onlyFailed = keys(await api(true));
      assert.deepEqual(onlyFailed, [`end|-1|${runs[0]}`, `grp.b|-1|${runs[0]}`]);
      assert.deepEqual(await shown(dialog), onlyFailed);
      await snap("clear-run");
      const before = (await ti(runs[0], "grp.b")).try_number;
      await dialog.getByRole("button", { name: "Clear", exact: true }).click();
      await dialog.waitFor({ state: "detached" });
      // The failed task ran again (and failed again); the one that succeeded did not.
      await waitFor("grp.b to run again", async () => {
        const t = await ti(runs[0], "grp.b");
        return t.try_number > before && t.state === "failed";
      });
      assert.equal((await ti(runs[0], "grp.a")).try_number, 1);
      await waitFor("the run to fail again", async () => (await call("GET", runPath(runs[0]))).state === "failed");
      w.check("clear run");
    });

    step("clear a task: scope, upstream, downstream, future and its group, each as the API's dry run", async () => {
      await page.goto(`${base}dags/${DAG}/grid?run=${encodeURIComponent(runs[0])}&task=grp.b`);
      const panel = page.locator(".ti-panel");
      await panel.locator(".panel-title", { hasText: "grp.b" }).waitFor();
      await panel.getByRole("button", { name: "Clear", exact: true }).click();
      const dialog = page.locator("dialog[open]");
      const api = (extra) => call("POST", `api/v2/dags/${DAG}/clearTaskInstances`, {
        dry_run: true, dag_run_id: runs[0], task_ids: [["grp.b", -1]], only_failed: false,
        include_upstream: false, include_downstream: false, include_past: false, include_future: false, ...extra,
      });
      assert.deepEqual(await shown(dialog), keys(await api({})));
      await dialog.getByLabel("Downstream").check();
      assert.deepEqual(await shown(dialog), keys(await api({ include_downstream: true })));
      await dialog.getByLabel("Upstream").check();
      const both = keys(await api({ include_downstream: true, include_upstream: true }));
      assert.ok(both.includes(`start|-1|${runs[0]}`) && both.includes(`end|-1|${runs[0]}`), String(both));
      assert.deepEqual(await shown(dialog), both);
      await dialog.getByLabel("Upstream").uncheck();
      await dialog.getByLabel("Future").check();
      const future = keys(await api({ include_downstream: true, include_future: true }));
      assert.ok(future.some((k) => k.endsWith(`|${runs[1]}`)), `the later run is in: ${future}`);
      assert.deepEqual(await shown(dialog), future);
      await dialog.getByLabel("Only failed").check();
      assert.deepEqual(await shown(dialog), keys(await api({ include_downstream: true, include_future: true, only_failed: true })));
      await dialog.getByLabel("Only failed").uncheck();
      await dialog.getByLabel("Future").uncheck();
      await dialog.getByLabel("Downstream").uncheck();
      // The whole group: every task inside it, by name.
      await dialog.getByLabel("Group grp (2 tasks)").check();
      const group = keys(await api({ task_ids: ["grp.a", "grp.b"] }));
      assert.equal(group.length, 2, String(group));
      assert.deepEqual(await shown(dialog), group);
      await snap("clear-task-group");
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await dialog.waitFor({ state: "detached" });
      w.check("clear task");
    });

    step("clear a mapped instance, or every instance of it", async () => {
      await page.goto(`${base}dags/${DAG}/grid?run=${encodeURIComponent(runs[0])}&task=m&map_index=1`);
      const panel = page.locator(".ti-panel");
      await panel.locator(".panel-title", { hasText: "m" }).waitFor();
      await panel.locator(".panel-state .badge.st-success").waitFor();
      await panel.getByRole("button", { name: "Clear", exact: true }).click();
      const dialog = page.locator("dialog[open]");
      const api = (extra) => call("POST", `api/v2/dags/${DAG}/clearTaskInstances`, {
        dry_run: true, dag_run_id: runs[0], task_ids: [["m", 1]], only_failed: false,
        include_upstream: false, include_downstream: false, include_past: false, include_future: false, ...extra,
      });
      assert.deepEqual(await shown(dialog), [`m|1|${runs[0]}`]);
      await dialog.getByLabel("Upstream").check();
      assert.deepEqual(await shown(dialog), keys(await api({ include_upstream: true })));
      await dialog.getByLabel("Every mapped instance of m").check();
      const every = keys(await api({ include_upstream: true, task_ids: ["m"] }));
      assert.deepEqual(every, [`m|0|${runs[0]}`, `m|1|${runs[0]}`, `start|-1|${runs[0]}`]);
      assert.deepEqual(await shown(dialog), every);
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await dialog.waitFor({ state: "detached" });
      w.check("clear mapped");
    });

    step("a mapped task's panel marks every instance; the state they all have is disabled", async () => {
      await page.goto(`${base}dags/${DAG}/grid?run=${encodeURIComponent(runs[0])}&task=m`);
      const panel = page.locator(".ti-panel");
      await panel.locator(".instance-list li").nth(1).waitFor();
      assert.equal(await panel.getByRole("button", { name: "Mark success" }).isDisabled(), true);
      await panel.getByRole("button", { name: "Mark failed" }).click();
      const dialog = page.locator("dialog[open]");
      const dry = keys(await call("PATCH", `${runPath(runs[0])}/taskInstances/m/dry_run`, { new_state: "failed" }));
      assert.deepEqual(dry, [`m|0|${runs[0]}`, `m|1|${runs[0]}`]);
      assert.deepEqual(await shown(dialog), dry);
      await dialog.getByRole("button", { name: "Mark failed" }).click();
      await dialog.waitFor({ state: "detached" });
      assert.deepEqual([(await ti(runs[0], "m", 0)).state, (await ti(runs[0], "m", 1)).state], ["failed", "failed"]);
      await page.waitForFunction(() => [...document.querySelectorAll(".ti-panel .actions button")].find((b) => b.textContent === "Mark failed")?.disabled);
      w.check("mark mapped");
    });

    step("mark a task: the state it has is disabled; the dry run's list; confirm", async () => {
      await page.goto(`${base}dags/${DAG}/grid?run=${encodeURIComponent(runs[1])}&task=grp.a`);
      const panel = page.locator(".ti-panel");
      await panel.locator(".panel-title", { hasText: "grp.a" }).waitFor();
      await panel.locator(".panel-state .badge.st-success").waitFor();
      assert.equal(await panel.getByRole("button", { name: "Mark success" }).isDisabled(), true);
      assert.equal(await panel.getByRole("button", { name: "Mark failed" }).isDisabled(), false);
      await panel.getByRole("button", { name: "Mark failed" }).click();
      const dialog = page.locator("dialog[open]");
      const url = `${runPath(runs[1])}/taskInstances/grp.a/dry_run`;
      const api = (extra) => call("PATCH", url, {
        new_state: "failed", include_upstream: false, include_downstream: false, include_past: false, include_future: false, ...extra,
      });
      assert.deepEqual(await shown(dialog), keys(await api({})));
      await dialog.getByLabel("Downstream").check();
      const down = keys(await api({ include_downstream: true }));
      // grp.b failed already; end (upstream failed) would change.
      assert.deepEqual(down, [`end|-1|${runs[1]}`, `grp.a|-1|${runs[1]}`]);
      assert.deepEqual(await shown(dialog), down);
      await dialog.getByLabel("Past").check();
      const past = keys(await api({ include_downstream: true, include_past: true }));
      assert.ok(past.includes(`grp.a|-1|${runs[0]}`), String(past));
      assert.deepEqual(await shown(dialog), past);
      await dialog.getByLabel("Past").uncheck();
      await dialog.getByLabel("Downstream").uncheck();
      await snap("mark-task");
      await dialog.getByRole("button", { name: "Mark failed" }).click();
      await dialog.waitFor({ state: "detached" });
      assert.equal((await ti(runs[1], "grp.a")).state, "failed");
      // The panel follows: failed is now the state it has.
      await panel.locator(".panel-state .badge.st-failed").waitFor();
      await page.waitForFunction(() => [...document.querySelectorAll(".ti-panel .actions button")].find((b) => b.textContent === "Mark failed")?.disabled);
      w.check("mark task");
    });

    step("mark a run: its own state is disabled; confirm changes it", async () => {
      await waitFor("the second run to finish", async () => ["failed", "success"].includes((await call("GET", runPath(runs[1]))).state));
      const state = (await call("GET", runPath(runs[1]))).state;
      await page.goto(`${base}dags/${DAG}/grid?run=${encodeURIComponent(runs[1])}`);
      const panel = page.locator(".run-panel");
      await panel.locator(`.panel-state .badge.st-${state}`).waitFor();
      const same = state === "failed" ? "Mark failed" : "Mark success";
      const other = state === "failed" ? "success" : "failed";
      assert.equal(await panel.getByRole("button", { name: same }).isDisabled(), true);
      await panel.getByRole("button", { name: `Mark ${other}` }).click();
      const dialog = page.locator("dialog[open]");
      await shown(dialog);
      // Its only field is folded away: the keyboard starts on the confirm button.
      await page.waitForFunction((name) => document.activeElement?.textContent === name, `Mark ${other}`);
      // The dialog carries a note, as Airflow's does.
      await dialog.getByText("Add a note").click();
      await dialog.locator("#act-note").fill(`marked ${other} by hand`);
      await dialog.getByRole("button", { name: `Mark ${other}` }).click();
      await dialog.waitFor({ state: "detached" });
      const after = await call("GET", runPath(runs[1]));
      assert.deepEqual([after.state, after.note], [other, `marked ${other} by hand`]);
      w.check("mark run");
    });

    /** Adds a note, then edits it, in the panel; `read()` gives the API's note. */
    const notes = async (panel, read) => {
      const box = panel.locator(".note-box");
      await box.getByText("No note.").waitFor();
      await box.getByRole("button", { name: "Add note" }).click();
      const dialog = page.locator("dialog[open]");
      await dialog.getByLabel("Note", { exact: true }).fill(`first ${label}`);
      await dialog.getByRole("button", { name: "Save note" }).click();
      await dialog.waitFor({ state: "detached" });
      await box.locator(".note-text", { hasText: `first ${label}` }).waitFor();
      assert.equal(await read(), `first ${label}`);
      await box.getByRole("button", { name: "Edit note" }).click();
      assert.equal(await dialog.getByLabel("Note", { exact: true }).inputValue(), `first ${label}`);
      await dialog.getByLabel("Note", { exact: true }).fill(`second ${label}\non two lines`);
      await dialog.getByRole("button", { name: "Save note" }).click();
      await dialog.waitFor({ state: "detached" });
      await box.locator(".note-text", { hasText: "on two lines" }).waitFor();
      assert.equal(await read(), `second ${label}\non two lines`);
    };

    step("a note on a run and on a task instance, added and edited", async () => {
      await waitFor("the first run to finish", async () => ["failed", "success"].includes((await call("GET", runPath(runs[0]))).state));
      await page.goto(`${base}dags/${DAG}/grid?run=${encodeURIComponent(runs[0])}`);
      await notes(page.locator(".run-panel"), async () => (await call("GET", runPath(runs[0]))).note);
      await page.goto(`${base}dags/${DAG}/grid?run=${encodeURIComponent(runs[0])}&task=m&map_index=0`);
      const panel = page.locator(".ti-panel");
      await panel.locator(".panel-title", { hasText: "m" }).waitFor();
      await notes(panel, async () => (await ti(runs[0], "m", 0)).note);
      await snap("notes");
      // Still there after a reload.
      await page.reload();
      await panel.locator(".note-box .note-text", { hasText: "on two lines" }).waitFor();
      w.check("notes");
    });

    step("on a 390-px phone the clear dialog fits, and the keyboard drives it", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      try {
        await page.goto(`${base}dags/${DAG}/grid?run=${encodeURIComponent(runs[0])}&task=grp.b`);
        const panel = page.locator(".ti-panel");
        await panel.locator(".panel-title", { hasText: "grp.b" }).waitFor();
        await panel.getByRole("button", { name: "Clear", exact: true }).focus();
        await page.keyboard.press("Enter");
        const dialog = page.locator("dialog[open]");
        assert.deepEqual(await shown(dialog), [`grp.b|-1|${runs[0]}`]);
        const box = await dialog.boundingBox();
        assert.ok(box.x >= 0 && box.x + box.width <= 390, `the dialog fits: ${JSON.stringify(box)}`);
        const overflow = await dialog.evaluate((d) => [...d.querySelectorAll("*")].filter((e) => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "visible").map((e) => e.className));
        assert.deepEqual(overflow, [], "nothing in the dialog scrolls sideways");
        // Focus starts on the first choice; arrows pick the group, Tab and Space tick Past.
        assert.equal(await page.evaluate(() => document.activeElement?.id), "scope-one");
        await page.keyboard.press("ArrowDown");
        assert.deepEqual(await shown(dialog), [`grp.a|-1|${runs[0]}`, `grp.b|-1|${runs[0]}`]);
        await page.keyboard.press("Tab");
        assert.equal(await page.evaluate(() => document.activeElement?.id), "act-past");
        await page.keyboard.press("Space");
        assert.equal(await dialog.getByLabel("Past").isChecked(), true);
        await shown(dialog);
        await snap("clear-task-390");
        await page.keyboard.press("Escape");
        await dialog.waitFor({ state: "detached" });
      } finally {
        await page.setViewportSize({ width: 1280, height: 800 });
      }
      w.check("phone and keyboard");
    });
  });
}
