// Browser tests of every run being reachable and fresh (issue 20): the grid's run count,
// filters and paging back to the oldest of 120 runs; the Runs tab's paging, filters and
// sorting; deep links to old runs; a run triggered from the CLI showing up in an open
// grid within 3 s; the stale marker while the server does not answer; and the trigger
// form's errors (invalid conf JSON, a duplicate run id) in the API's words. At no prefix
// and under /d12345.

import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { BIN, SHOTS, like, startServerAt, stopServer, launch, watch, meProbe, PREFIXES, chained } from "./harness.js";

const DAG = "many";
const RUNS = 120;
const DAG_YAML = `${DAG}:
  schedule: null
  default_args:
    start_date: 2024-01-01
  tasks:
    - task_id: nop
      operator: airflow.providers.standard.operators.empty.EmptyOperator
`;
/** A DAG without runs: its open grid has nothing active, so it polls at its idle pace. */
const FRESH = "fresh";
const FRESH_YAML = DAG_YAML.replace(`${DAG}:`, `${FRESH}:`);
const runId = (i) => `r${String(i).padStart(3, "0")}`;

for (const { label, prefix } of PREFIXES.filter((p) => p.label !== "nested")) {
  describe(`runs at ${prefix || "/"}`, { concurrency: false }, () => {
    let srv;
    let ctx;
    let page;
    let w;
    let base;
    let token;
    let shot = 0;
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));

    // The steps build on each other: after one fails, the rest are skipped, not timed out.
    const step = chained((name) => snap(name));
    const snap = async (name) => {
      shot += 1;
      await page.screenshot({ path: path.join(SHOTS, `runs-${label}-${String(shot).padStart(2, "0")}-${name}.png`) });
    };

    /** The Core API as admin, from the test itself. */
    const call = async (method, p, body) => {
      const res = await fetch(`${base}${p}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };

    before(async () => {
      const env = { UPDRAFT__CORE__LOAD_EXAMPLES: "False", UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION: "True" };
      const files = { "many.yml": DAG_YAML, "fresh.yml": FRESH_YAML };
      srv = await startServerAt(prefix, { env, files });
      base = srv.url;
      const res = await fetch(`${base}auth/token`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: "admin", password: srv.password }),
      });
      assert.equal(res.status, 201);
      token = (await res.json()).access_token;
      // The DAG is parsed, then 120 runs are made through the API (the DAG is paused, so
      // they wait queued: nothing needs to run for the UI to page through them).
      for (let i = 0; (await call("GET", `api/v2/dags/${DAG}`)).status !== 200 || (await call("GET", `api/v2/dags/${FRESH}`)).status !== 200; i++) {
        assert.ok(i < 300, "the DAG is parsed");
        await new Promise((r) => setTimeout(r, 100));
      }
      for (let i = 0; i < RUNS; i++) {
        const r = await call("POST", `api/v2/dags/${DAG}/dagRuns`, { dag_run_id: runId(i), logical_date: null });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
      const r = await call("PATCH", `api/v2/dags/${DAG}/dagRuns/${runId(1)}`, { state: "failed" });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      ctx = await launch(profile);
      page = ctx.pages()[0] ?? (await ctx.newPage());
      w = watch(page, base);
    });

    after(async () => {
      await ctx?.close();
      await stopServer(srv);
      fs.rmSync(profile, { recursive: true, force: true });
    });

    step("log in", async () => {
      const done = w.allow(meProbe(base));
      await page.goto(`${base}dags`);
      await page.waitForURL(like(`${base}login?next=**`));
      await page.fill("#username", "admin");
      await page.fill("#password", srv.password);
      await page.click("form.login-card button[type=submit]");
      await page.waitForURL(like(`${base}dags`));
      done();
      w.check("login");
    });

    const bar = (id) => page.locator(`a.run-bar-link[data-key="run:${id}"]`);

    step("the grid pages back to the oldest of 120 runs, and shows as many as asked", async () => {
      await page.goto(`${base}dags/${DAG}/grid`);
      await page.locator("#grid-range", { hasText: `Runs 96–120 of ${RUNS}` }).waitFor();
      assert.equal(await page.locator("a.run-bar-link").count(), 25);
      await bar(runId(119)).waitFor();
      assert.equal(await bar(runId(0)).count(), 0, "the oldest run is not on the newest page");
      await page.click("#grid-older");
      await page.locator("#grid-range", { hasText: `Runs 71–95 of ${RUNS}` }).waitFor();
      await page.click("#grid-oldest");
      await page.locator("#grid-range", { hasText: `Runs 1–20 of ${RUNS}` }).waitFor();
      await bar(runId(0)).waitFor();
      assert.match(page.url(), /offset=100/);
      await snap("grid-oldest");
      // A cell's link keeps the page: choosing a run there stays on it.
      await bar(runId(0)).click();
      await page.locator(`a.run-bar-link[data-key="run:${runId(0)}"][aria-current="true"]`).waitFor();
      await page.locator("#grid-range", { hasText: `Runs 1–20 of ${RUNS}` }).waitFor();
      await page.click("#grid-newest");
      await page.locator("#grid-range", { hasText: `Runs 96–120 of ${RUNS}` }).waitFor();
      // Airflow's run counts: 365 shows every run at once.
      await page.selectOption("#grid-limit", "365");
      await page.locator("#grid-range", { hasText: `Runs 1–120 of ${RUNS}` }).waitFor();
      assert.equal(await page.locator("a.run-bar-link").count(), RUNS);
      assert.match(page.url(), /limit=365/);
      await page.selectOption("#grid-limit", "10");
      await page.locator("#grid-range", { hasText: `Runs 111–120 of ${RUNS}` }).waitFor();
      w.check("grid paging");
    });

    step("the grid filters by run state and type, kept in the URL", async () => {
      await page.goto(`${base}dags/${DAG}/grid`);
      await page.locator("#grid-range", { hasText: `of ${RUNS}` }).waitFor();
      await page.selectOption("#grid-state", "failed");
      await page.locator("#grid-range", { hasText: "Runs 1–1 of 1" }).waitFor();
      await bar(runId(1)).waitFor();
      assert.match(page.url(), /run_state=failed/);
      await page.reload();
      await page.locator("#grid-range", { hasText: "Runs 1–1 of 1" }).waitFor();
      assert.equal(await page.locator("#grid-state").inputValue(), "failed");
      await page.selectOption("#grid-type", "scheduled");
      await page.locator("#grid-range", { hasText: "No runs" }).waitFor();
      await page.getByText("No runs match these filters.").waitFor();
      await page.selectOption("#grid-type", "manual");
      await page.selectOption("#grid-state", "");
      await page.locator("#grid-range", { hasText: `of ${RUNS}` }).waitFor();
      w.check("grid filters");
    });

    step("a link to an old run brings its page into the grid and opens it", async () => {
      await page.goto(`${base}dags/${DAG}/grid?run=${runId(3)}`);
      await page.locator(`a.run-bar-link[data-key="run:${runId(3)}"][aria-current="true"]`).waitFor();
      await page.locator("#grid-range", { hasText: `Runs 1–20 of ${RUNS}` }).waitFor();
      await page.locator(".side", { hasText: runId(3) }).first().waitFor();
      await snap("grid-deep-link");
      w.check("grid deep link");
    });

    step("the Runs tab pages, filters and sorts", async () => {
      await page.goto(`${base}dags/${DAG}/runs`);
      await page.locator("#runs-total", { hasText: `${RUNS} runs` }).waitFor();
      await page.locator("#runs-range", { hasText: `1–50 of ${RUNS}` }).waitFor();
      const firstRun = () => page.locator("table.runs tbody tr").first().locator("td").nth(1).textContent();
      assert.equal(await firstRun(), runId(119));
      await page.click("#runs-last");
      await page.locator("#runs-range", { hasText: `101–120 of ${RUNS}` }).waitFor();
      await page.locator("table.runs td a", { hasText: runId(0) }).waitFor();
      // Sorting by a header: the run id, largest first, then smallest first.
      await page.click("#sort-run_id");
      await page.waitForURL(/order_by=-run_id/);
      await page.locator("#runs-range", { hasText: `1–50 of ${RUNS}` }).waitFor();
      assert.equal(await firstRun(), runId(119));
      await page.click("#sort-run_id");
      await page.waitForURL(/order_by=run_id/);
      await page.waitForFunction(() => document.querySelector("table.runs tbody tr td:nth-child(2)")?.textContent === "r000");
      assert.equal(await page.locator('table.runs th[aria-sort="ascending"]').count(), 1);
      await page.selectOption("#runs-limit", "10");
      await page.locator("#runs-range", { hasText: `1–10 of ${RUNS}` }).waitFor();
      // Filters: state, who triggered it (the API's pattern), the run-after range.
      await page.selectOption("#runs-state", "failed");
      await page.locator("#runs-total", { hasText: "1 run" }).waitFor();
      await page.locator("table.runs td a", { hasText: runId(1) }).waitFor();
      await page.selectOption("#runs-state", "");
      await page.locator("#runs-total", { hasText: `${RUNS} runs` }).waitFor();
      await page.fill("#runs-user", "nobody");
      await page.press("#runs-user", "Enter");
      await page.getByText("No runs match these filters.").waitFor();
      await page.fill("#runs-user", "adm");
      await page.press("#runs-user", "Enter");
      await page.locator("#runs-total", { hasText: `${RUNS} runs` }).waitFor();
      await page.fill("#runs-from", "2099-01-01T00:00:00");
      await page.locator("#runs-from").dispatchEvent("change");
      await page.getByText("No runs match these filters.").waitFor();
      assert.match(page.url(), /run_after_gte=2099/);
      await snap("runs-filtered");
      await page.click("#runs-clear");
      await page.locator("#runs-total", { hasText: `${RUNS} runs` }).waitFor();
      // A deep link to an old run on the Runs tab shows it.
      await page.goto(`${base}dags/${DAG}/runs?run=${runId(2)}`);
      await page.locator(".side", { hasText: runId(2) }).first().waitFor();
      w.check("runs tab");
    });

    step("a run triggered from the CLI appears in the open grid within 3 s", async () => {
      // A grid with no active run refetches only when told something changed.
      await page.goto(`${base}dags/${FRESH}/grid`);
      await page.getByText("No runs yet. Trigger one to see it here.").waitFor();
      await page.waitForTimeout(1500);
      const cli = spawnSync(BIN, ["dags", "trigger", FRESH, "--run-id", "from-cli"], {
        env: { PATH: process.env.PATH, UPDRAFT_HOME: srv.home, UPDRAFT__CORE__LOAD_EXAMPLES: "False" }, encoding: "utf8",
      });
      const returned = Date.now();
      assert.equal(cli.status, 0, cli.stderr);
      await bar("from-cli").waitFor({ timeout: 3000 });
      console.log(`run from the CLI shown after ${Date.now() - returned} ms`);
      await page.locator("#grid-range", { hasText: "Runs 1–1 of 1" }).waitFor();
      w.check("freshness");
    });

    step("a failed poll keeps the grid with a stale marker, gone when the server answers", async () => {
      // Every API call fails (page.route hands a URL object, the watcher a string).
      const down = (u) => {
        const url = String(u);
        return url.startsWith(base) && /\/(api\/v2|ui)\//.test(url.slice(base.length - 1));
      };
      const done = w.allow((url, status) => status === 503 && (url === "" || down(url)));
      await page.route(down, (r) => r.fulfill({ status: 503, contentType: "application/json", body: '{"detail":"down for the test"}' }));
      await page.locator("#stale-marker", { hasText: "Not up to date" }).waitFor({ timeout: 5000 });
      // What was shown stays.
      await bar("from-cli").waitFor();
      assert.equal(await page.locator(".error-box").count(), 0);
      await snap("stale");
      await page.unroute(down);
      await page.locator("#stale-marker").waitFor({ state: "detached", timeout: 5000 });
      await bar("from-cli").waitFor();
      done();
      w.check("stale marker");
    });

    step("the DAG list shows a run triggered from the CLI within 3 s", async () => {
      await page.goto(`${base}dags`);
      const row = page.locator(`tr[data-dag-id="${FRESH}"]`);
      await row.locator('a.mark[aria-label="Run from-cli: queued"]').waitFor();
      await page.waitForTimeout(1500);
      const cli = spawnSync(BIN, ["dags", "trigger", FRESH, "--run-id", "from-cli-2"], {
        env: { PATH: process.env.PATH, UPDRAFT_HOME: srv.home, UPDRAFT__CORE__LOAD_EXAMPLES: "False" }, encoding: "utf8",
      });
      assert.equal(cli.status, 0, cli.stderr);
      await row.locator('a.mark[aria-label="Run from-cli-2: queued"]').waitFor({ timeout: 3000 });
      w.check("DAG list freshness");
    });

    step("the trigger form refuses invalid conf JSON and shows a duplicate run id's 409", async () => {
      const before = (await call("GET", `api/v2/dags/${DAG}/dagRuns?limit=1`)).body.total_entries;
      await page.goto(`${base}dags/${DAG}/grid`);
      await bar(runId(119)).waitFor();
      await page.click("#trigger");
      await page.locator("#trigger-conf").waitFor({ state: "attached" });
      await page.locator("details.advanced").evaluate((d) => { d.open = true; });
      await page.fill("#trigger-conf", '{"a": 1,');
      if (await page.locator("#trigger-unpause").count()) await page.uncheck("#trigger-unpause");
      await page.click("dialog button[type=submit]");
      await page.locator("#trigger-conf-error", { hasText: "Not valid JSON" }).waitFor();
      await page.locator("dialog .form-error", { hasText: "Configuration (conf): Not valid JSON" }).waitFor();
      assert.equal(await page.locator("#trigger-conf").inputValue(), '{"a": 1,', "the typed text is kept");
      assert.equal((await call("GET", `api/v2/dags/${DAG}/dagRuns?limit=1`)).body.total_entries, before, "nothing was triggered");
      await snap("trigger-bad-conf");
      // A run id that is taken: the API's 409, in its words, and what it means.
      await page.fill("#trigger-conf", "{}");
      await page.fill("#trigger-run-id", runId(5));
      const done = w.allow((url, status, method) => status === 409 && (method === "POST" || method === null) && url.endsWith(`dags/${DAG}/dagRuns`));
      await page.click("dialog button[type=submit]");
      await page.locator("#trigger-run-id-error", { hasText: `A run with ID ${runId(5)} already exists` }).waitFor();
      await page.locator("dialog .form-error", { hasText: "Unique constraint violation" }).waitFor();
      await snap("trigger-duplicate");
      done();
      await page.click("dialog button.icon-btn[aria-label=Close]");
      assert.equal((await call("GET", `api/v2/dags/${DAG}/dagRuns?limit=1`)).body.total_entries, before);
      w.check("trigger form");
    });
  });
}
