// Browser tests of the DAG page's Overview, Tasks, Calendar and Audit Log tabs, the
// graph's zoom, and the Audit Log, XComs, Import Errors and Config pages, at no prefix
// and under /d12345 (issue 20). One server per prefix: a DAG that pushes an XCom and
// fails, a paused one with runs on known dates, and a 42-task chain for the graph.

import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SHOTS, RUN_TIMEOUT, like, startServerAt, stopServer, launch, watch, meProbe, PREFIXES, chained } from "./harness.js";

const BASH = "airflow.providers.standard.operators.bash.BashOperator";
const EMPTY = "airflow.providers.standard.operators.empty.EmptyOperator";
const DEMO = `tabs_demo:
  schedule: null
  catchup: false
  default_args: {owner: airflow, start_date: 2024-01-01, retries: 0}
  tasks:
    - {task_id: push_value, operator: ${BASH}, bash_command: "echo tabs-xcom-4242"}
    - {task_id: will_fail, operator: ${BASH}, bash_command: "exit 1", dependencies: [push_value]}
    - {task_id: after_fail, operator: ${EMPTY}, trigger_rule: all_done, dependencies: [will_fail]}
`;
const CALENDAR = `tabs_calendar:
  schedule: null
  catchup: false
  default_args: {owner: airflow, start_date: 2024-01-01}
  tasks:
    - {task_id: only, operator: ${EMPTY}}
`;
const WIDE = `tabs_wide:
  schedule: null
  default_args: {owner: airflow, start_date: 2024-01-01}
  tasks:
${Array.from({ length: 42 }, (_, i) => `    - {task_id: step_${String(i).padStart(2, "0")}, operator: ${EMPTY}${i ? `, dependencies: [step_${String(i - 1).padStart(2, "0")}]` : ""}}`).join("\n")}
`;

/** The graph layer's transform as `{k, x, y}`. */
async function transformOf(page) {
  const t = await page.locator("svg.graph g.viewport").getAttribute("transform");
  const m = /translate\(([-\d.]+) ([-\d.]+)\) scale\(([-\d.]+)\)/.exec(t ?? "");
  assert.ok(m, `a transform: ${t}`);
  return { x: Number(m[1]), y: Number(m[2]), k: Number(m[3]) };
}

const SHOWN = PREFIXES.filter((p) => p.label !== "nested");

for (const { label, prefix } of SHOWN) {
  describe(`the DAG tabs and global pages at ${prefix || "/"}`, { concurrency: false }, () => {
    let srv;
    let ctx;
    let page;
    let w;
    let base;
    let token;
    const year = new Date().getUTCFullYear();
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));
    const snap = (name) => page.screenshot({ path: path.join(SHOTS, `tabs-${label}-${name}.png`) });

    // The steps build on each other: after one fails, the rest are skipped, not timed out.
    const step = chained((name) => snap(name));

    /** Calls the API as admin; resolves the parsed body after checking the status. */
    const call = async (method, p, body, status = 200) => {
      const res = await fetch(`${base}${p}`, {
        method, headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` }, body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      assert.equal(res.status, status, `${method} ${p}: ${text}`);
      return text ? JSON.parse(text) : null;
    };

    before(async () => {
      const files = { "tabs_demo.yml": DEMO, "tabs_calendar.yml": CALENDAR, "tabs_wide.yml": WIDE };
      srv = await startServerAt(prefix, { files });
      base = srv.url;
      const tok = await fetch(`${base}auth/token`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: "admin", password: srv.password }),
      });
      assert.equal(tok.status, 201);
      token = (await tok.json()).access_token;
      ctx = await launch(profile);
      page = ctx.pages()[0] ?? (await ctx.newPage());
      w = watch(page, base);
    });

    after(async () => {
      await ctx?.close();
      await stopServer(srv);
      fs.rmSync(profile, { recursive: true, force: true });
    });

    step("runs: one that fails after pushing an XCom, and three on known dates", async () => {
      for (let i = 0; i < 300; i++) {
        const res = await fetch(`${base}api/v2/dags/tabs_calendar`, { headers: { Authorization: `Bearer ${token}` } });
        const demo = await fetch(`${base}api/v2/dags/tabs_demo`, { headers: { Authorization: `Bearer ${token}` } });
        if (res.status === 200 && demo.status === 200) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      await call("PATCH", "api/v2/dags/tabs_demo", { is_paused: false });
      await call("POST", "api/v2/dags/tabs_demo/dagRuns", { dag_run_id: "demo_1", logical_date: null });
      // The calendar DAG stays paused: its queued run waits, the others are marked.
      for (const [id, day, state] of [["cal_ok", "03-10", "success"], ["cal_bad", "03-11", "failed"], ["cal_wait", "03-12", null]]) {
        const when = `${year}-${day}T12:00:00Z`;
        await call("POST", "api/v2/dags/tabs_calendar/dagRuns", { dag_run_id: id, logical_date: when, run_after: when });
        if (state) await call("PATCH", `api/v2/dags/tabs_calendar/dagRuns/${id}`, { state });
      }
      for (let i = 0; ; i++) {
        const run = await call("GET", "api/v2/dags/tabs_demo/dagRuns/demo_1");
        // The leaf runs all_done, so the run ends in success with one task failed.
        if (run.state === "success" || run.state === "failed") break;
        assert.ok(i < RUN_TIMEOUT / 200, `demo_1 ends, is ${run.state}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    });

    step("log in", async () => {
      const doneProbe = w.allow(meProbe(base));
      await page.goto(`${base}dags/tabs_demo/overview`);
      await page.waitForURL(like(`${base}login?next=**`));
      await page.fill("#username", "admin");
      await page.fill("#password", srv.password);
      await page.click("form.login-card button[type=submit]");
      await page.waitForURL(like(`${base}dags/tabs_demo/overview`));
      doneProbe();
    });

    step("the tabs in Airflow's order; the Overview lists the failed task and the run's bar", async () => {
      // The page's module loads after the URL changes: wait for its tabs before reading them.
      await page.locator("nav.tabs a.tab", { hasText: "Details" }).waitFor();
      const tabs = await page.locator("nav.tabs a.tab").allTextContents();
      assert.deepEqual(tabs, ["Overview", "Grid", "Graph", "Runs", "Tasks", "Calendar", "Audit Log", "Code", "Details"]);
      const failedTask = page.locator("#ov-failures a.ov-failed-task", { hasText: "will_fail" });
      await failedTask.waitFor();
      assert.equal(await page.locator("#ov-failures a.ov-failed-task").count(), 1);
      await page.locator('svg.ov-chart rect.ov-bar.st-success[data-run="demo_1"]').waitFor();
      await snap("overview");
      await failedTask.click();
      await page.waitForURL(like(`${base}dags/tabs_demo/grid?run=demo_1&task=will_fail`));
      w.check("overview");
    });

    step("the Tasks tab lists every task with its operator, trigger rule and last state", async () => {
      await page.locator("nav.tabs a.tab", { hasText: "Tasks" }).click();
      await page.waitForURL(like(`${base}dags/tabs_demo/tasks**`));
      const rows = page.locator("table.task-list tbody tr");
      await page.locator('table.task-list tr[data-task="after_fail"] td.trigger-rule', { hasText: "all_done" }).waitFor();
      assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.task)), ["push_value", "will_fail", "after_fail"]);
      await page.locator('tr[data-task="push_value"] td.last-state .badge.st-success').waitFor();
      await page.locator('tr[data-task="will_fail"] td.last-state .badge.st-failed').waitFor();
      assert.match(await page.locator('tr[data-task="will_fail"]').textContent(), /BashOperator/);
      await snap("tasks");
      // A state square opens that instance in the grid.
      await page.locator('tr[data-task="will_fail"] a.task-run').first().click();
      await page.waitForURL(like(`${base}dags/tabs_demo/grid?run=demo_1&task=will_fail`));
      w.check("tasks");
    });

    step("the Calendar colours the days of the runs by their states", async () => {
      await page.goto(`${base}dags/tabs_calendar/calendar`);
      const cell = (day) => page.locator(`.cal-grid .cal-cell[data-date="${year}-${day}"]`);
      await cell("03-10").waitFor();
      assert.match(await cell("03-10").getAttribute("class"), /\bcal-success\b/);
      assert.match(await cell("03-10").getAttribute("title"), /1 run: 1 success/);
      assert.match(await cell("03-11").getAttribute("class"), /\bcal-failed\b/);
      assert.match(await cell("03-11").getAttribute("title"), /1 failed/);
      assert.match(await cell("03-12").getAttribute("class"), /\bcal-planned\b/);
      assert.match(await cell("03-12").getAttribute("title"), /1 queued/);
      assert.match(await cell("03-13").getAttribute("class"), /\bcal-none\b/);
      const days = await page.locator(".cal-grid .cal-cell:not(.cal-pad)").count();
      assert.ok(days === 365 || days === 366, `${days} days`);
      await snap("calendar");
      // The year before has none of them.
      await page.click("#cal-prev");
      await page.locator(`.cal-grid .cal-cell[data-date="${year - 1}-03-10"].cal-none`).waitFor();
      w.check("calendar");
    });

    step("the graph of 42 tasks starts readable and zooms with the buttons, keys and wheel", async () => {
      await page.goto(`${base}dags/tabs_wide/graph`);
      await page.locator("svg.graph a.node").nth(41).waitFor({ state: "attached" });
      const start = await transformOf(page);
      assert.ok(start.k >= 0.75, `starts at a readable scale, not ${start.k}`);
      await snap("graph-wide");
      await page.click("#graph-zoom-in");
      const zoomed = await transformOf(page);
      assert.ok(zoomed.k > start.k, `zoom in: ${start.k} → ${zoomed.k}`);
      await page.locator(".graph-wrap").focus();
      await page.keyboard.press("-");
      const out = await transformOf(page);
      assert.ok(out.k < zoomed.k, `"-" zooms out: ${zoomed.k} → ${out.k}`);
      await page.keyboard.press("ArrowLeft");
      assert.ok((await transformOf(page)).x > out.x, "an arrow pans");
      const box = await page.locator(".graph-wrap").boundingBox();
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.wheel(0, 300);
      assert.ok((await transformOf(page)).k < out.k, "the wheel zooms out");
      // A drag pans.
      const before = await transformOf(page);
      await page.mouse.move(box.x + 40, box.y + 20);
      await page.mouse.down();
      await page.mouse.move(box.x + 140, box.y + 60, { steps: 5 });
      await page.mouse.up();
      const dragged = await transformOf(page);
      assert.ok(dragged.x > before.x + 50, `a drag pans: ${before.x} → ${dragged.x}`);
      // A deep link to a task far right shows its node inside the view.
      await page.goto(`${base}dags/tabs_wide/graph?task=step_40`);
      const node = page.locator('svg.graph a.node[aria-label^="step_40"]');
      await node.waitFor({ state: "attached" });
      const [n, v] = await Promise.all([node.boundingBox(), page.locator(".graph-wrap").boundingBox()]);
      assert.ok(n.x >= v.x && n.x + n.width <= v.x + v.width && n.y >= v.y && n.y + n.height <= v.y + v.height,
        `step_40 ${JSON.stringify(n)} inside ${JSON.stringify(v)}`);
      w.check("graph zoom");
    });

    step("a pause done in the UI is on the Audit Log page and the DAG's Audit Log tab", async () => {
      await page.goto(`${base}dags/tabs_demo/grid`);
      const sw = page.locator('.dag-head button.switch[aria-label="Pause tabs_demo"]');
      await sw.click();
      await page.locator('.dag-head button.switch[aria-label="Unpause tabs_demo"]').waitFor();
      await page.locator("nav.main-nav details.nav-menu summary", { hasText: "Browse" }).click();
      await page.locator("nav.main-nav a", { hasText: "Audit Log" }).click();
      await page.waitForURL(like(`${base}events`));
      await page.fill("#ev-dag_id", "tabs_demo");
      await page.fill("#ev-event", "patch_dag");
      await page.click("form.filters button[type=submit]");
      await page.waitForURL(like(`${base}events?**dag_id=tabs_demo**`));
      const rows = page.locator("table.event-log tbody tr");
      const pause = rows.filter({ hasText: '"is_paused":true' });
      await pause.first().waitFor();
      assert.equal(await pause.count(), 1);
      assert.equal((await pause.locator(".ev-owner").textContent()).trim(), "admin");
      // The API's unpause of the setup is there too, older.
      assert.equal(await rows.count(), 2);
      await snap("audit-log");
      await page.goto(`${base}dags/tabs_demo/events`);
      await page.locator("table.event-log tbody tr", { hasText: '"is_paused":true' }).locator(".ev-event", { hasText: "patch_dag" }).waitFor();
      await page.locator("#events-pager").waitFor();
      await snap("dag-audit-log");
      w.check("audit log");
    });

    step("the XComs page shows the pushed XCom and its value on click", async () => {
      await page.goto(`${base}xcoms`);
      await page.fill("#xcom-dag", "tabs_demo");
      await page.click("form.filters button[type=submit]");
      const row = page.locator('table.xcom-list tbody tr[data-key="return_value"]', { hasText: "push_value" });
      await row.waitFor();
      await row.locator("button.xcom-show").click();
      await row.locator("pre.xcom-value", { hasText: "tabs-xcom-4242" }).waitFor();
      await snap("xcoms");
      w.check("xcoms");
    });

    step("the Import Errors page shows the broken file with its line", async () => {
      await page.goto(`${base}import_errors`);
      const item = page.locator(".import-error-list li.import-error").filter({ has: page.locator("code.ie-file", { hasText: "broken.yml" }) });
      await item.waitFor();
      assert.ok((await item.locator("pre.ie-stack").textContent()).length > 0);
      await item.locator(".ie-line").waitFor();
      await snap("import-errors");
      w.check("import errors");
    });

    step("the Config page with expose_config off shows the refusal; Plugins and Providers show", async () => {
      const done = w.allow((url, status) => status === 403 && url === `${base}api/v2/config`);
      await page.goto(`${base}configs`);
      await page.locator("#config-refused", { hasText: "chose not to expose the configuration" }).waitFor();
      await snap("config-refused");
      done();
      await page.goto(`${base}plugins`);
      await page.locator(".plugins-page .empty, .plugins-page table.plugin-list").first().waitFor();
      await page.goto(`${base}providers`);
      await page.locator(".providers-page .empty").waitFor();
      w.check("config");
    });
  });
}
