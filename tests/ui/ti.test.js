// Browser tests of a task instance's depth (issue 20, helper ui-ti): its own page at
// Airflow 3's address, the time-zone choice (UTC, the browser's, the DAG's own) changing
// every shown time, rendered templates, why a task waits (dependencies), the log's
// search and download, a live duration, and the log moving on to the new try after a
// retry and after a clear. At no prefix and under /d12345, one server each.

import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { SHOTS, RUN_TIMEOUT, CHROMIUM, startServerAt, stopServer, watch, PREFIXES, chained } from "./harness.js";

const BASH = "airflow.providers.standard.operators.bash.BashOperator";
const DAGS = {
  "ti_tz.yml": `ti_tz:
  schedule: null
  timezone: Asia/Kolkata
  start_date: 2024-01-01
  params: {word: kolkata}
  default_args:
    retries: 1
    retry_delay: {__type__: datetime.timedelta, seconds: 1}
  tasks:
    - task_id: render_me
      operator: ${BASH}
      bash_command: "echo rendered {{ params.word }} in {{ dag.dag_id }} && echo second line && echo rendered again"
    - task_id: flaky
      operator: ${BASH}
      bash_command: "{% if ti.try_number < 2 %}echo first try here && sleep 4 && exit 1{% else %}echo try {{ ti.try_number }} here{% endif %}"
      dependencies: [render_me]
`,
  "blocked.yml": `blocked:
  schedule: null
  default_args: {start_date: 2024-01-01}
  tasks:
    - {task_id: up, operator: ${BASH}, bash_command: "echo up"}
    - {task_id: down, operator: ${BASH}, bash_command: "echo down", dependencies: [up]}
`,
};

for (const { label, prefix } of PREFIXES.filter((p) => p.label !== "nested")) {
  describe(`task instance depth at ${prefix || "/"}`, { concurrency: false }, () => {
    let srv;
    let browser;
    let page;
    let w;
    let base;
    const downloads = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-dl-"));

    // The steps build on each other: after one fails, the rest are skipped, not timed out.
    const step = chained((name) => snap(name));
    const snap = (name) => page.screenshot({ path: path.join(SHOTS, `ti-${label}-${name}.png`) });
    /** The Core API from the test (all admins: no token needed). */
    const api = async (p, { method = "GET", body, accept = "application/json" } = {}) => {
      const res = await fetch(`${base}${p}`, { method, headers: { Accept: accept, ...(body ? { "Content-Type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
      const text = await res.text();
      assert.ok(res.ok, `${method} ${p}: ${res.status} ${text}`);
      return accept === "application/json" && text ? JSON.parse(text) : text;
    };
    const tiPath = (dag, run, task) => `dags/${dag}/runs/${encodeURIComponent(run)}/tasks/${task}`;
    const check = (stepName) => {
      // A download is a blob: URL the page made, not a request to another server.
      const keep = w.problems.filter((p) => !p.includes("blob:"));
      w.problems.splice(0, w.problems.length, ...keep);
      w.check(stepName);
    };

    before(async () => {
      const env = { UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS: "True", UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION: "False" };
      srv = await startServerAt(prefix, { env, files: DAGS });
      base = srv.url;
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
      // A browser in New York: its own zone is neither UTC nor the DAG's.
      const ctx = await browser.newContext({ timezoneId: "America/New_York", viewport: { width: 1280, height: 860 }, acceptDownloads: true });
      page = await ctx.newPage();
      w = watch(page, base);
      // Wait for both DAGs to be parsed.
      for (let i = 0; i < 300; i++) {
        const res = await fetch(`${base}api/v2/dags?dag_id_pattern=%25`).then((r) => r.json()).catch(() => null);
        const ids = (res?.dags ?? []).map((d) => d.dag_id);
        if (ids.includes("ti_tz") && ids.includes("blocked")) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    });

    after(async () => {
      await browser?.close();
      await stopServer(srv);
      fs.rmSync(downloads, { recursive: true, force: true });
    });

    step("after a retry the log shows the new try, and a running try's duration ticks", async () => {
      await api("api/v2/dags/ti_tz/dagRuns", { method: "POST", body: { logical_date: null, dag_run_id: "tz1" } });
      await page.goto(`${base}${tiPath("ti_tz", "tz1", "flaky")}`);
      const panel = page.locator(".ti-panel.ti-full");
      await panel.locator("h1.panel-title", { hasText: "flaky" }).waitFor();
      await panel.locator("#ti-log", { hasText: "first try here" }).waitFor({ timeout: RUN_TIMEOUT });
      // Running: the duration moves on between polls, second by second.
      const dur = panel.locator(".ti-summary .ti-duration");
      const first = await dur.textContent();
      await page.waitForFunction((t) => {
        const el = document.querySelector(".ti-summary .ti-duration");
        return el && el.textContent && el.textContent !== t;
      }, first, { timeout: 4000 });
      await panel.locator("#ti-log", { hasText: "try 2 here" }).waitFor({ timeout: RUN_TIMEOUT });
      assert.equal(await panel.locator("#ti-log", { hasText: "first try here" }).count(), 0, "the new try's log replaces the old one's");
      assert.equal(await panel.locator("button.try[aria-pressed=true]").textContent(), "2");
      await panel.locator(".panel-state .badge.st-success").waitFor({ timeout: RUN_TIMEOUT });
      check("retry");
    });

    step("after a clear the log shows the new try", async () => {
      const panel = page.locator(".ti-panel.ti-full");
      await panel.getByRole("button", { name: "Clear", exact: true }).click();
      const dialog = page.locator("dialog[open]");
      // The page's next look at the task instance comes only once the new try is over,
      // as when the scheduler is quicker than the poll: the log must still move on.
      let hold = true;
      const tiUrl = (u) => u.pathname.endsWith("/dagRuns/tz1/taskInstances/flaky");
      await page.route(tiUrl, async (route) => {
        for (let i = 0; hold && i < 600; i++) {
          const ti = await api("api/v2/dags/ti_tz/dagRuns/tz1/taskInstances/flaky");
          if (ti.try_number === 3 && ti.state === "success") hold = false;
          else await new Promise((r) => setTimeout(r, 100));
        }
        await route.continue().catch(() => {});
      });
      await dialog.getByRole("button", { name: "Clear", exact: true }).click();
      await dialog.waitFor({ state: "detached" });
      await panel.locator("#ti-log", { hasText: "try 3 here" }).waitFor({ timeout: RUN_TIMEOUT });
      await page.unroute(tiUrl);
      assert.equal(await panel.locator("#ti-log", { hasText: "try 2 here" }).count(), 0, "the cleared try's log is gone from the pane");
      assert.equal(await panel.locator("button.try[aria-pressed=true]").textContent(), "3");
      await snap("cleared");
      check("clear");
    });

    step("rendered templates show the templated command as it ran", async () => {
      await page.goto(`${base}${tiPath("ti_tz", "tz1", "render_me")}/rendered_templates`);
      const field = page.locator('.ti-panel pre[data-field="bash_command"]');
      await field.waitFor({ timeout: RUN_TIMEOUT });
      assert.equal((await field.textContent()).trim(), "echo rendered kolkata in ti_tz && echo second line && echo rendered again");
      assert.equal(await page.locator(".subtab[aria-pressed=true]").textContent(), "Rendered Templates");
      await snap("rendered");
      check("rendered templates");
    });

    step("the log's search finds lines and download gives the log's text", async () => {
      const panel = page.locator(".ti-panel");
      await panel.getByRole("button", { name: "Log", exact: true }).click();
      assert.ok(page.url().endsWith("/tasks/render_me"), `the log tab is the page's own URL: ${page.url()}`);
      await panel.locator("#ti-log", { hasText: "rendered again" }).waitFor({ timeout: 20_000 });
      // The command line is logged too: the match is there and in the output's line.
      await panel.locator(".log-search").fill("KOLKATA in");
      await panel.locator(".log-hits", { hasText: "1 of 2" }).waitFor();
      assert.equal(await panel.locator("mark.log-hit.current").textContent(), "kolkata in");
      assert.match(await panel.locator(".log-line", { has: page.locator("mark.current") }).textContent(), /running with bash/);
      await panel.locator(".log-search").press("Enter");
      await panel.locator(".log-hits", { hasText: "2 of 2" }).waitFor();
      assert.match(await panel.locator(".log-line", { has: page.locator("mark.current") }).locator(".log-msg").textContent(), /^rendered kolkata in ti_tz$/);
      await panel.locator(".log-search").fill("no such text");
      await panel.locator(".log-hits", { hasText: "No match" }).waitFor();
      // Line numbers and wrapping are toggles on the log box.
      assert.ok(await panel.locator("#ti-log.numbered > .log-line .log-no").first().isVisible());
      await panel.locator("#log-wrap").uncheck();
      assert.ok(await panel.locator("#ti-log.nowrap").count());
      await panel.locator("#log-wrap").check();
      const [dl] = await Promise.all([page.waitForEvent("download"), panel.getByRole("button", { name: "Download" }).click()]);
      const file = path.join(downloads, dl.suggestedFilename());
      await dl.saveAs(file);
      const want = await api(`api/v2/dags/ti_tz/dagRuns/tz1/taskInstances/render_me/logs/1`, { accept: "text/plain" });
      assert.equal(fs.readFileSync(file, "utf8"), want);
      assert.match(want, /rendered kolkata in ti_tz/);
      await snap("log-tools");
      check("log tools");
    });

    step("dependencies say a task waits behind its failed upstream", async () => {
      await api("api/v2/dags/blocked", { method: "PATCH", body: { is_paused: true } });
      await api("api/v2/dags/blocked/dagRuns", { method: "POST", body: { logical_date: null, dag_run_id: "held" } });
      await api("api/v2/dags/blocked/dagRuns/held/taskInstances/up", { method: "PATCH", body: { new_state: "failed" } });
      await page.goto(`${base}${tiPath("blocked", "held", "down")}/dependencies`);
      const deps = page.locator(".ti-panel .ti-deps");
      await deps.locator("li", { hasText: "Trigger Rule" }).waitFor();
      const text = await deps.locator("li", { hasText: "Trigger Rule" }).textContent();
      assert.match(text, /'all_success' requires all upstream tasks to have succeeded, but found 1 non-success/);
      assert.match(text, /up: failed/);
      await deps.locator("li", { hasText: "Dag Not Paused" }).waitFor();
      await snap("dependencies");
      check("dependencies");
    });

    step("the time-zone choice changes every shown time and says the zone", async () => {
      const run = await api("api/v2/dags/ti_tz/dagRuns/tz1");
      const ti = await api("api/v2/dags/ti_tz/dagRuns/tz1/taskInstances/render_me");
      // What an instant reads as in a zone, by the browser's own rules.
      const inZone = (iso, zone) => page.evaluate(([t, z]) => {
        const p = Object.fromEntries(new Intl.DateTimeFormat("en-CA", { timeZone: z, hourCycle: "h23", year: "numeric",
          month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
          .formatToParts(new Date(t)).map((x) => [x.type, x.value]));
        return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
      }, [iso, zone]);
      const zones = [["UTC", "UTC", "UTC"], ["dag", "Asia/Kolkata", "UTC+5:30"], ["America/New_York", "America/New_York", /^(EST|EDT)$/]];
      const pages = [
        ["runs", `${base}dags/ti_tz/runs`, "table.runs", run.start_date],
        ["task instance", `${base}${tiPath("ti_tz", "tz1", "render_me")}/details`, ".ti-panel .facts", ti.start_date],
      ];
      for (const [name, url, sel, iso] of pages) {
        await page.goto(url);
        await page.locator(sel).waitFor();
        for (const [choice, zone, tz] of zones) {
          await page.selectOption("#timezone", choice);
          const shown = page.locator(`main time[datetime="${iso}"]`).first();
          // The DAG's own zone is read from its details once the page is up.
          await page.waitForFunction(([t, want]) => [...document.querySelectorAll(`main time[datetime="${t}"]`)].some((e) => e.textContent === want),
            [iso, await inZone(iso, zone)], { timeout: 10_000 });
          const labels = await page.locator("main .when .tz").allTextContents();
          assert.ok(labels.length > 0, `${name}: times say their zone`);
          for (const l of labels) assert.match(l, tz instanceof RegExp ? tz : new RegExp(`^${tz.replace("+", "\\+")}$`), `${name} in ${zone}`);
          assert.match(await shown.getAttribute("title"), new RegExp(zone.replace("/", "\\/")));
          assert.equal(await page.locator("#timezone").inputValue(), choice);
        }
        await snap(`zone-${name.replace(/\s/g, "-")}`);
      }
      // The choice is kept in this browser.
      await page.reload();
      assert.equal(await page.locator("#timezone").inputValue(), "America/New_York");
      await page.locator("#timezone option[value=dag]", { hasText: "DAG: Asia/Kolkata" }).waitFor({ state: "attached" });
      // The grid's run tooltips say the zone too.
      await page.goto(`${base}dags/ti_tz/grid`);
      await page.selectOption("#timezone", "dag");
      await page.waitForFunction(() => [...document.querySelectorAll("[title*='Run after:']")].some((e) => /Run after: .* UTC\+5:30/.test(e.title)), null, { timeout: 10_000 });
      await page.selectOption("#timezone", "UTC");
      check("time zones");
    });
  });
}
