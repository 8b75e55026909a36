// Browser tests of the embedded UI: `updraft standalone` driven through Debian's chromium
// with playwright-core, at no prefix, under /d12345 and under a nested /a/b. Each run
// fails on any request outside the prefix, any failed request, any 4xx/5xx the step did
// not expect, and any console error (see harness.js); every page is photographed. Run by
// `make test-ui`, with the other `*.test.js` files here.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  BIN, SHOTS, RUN_TIMEOUT, like, freePort, startServer, startServerAt, stopServer, launch, watch, meProbe, PREFIXES, chained,
} from "./harness.js";

for (const { label, prefix } of PREFIXES) {
  describe(`the UI at ${prefix || "/"}`, { concurrency: false }, () => {
    let srv;
    let ctx;
    let page;
    let w;
    let base;
    let shot = 0;
    let runId;
    const dag = "example_params_and_retries";
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));

    // The steps build on each other: after one fails, the rest are skipped, not timed out.
    const step = chained((name) => snap(name));

    const snap = async (name) => {
      shot += 1;
      const file = path.join(SHOTS, `${label}-${String(shot).padStart(2, "0")}-${name}.png`);
      await page.screenshot({ path: file, fullPage: false });
    };

    before(async () => {
      srv = await startServerAt(prefix);
      base = srv.url;
      assert.ok(base.endsWith(`${prefix}/`), `${base} ends with ${prefix}/`);
      ctx = await launch(profile);
      page = ctx.pages()[0] ?? (await ctx.newPage());
      w = watch(page, base);
    });

    after(async () => {
      await ctx?.close();
      await stopServer(srv);
      fs.rmSync(profile, { recursive: true, force: true });
    });

    step("a deep link without a login goes to the login page, which logs in", async () => {
      const doneProbe = w.allow(meProbe(base));
      await page.goto(`${base}dags`);
      await page.waitForURL(like(`${base}login?next=**`));
      await page.locator("#username").waitFor();
      await snap("login");
      // A wrong password is an error in the form, not a crash.
      const doneWrong = w.allow((url, status) => status === 401 && url === `${base}auth/token`);
      await page.fill("#username", "admin");
      await page.fill("#password", "wrong");
      await page.click("form.login-card button[type=submit]");
      await page.getByText("Wrong username or password.").waitFor();
      doneWrong();
      await page.fill("#password", srv.password);
      await page.click("form.login-card button[type=submit]");
      await page.waitForURL(like(`${base}dags`));
      doneProbe();
      await page.locator(".who .name", { hasText: "admin" }).waitFor();
      assert.equal((await page.locator(".who .role").textContent()).toLowerCase(), "admin");
      w.check("login");
    });

    step("the DAG list shows the example DAGs and the import error", async () => {
      for (const id of ["example_bash_operator", dag, "example_task_group"]) {
        await page.locator(`tr[data-dag-id="${id}"] .dag-link`).waitFor();
      }
      await snap("dags");
      await page.click("#import-errors summary");
      const list = page.locator(".import-error-list");
      await list.locator(".ie-file", { hasText: "broken.yml" }).waitFor();
      await list.locator(".ie-line").first().waitFor();
      await snap("import-errors");
      // Filters: search narrows the list, and the URL keeps it.
      await page.fill("#dag-search", "task_group");
      await page.waitForFunction(() => document.querySelectorAll("table.dag-list tbody tr[data-dag-id]").length === 1);
      assert.match(page.url(), /search=task_group/);
      await page.fill("#dag-search", "");
      await page.waitForFunction(() => document.querySelectorAll("table.dag-list tbody tr[data-dag-id]").length === 3);
      w.check("DAG list");
    });

    step("backfill: the trigger dialog lists the dry run's dates, the DAG page shows its progress", async () => {
      const bfDag = "example_bash_operator";
      await page.goto(`${base}dags/${bfDag}/grid`);
      await page.click("#trigger");
      const dialog = page.locator("dialog[open]");
      await dialog.locator("#mode-backfill").check();
      await dialog.getByRole("button", { name: "Run backfill" }).waitFor();
      // Without a range the form refuses, next to the fields, and posts nothing.
      await dialog.getByRole("button", { name: "Run backfill" }).click();
      await dialog.locator("#backfill-from-error:not([hidden])", { hasText: "Required." }).waitFor();
      await dialog.locator("#backfill-from").fill("2024-01-01T00:00");
      await dialog.locator("#backfill-to").fill("2024-01-03T00:00");
      await dialog.locator("#backfill-max").fill("1");
      await dialog.locator("#backfill-backwards").check();
      await dialog.locator("#backfill-preview .count", { hasText: "3 runs will be made:" }).waitFor();
      assert.equal(await dialog.locator("#backfill-preview .dates li").count(), 3);
      // A range after its end is the server's refusal, shown in place of the dates.
      await dialog.locator("#backfill-to").fill("2023-12-01T00:00");
      const done422 = w.allow((url, status, method) => status === 422 && method !== "GET" && url.endsWith("/backfills/dry_run"));
      await dialog.locator("#backfill-preview .field-error", { hasText: "must not be after to_date" }).waitFor();
      await dialog.locator("#backfill-to").fill("2024-01-03T00:00");
      await dialog.locator("#backfill-preview .count", { hasText: "3 runs will be made:" }).waitFor();
      await snap("backfill-form");
      // Left paused, the DAG starts none of the runs, so the banner holds still.
      await dialog.locator("#trigger-unpause").uncheck();
      await dialog.getByRole("button", { name: "Run backfill" }).click();
      await dialog.waitFor({ state: "detached" });
      const banner = page.locator("#backfill-banner");
      await banner.getByText("0 of 3 runs").waitFor();
      await banner.getByText("Backfill in progress:").waitFor();
      const said = await banner.textContent();
      assert.match(said, /2024-01-01.*2024-01-03/, said);
      assert.match(said, /the DAG is paused/, said);
      await snap("backfill-banner");
      await banner.getByRole("button", { name: "Pause" }).click();
      await banner.getByText("Backfill paused:").waitFor();
      await banner.getByRole("button", { name: "Unpause" }).click();
      await banner.getByText("Backfill in progress:").waitFor();
      await banner.getByRole("button", { name: "Cancel" }).click();
      await banner.waitFor({ state: "detached" });
      // Chromium reports the refused dry run on the console a moment later: allowed
      // until here.
      w.check("backfill");
      done422();
      await page.goto(`${base}dags`);
      await page.locator(`tr[data-dag-id="${dag}"] .dag-link`).waitFor();
    });

    step("unpause and trigger a DAG from the form with a param", async () => {
      const row = page.locator(`tr[data-dag-id="${dag}"]`);
      const toggle = row.getByRole("switch");
      assert.equal(await toggle.getAttribute("aria-checked"), "false");
      await toggle.click();
      await page.waitForFunction((id) => document.querySelector(`tr[data-dag-id="${id}"] [role=switch]`)?.getAttribute("aria-checked") === "true", dag);
      await row.locator("button.trigger").click();
      const dialog = page.locator("dialog[open]");
      await dialog.locator("input[name=name]").waitFor();
      // Inline validation: a count that is not a number is refused next to the field.
      await dialog.locator("input[name=count]").fill("three");
      await dialog.getByText("Enter a whole number.").first().waitFor();
      await dialog.getByRole("button", { name: "Trigger" }).click();
      await dialog.getByText("Fix the fields marked in red.").waitFor();
      await snap("trigger-invalid");
      await dialog.locator("input[name=count]").fill("2");
      await dialog.locator("input[name=name]").fill(`ui ${label}`);
      await dialog.locator("summary").click();
      const conf = JSON.parse(await dialog.locator("#trigger-conf").inputValue());
      assert.deepEqual(conf, { name: `ui ${label}`, count: 2 });
      await snap("trigger-form");
      await dialog.getByRole("button", { name: "Trigger" }).click();
      await page.waitForURL(like(`${base}dags/${dag}/grid?run=**`));
      runId = new URL(page.url()).searchParams.get("run");
      assert.match(runId, /^manual__/);
      w.check("trigger");
    });

    step("the run turns green in the grid and in the graph", async () => {
      await page.locator(".run-panel").waitFor();
      await page.locator(`a.run-bar-link[aria-label="Run ${runId}: success"]`).waitFor({ timeout: RUN_TIMEOUT });
      for (const task of ["greet", "flaky", "push", "pull"]) {
        await page.locator(`a.sq[aria-label="${task} in ${runId}: success"]`).waitFor();
      }
      await snap("grid-success");
      await page.getByRole("link", { name: "Graph", exact: true }).click();
      await page.waitForURL(like(`**/dags/${dag}/graph?run=**`));
      await page.waitForFunction(() => document.querySelectorAll("svg.graph .node.task-node.st-success").length === 4);
      await snap("graph-success");
      await page.emulateMedia({ colorScheme: "dark" });
      await snap("graph-dark");
      await page.emulateMedia({ colorScheme: "light" });
      w.check("grid and graph");
    });

    step("times show in the time zone chosen in the header, and the choice sticks", async () => {
      const stamp = page.locator("main time[datetime]").first();
      await stamp.waitFor();
      const iso = await stamp.getAttribute("datetime");
      // What 2026-11-21 09:59:03 looks like for that instant in a zone, by the browser's rules.
      const inZone = (zone) => page.evaluate(([t, z]) => {
        const p = Object.fromEntries(new Intl.DateTimeFormat("en-CA", { timeZone: z, hourCycle: "h23", year: "numeric",
          month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
          .formatToParts(new Date(t)).map((x) => [x.type, x.value]));
        return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
      }, [iso, zone]);
      const shows = (zone) => page.waitForFunction(([t, want]) =>
        [...document.querySelectorAll(`main time[datetime="${t}"]`)].some((e) => e.textContent === want), [iso, zone]);
      const original = await page.locator("#timezone").inputValue();
      for (const zone of ["Asia/Tokyo", "America/New_York"]) {
        await page.selectOption("#timezone", zone);
        await shows(await inZone(zone));
      }
      await page.reload();
      assert.equal(await page.locator("#timezone").inputValue(), "America/New_York");
      await shows(await inZone("America/New_York"));
      await snap("time-zone");
      await page.selectOption("#timezone", original);
      await shows(await inZone(original));
      w.check("time zone");
    });

    step("the trigger form shows the server's refusal next to the field", async () => {
      await page.click("#trigger");
      const dialog = page.locator("dialog[open]");
      await dialog.locator("summary").click();
      // Hand-typed conf that is not JSON is refused with its error, kept as typed (a
      // field edit does not overwrite it), and nothing is triggered.
      const posts = [];
      const countPost = (r) => r.method() === "POST" && r.url().endsWith("/dagRuns") && posts.push(r.url());
      page.on("request", countPost);
      await dialog.locator("#trigger-conf").fill("{not json");
      await dialog.locator("#trigger-conf-error", { hasText: "Not valid JSON" }).waitFor();
      await dialog.locator("input[name=count]").fill("5");
      await dialog.getByRole("button", { name: "Trigger" }).click();
      await dialog.getByText("Fix the fields marked in red.").waitFor();
      await dialog.locator("#trigger-conf-error:not([hidden])", { hasText: "Not valid JSON" }).waitFor();
      assert.equal(await dialog.locator("#trigger-conf").inputValue(), "{not json");
      assert.deepEqual(posts, [], "invalid conf JSON triggers nothing");
      await snap("trigger-bad-conf");
      await dialog.locator("#trigger-conf").fill('{"name": "again", "count": 1}');
      await dialog.locator("#trigger-run-id").fill(runId);
      // A duplicate run id: the form shows the API's 409 detail, Airflow's unique
      // constraint reason, not only the message that points at the server log.
      const done409 = w.allow((url, status, method) => status === 409 && method !== "GET" && url.endsWith("/dagRuns"));
      await dialog.getByRole("button", { name: "Trigger" }).click();
      await dialog.locator("#trigger-run-id-error:not([hidden])", { hasText: "Unique constraint violation" }).waitFor();
      assert.equal(posts.length, 1, "the fixed form triggers once");
      page.off("request", countPost);
      await snap("trigger-duplicate");
      done409();
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await dialog.waitFor({ state: "detached" });
      w.check("trigger refusal");
    });

    step("a task's log shows the rendered param", async () => {
      await page.locator('svg.graph a.node[aria-label^="greet"]').click();
      await page.waitForURL(like(`**/dags/${dag}/graph?run=**&task=greet`));
      const panel = page.locator(".ti-panel");
      await panel.locator(".panel-title", { hasText: "greet" }).waitFor();
      await panel.locator("#ti-log", { hasText: `hello ui ${label}, 2 times` }).waitFor({ timeout: 20_000 });
      await snap("task-log");
      await panel.getByRole("button", { name: "Details" }).click();
      await panel.locator("pre.code", { hasText: `hello ui ${label}, 2 times` }).waitFor();
      await snap("task-details");
      await panel.getByRole("button", { name: "Log" }).click();
      // The flaky task failed once: both tries and their logs are there.
      await page.locator('svg.graph a.node[aria-label^="flaky"]').click();
      await panel.locator(".panel-title", { hasText: "flaky" }).waitFor();
      await panel.locator("button.try", { hasText: "2" }).waitFor();
      await panel.locator("#ti-log", { hasText: "succeeds" }).waitFor({ timeout: 20_000 });
      await panel.locator("button.try", { hasText: "1" }).click();
      await panel.locator("#ti-log", { hasText: "first try fails" }).waitFor({ timeout: 20_000 });
      await snap("task-log-try1");
      // XCom of push: the last line of its output.
      await page.locator('svg.graph a.node[aria-label^="push"]').click();
      await panel.locator(".panel-title", { hasText: "push" }).waitFor();
      await panel.getByRole("button", { name: "XCom" }).click();
      await panel.locator(".xcoms", { hasText: "return_value" }).waitFor();
      await snap("task-xcom");
      w.check("task log");
    });

    step("clearing a task runs it again", async () => {
      await page.locator('svg.graph a.node[aria-label^="pull"]').click();
      const panel = page.locator(".ti-panel");
      await panel.locator(".panel-title", { hasText: "pull" }).waitFor();
      await panel.locator(".badge.st-success").first().waitFor();
      const before = await page.evaluate(() => document.querySelectorAll(".ti-panel button.try").length);
      await panel.getByRole("button", { name: "Clear", exact: true }).click();
      const dialog = page.locator("dialog[open]");
      await dialog.locator(".affected", { hasText: "pull" }).waitFor();
      await snap("clear-confirm");
      await dialog.getByRole("button", { name: "Clear", exact: true }).click();
      await dialog.waitFor({ state: "detached" });
      await panel.locator("button.try", { hasText: String(before + 1) }).waitFor({ timeout: RUN_TIMEOUT });
      await panel.locator(".panel-state .badge.st-success").waitFor({ timeout: RUN_TIMEOUT });
      await panel.locator("#ti-log", { hasText: "the answer was 42" }).waitFor({ timeout: 20_000 });
      await snap("cleared-rerun");
      w.check("clear");
    });

    step("deep links survive a reload, and back and forward work", async () => {
      const deep = `${base}dags/${dag}/grid?run=${encodeURIComponent(runId)}&task=greet`;
      await page.goto(deep);
      await page.locator(".ti-panel .panel-title", { hasText: "greet" }).waitFor();
      await page.reload();
      await page.locator(".ti-panel .panel-title", { hasText: "greet" }).waitFor();
      await page.locator("table.grid").waitFor();
      await snap("deep-link-reload");
      await page.getByRole("link", { name: "Code", exact: true }).click();
      await page.waitForURL(like(`**/dags/${dag}/code?**`));
      await page.locator(".source .src-line.hl", { hasText: "task_id: greet" }).waitFor();
      await snap("code");
      await page.getByRole("link", { name: "Details", exact: true }).click();
      await page.locator(".details", { hasText: "Params" }).waitFor();
      await snap("details");
      await page.getByRole("link", { name: "Runs", exact: true }).click();
      await page.locator("table.runs", { hasText: runId }).waitFor();
      await snap("runs");
      await page.goBack();
      await page.waitForURL(like(`**/dags/${dag}/details?**`));
      await page.locator(".details").waitFor();
      await page.goBack();
      await page.waitForURL(like(`**/dags/${dag}/code?**`));
      await page.locator(".source").waitFor();
      await page.goForward();
      await page.waitForURL(like(`**/dags/${dag}/details?**`));
      await page.locator(".details").waitFor();
      w.check("deep links");
    });

    step("the task group DAG draws its groups, and they collapse", async () => {
      await page.goto(`${base}dags/example_task_group/graph`);
      await page.locator("svg.graph .group-box").nth(2).waitFor();
      await snap("graph-groups");
      await page.locator("svg.graph .group-head").first().click();
      await page.locator('svg.graph .group-node[aria-expanded="false"][aria-label^="section_1 "]').waitFor();
      await page.getByRole("link", { name: "Grid", exact: true }).click();
      await page.locator('table.grid .group-toggle[data-key="group:section_2"]').waitFor();
      await page.locator('table.grid .group-toggle[data-key="group:section_2"]').click();
      await page.waitForFunction(() => !document.querySelector("table.grid a.task-name[title='section_2.task_3']"));
      await snap("grid-groups");
      w.check("groups");
    });

    step("create, edit and delete a variable", async () => {
      await page.getByRole("link", { name: "Variables", exact: true }).click();
      await page.waitForURL(like(`${base}admin/variables`));
      await page.click("#add");
      const dialog = page.locator("dialog[open]");
      await dialog.locator("#f-key").fill("ui_test_var");
      await dialog.locator("#f-value").fill("first value");
      await dialog.locator("#f-description").fill("made by the browser test");
      await snap("variable-new");
      await dialog.getByRole("button", { name: "Create" }).click();
      const row = page.locator('tr[data-id="ui_test_var"]');
      await row.getByText("first value").waitFor();
      await snap("variables");
      await row.getByRole("button", { name: "Edit ui_test_var" }).click();
      await dialog.locator("#f-value").fill("second value");
      await dialog.getByRole("button", { name: "Save" }).click();
      await row.getByText("second value").waitFor();
      await row.getByRole("button", { name: "Delete ui_test_var" }).click();
      await snap("variable-delete");
      await dialog.getByRole("button", { name: "Delete" }).click();
      await row.waitFor({ state: "detached" });
      w.check("variables");
    });

    step("connections mask passwords; pools list the default pool", async () => {
      await page.getByRole("link", { name: "Connections", exact: true }).click();
      await page.click("#add");
      const dialog = page.locator("dialog[open]");
      await dialog.locator("#f-connection_id").fill("ui_conn");
      await dialog.locator("#f-conn_type").fill("http");
      await dialog.locator("#f-host").fill("example.com");
      await dialog.locator("#f-password").fill("s3cret");
      await dialog.getByRole("button", { name: "Create" }).click();
      const row = page.locator('tr[data-id="ui_conn"]');
      await row.locator(".masked").waitFor();
      assert.ok(!(await page.content()).includes("s3cret"), "the password is not on the page");
      // The form follows the type: a SQLite file has no port or login; a folder (fs)
      // has only its path, kept in extra.
      await page.click("#add");
      await dialog.locator("#f-conn_type").fill("sqlite");
      assert.ok(await dialog.locator("#f-port").isHidden(), "sqlite shows no port");
      assert.equal(await dialog.locator('label[for="f-host"]').innerText(), "Database file");
      await dialog.locator("#f-conn_type").fill("fs");
      assert.ok(await dialog.locator("#f-host").isHidden(), "fs shows no host");
      await dialog.locator("#f-connection_id").fill("ui_fs");
      await dialog.locator("#f-path").fill("/data/in");
      await dialog.getByRole("button", { name: "Create" }).click();
      const fsRow = page.locator('tr[data-id="ui_fs"]');
      await fsRow.waitFor();
      await fsRow.getByRole("button", { name: "Edit ui_fs" }).click();
      assert.equal(await dialog.locator("#f-path").inputValue(), "/data/in");
      assert.equal(JSON.parse(await dialog.locator("#f-extra").inputValue()).path, "/data/in");
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await snap("connections");
      await page.getByRole("link", { name: "Pools", exact: true }).click();
      await page.locator('tr[data-id="default_pool"]').waitFor();
      await snap("pools");
      w.check("connections and pools");
    });

    step("about shows version, scheduler heartbeat, workers and the execution URL check", async () => {
      await page.getByRole("link", { name: "About", exact: true }).click();
      await page.locator("#execution-check .health.ok").waitFor({ timeout: 20_000 });
      await page.locator(".card", { hasText: "Scheduler" }).locator(".health.ok").waitFor();
      await page.locator(".card", { hasText: "API server" }).getByText("Generation").waitFor();
      // updraft's own version, and the Airflow version whose API it implements.
      assert.match(await page.locator("#updraft-version").innerText(), /^v\d+\.\d+\.\d+/);
      assert.equal(await page.locator("#airflow-version").innerText(), "Implements the Apache Airflow 3.3.2 API");
      await snap("about");
      w.check("about");
    });

    step("small screens get a readable layout", async () => {
      await page.setViewportSize({ width: 760, height: 900 });
      await page.goto(`${base}dags`);
      await page.locator(`tr[data-dag-id="${dag}"]`).waitFor();
      await snap("dags-small");
      await page.goto(`${base}dags/${dag}/grid?run=${encodeURIComponent(runId)}&task=greet`);
      await page.locator(".ti-panel .panel-state .badge.st-success").waitFor();
      await page.locator(".ti-panel #ti-log > .log-line").first().waitFor();
      await snap("dag-small");
      await page.setViewportSize({ width: 1280, height: 800 });
      w.check("small screens");
    });

    step("log out", async () => {
      const doneProbe = w.allow(meProbe(base));
      await w.nav(async () => {
        await page.click("#logout");
        await page.waitForURL(like(`${base}login`));
      });
      await page.locator("#username").waitFor();
      await page.goto(`${base}dags`);
      await page.waitForURL(like(`${base}login?next=**`));
      await snap("logged-out");
      doneProbe();
      w.check("logout");
    });

    step("logging in from a deep link to a run whose id holds +00:00 opens that run", async () => {
      assert.match(runId, /\+00:00$/);
      const doneProbe = w.allow(meProbe(base));
      // The link as pasted from the API or CLI: the run id's `+` and `:` raw.
      const deep = `dags/${dag}/grid?run=${runId}&task=greet`;
      const logInAndCheck = async (what) => {
        await page.locator("#username").waitFor();
        await page.fill("#username", "admin");
        await page.fill("#password", srv.password);
        await page.click("form.login-card button[type=submit]");
        await page.locator(".ti-panel .panel-title", { hasText: "greet" }).waitFor();
        await page.waitForFunction((id) => [...document.querySelectorAll(".ti-panel a")].some((a) => a.textContent === id), runId);
        await page.locator(".ti-panel .panel-state .badge.st-success").waitFor();
        await snap(`deep-link-login-${what}`);
      };
      const logOut = () => w.nav(async () => {
        await page.click("#logout");
        await page.waitForURL(like(`${base}login`));
      });
      // The UI's own redirect to login: a navigation until the login page is there.
      await w.nav(async () => {
        await page.goto(`${base}${deep}`);
        await page.waitForURL(like(`${base}login?next=**`));
      });
      await logInAndCheck("ui");
      // Airflow's login route, which the server answers with a redirect keeping `next`.
      await logOut();
      await w.nav(async () => {
        await page.goto(`${base}api/v2/auth/login?next=${encodeURIComponent(new URL(base).pathname + deep)}`);
        await page.waitForURL(like(`${base}login?next=**`));
      });
      await logInAndCheck("api");
      doneProbe();
      w.check("deep link login");
    });
  });
}

describe("all-admins mode and a base_url without the port", { concurrency: false }, () => {
  let srv;
  let ctx;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));
  before(async () => {
    // As Airflow's issue #49725: the UI works, but tasks would call port 80. And with
    // simple_auth_manager_all_admins there is no login page at all.
    srv = await startServer({ baseUrl: "http://127.0.0.1/d12345", env: { UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS: "True" } });
    ctx = await launch(profile);
  });
  after(async () => {
    await ctx?.close();
    await stopServer(srv);
    fs.rmSync(profile, { recursive: true, force: true });
  });

  test("skips the login and shows the execution URL check in red", async () => {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const w = watch(page, srv.url);
    await page.goto(`${srv.url}about`);
    await page.locator(".who .role", { hasText: "admin" }).waitFor();
    assert.equal(await page.locator("#logout").count(), 0, "no log out button when everyone is admin");
    await page.locator("#execution-check.card-bad .health.bad").waitFor({ timeout: 30_000 });
    await page.locator("#execution-check", { hasText: "http://127.0.0.1/d12345/execution/" }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, "all-admins-no-port-about.png") });
    w.check("execution check");
  });
});

describe("a mapped task in the grid and the task panel", { concurrency: false }, () => {
  let srv;
  let ctx;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));
  const MAPPED_YAML = [
    "mapped:",
    "  schedule: null",
    "  start_date: 2024-01-01",
    "  tasks:",
    "    - task_id: m",
    "      operator: airflow.providers.standard.operators.bash.BashOperator",
    "      map_index_template: 'item {{ ti.map_index }}'",
    "      expand:",
    "        bash_command: ['echo one', 'exit 3', 'echo three']",
    "",
  ].join("\n");
  const env = {
    UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS: "True",
    UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION: "False",
    UPDRAFT__CORE__LOAD_EXAMPLES: "False",
  };
  before(async () => {
    srv = await startServer({ env, files: { "mapped.yml": MAPPED_YAML } });
    ctx = await launch(profile);
  });
  after(async () => {
    await ctx?.close();
    await stopServer(srv);
    fs.rmSync(profile, { recursive: true, force: true });
  });

  test("one cell counts the instances by state, and the panel opens each instance", async () => {
    const { spawnSync } = await import("node:child_process");
    const trigger = spawnSync(BIN, ["dags", "trigger", "mapped"], {
      env: { PATH: process.env.PATH, UPDRAFT_HOME: srv.home, ...env }, encoding: "utf8",
    });
    assert.equal(trigger.status, 0, trigger.stderr);
    const runId = trigger.stdout.trim();
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const w = watch(page, srv.url);
    await page.goto(`${srv.url}dags/mapped/grid?run=${encodeURIComponent(runId)}`);
    const cell = page.locator(`a.sq.mapped[aria-label="m in ${runId}: failed"]`);
    await cell.waitFor({ timeout: RUN_TIMEOUT });
    assert.match(await cell.getAttribute("title"), /3 mapped: (2 success, 1 failed|1 failed, 2 success)/);
    await page.screenshot({ path: path.join(SHOTS, "mapped-grid.png") });
    await cell.click();
    const panel = page.locator(".ti-panel");
    const items = panel.locator(".instance-list li");
    await items.nth(2).waitFor();
    assert.equal(await items.count(), 3);
    await panel.locator(".instance-list li", { hasText: "item 1" }).locator(".badge.st-failed").waitFor();
    await page.screenshot({ path: path.join(SHOTS, "mapped-instances.png") });
    await panel.getByRole("link", { name: "item 1" }).click();
    await page.waitForURL(like(`**/dags/mapped/grid?**map_index=1**`));
    await panel.locator(".eyebrow", { hasText: "map index 1" }).waitFor();
    await panel.locator(".panel-state .badge.st-failed").waitFor();
    await panel.locator("#ti-log", { hasText: "exit 3" }).waitFor({ timeout: 20_000 });
    await page.screenshot({ path: path.join(SHOTS, "mapped-instance-log.png") });
    // The graph marks the mapped task with its count of instances in the run.
    await page.goto(`${srv.url}dags/mapped/graph?run=${encodeURIComponent(runId)}`);
    await page.locator("svg.graph a.node .node-sub", { hasText: "BashOperator [3] · failed" }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, "mapped-graph.png") });
    w.check("mapped task");
  });
});

describe("DAG versions in the Code tab and the run panel", { concurrency: false }, () => {
  let srv;
  let ctx;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));
  const yaml = (word) => [
    "versioned:",
    "  schedule: null",
    "  start_date: 2024-01-01",
    "  tasks:",
    "    - task_id: say",
    "      operator: airflow.providers.standard.operators.bash.BashOperator",
    `      bash_command: 'echo ${word}'`,
    "",
  ].join("\n");
  const env = {
    UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS: "True",
    UPDRAFT__CORE__LOAD_EXAMPLES: "False",
    UPDRAFT__SCHEDULER__DAG_DIR_LIST_INTERVAL: "1",
  };
  before(async () => {
    srv = await startServer({ env, files: { "versioned.yml": yaml("first") } });
    ctx = await launch(profile);
  });
  after(async () => {
    await ctx?.close();
    await stopServer(srv);
    fs.rmSync(profile, { recursive: true, force: true });
  });

  test("an edited file makes a second version; both sources show, and each run names its version", async () => {
    const { spawnSync } = await import("node:child_process");
    const trigger = () => {
      const r = spawnSync(BIN, ["dags", "trigger", "versioned"], {
        env: { PATH: process.env.PATH, UPDRAFT_HOME: srv.home, ...env }, encoding: "utf8",
      });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim();
    };
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const w = watch(page, srv.url);
    const source = page.locator(".code-view pre.source");
    const picker = page.locator("#code-version");
    await page.goto(`${srv.url}dags/versioned/code`);
    await source.filter({ hasText: "echo first" }).waitFor({ timeout: RUN_TIMEOUT });
    assert.equal(await picker.locator("option").count(), 1);
    const first = trigger();
    // The edit makes version 2; the open page picks it up as it polls.
    fs.writeFileSync(path.join(srv.home, "dags", "versioned.yml"), yaml("second"));
    await source.filter({ hasText: "echo second" }).waitFor({ timeout: RUN_TIMEOUT });
    assert.equal(await picker.locator("option").count(), 2);
    assert.match(await picker.locator("option:checked").innerText(), /^v2 \(latest\)/);
    const second = trigger();
    await page.screenshot({ path: path.join(SHOTS, "versions-code-v2.png") });
    // The older version's file, by the picker.
    await picker.selectOption("1");
    await page.waitForURL(like("**/dags/versioned/code?version=1"));
    await source.filter({ hasText: "echo first" }).waitFor();
    assert.ok(!(await source.innerText()).includes("echo second"));
    await page.screenshot({ path: path.join(SHOTS, "versions-code-v1.png") });
    // Each run's panel names the version it ran with, linked to that version's file.
    await page.goto(`${srv.url}dags/versioned/grid?run=${encodeURIComponent(second)}`);
    await page.locator("#run-dag-versions .run-dag-version", { hasText: "v2" }).waitFor();
    await page.goto(`${srv.url}dags/versioned/grid?run=${encodeURIComponent(first)}`);
    const v1 = page.locator("#run-dag-versions .run-dag-version", { hasText: "v1" });
    await v1.waitFor();
    await page.screenshot({ path: path.join(SHOTS, "versions-run-panel.png") });
    await v1.click();
    await page.waitForURL(like("**/dags/versioned/code?version=1"));
    await source.filter({ hasText: "echo first" }).waitFor();
    assert.match(await picker.locator("option:checked").innerText(), /^v1 /);
    w.check("DAG versions");
  });
});

describe("human in the loop under /d12345", { concurrency: false }, () => {
  let srv;
  let ctx;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));
  const APPROVAL_YAML = [
    "approval:",
    "  schedule: null",
    "  start_date: 2024-01-01",
    "  tasks:",
    "    - task_id: ask",
    "      operator: airflow.providers.standard.operators.hitl.ApprovalOperator",
    "      subject: 'Ship {{ dag_run.dag_id }}?'",
    "      body: 'Release notes are ready.'",
    "    - task_id: ship",
    "      operator: airflow.providers.standard.operators.bash.BashOperator",
    "      bash_command: echo shipped",
    "      dependencies: [ask]",
    "",
  ].join("\n");
  const env = {
    UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS: "True",
    UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION: "False",
    UPDRAFT__CORE__LOAD_EXAMPLES: "False",
  };
  before(async () => {
    srv = await startServerAt("/d12345", { env, files: { "approval.yml": APPROVAL_YAML } });
    ctx = await launch(profile);
  });
  after(async () => {
    await ctx?.close();
    await stopServer(srv);
    fs.rmSync(profile, { recursive: true, force: true });
  });

  const trigger = async () => {
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync(BIN, ["dags", "trigger", "approval"], {
      env: { PATH: process.env.PATH, UPDRAFT_HOME: srv.home, ...env }, encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };

  test("an approval is answered on the Required actions page and a rejection from the task panel", async () => {
    assert.match(srv.url, /\/d12345\/$/);
    const first = await trigger();
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const w = watch(page, srv.url);
    // A task panel opened before its task has a log asks for it and is told 404 (and
    // shows "No log for this try yet").
    w.allow((url, status) => status === 404 && /\/logs\/\d+$/.test(url));
    await page.goto(`${srv.url}required_actions`);
    const card = page.locator("#hitl-waiting .hitl-card", { hasText: "Ship approval?" });
    await card.waitFor({ timeout: RUN_TIMEOUT });
    await card.getByText("Release notes are ready.").waitFor();
    // The navigation bar counts what waits.
    await page.locator("#hitl-badge:not([hidden])", { hasText: "1" }).waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(SHOTS, "hitl-required-actions.png") });
    await card.getByLabel("Approve").check();
    await card.getByRole("button", { name: "Respond" }).click();
    await page.locator("#hitl-waiting", { hasText: "Nothing waits for an answer." }).waitFor({ timeout: 30_000 });
    await page.locator("#hitl-answered .hitl-card", { hasText: "Answered Approve by admin" }).waitFor();
    await page.locator("#hitl-badge[hidden]").waitFor({ state: "attached", timeout: 30_000 });
    // The approved run goes on: `ship` runs.
    await page.goto(`${srv.url}dags/approval/grid?run=${encodeURIComponent(first)}&task=ship`);
    await page.locator(".ti-panel .panel-state .badge.st-success").waitFor({ timeout: RUN_TIMEOUT });

    // A second run, rejected from its task panel: `ship` is skipped.
    const second = await trigger();
    await page.goto(`${srv.url}dags/approval/grid?run=${encodeURIComponent(second)}&task=ask`);
    const panel = page.locator(".ti-panel");
    await panel.locator(".panel-state .badge.st-awaiting_input").waitFor({ timeout: RUN_TIMEOUT });
    const form = panel.locator(".hitl-in-panel form.hitl-form");
    await form.waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(SHOTS, "hitl-ti-panel.png") });
    await form.getByLabel("Reject").check();
    await form.getByRole("button", { name: "Respond" }).click();
    await panel.locator(".panel-state .badge.st-success").waitFor({ timeout: RUN_TIMEOUT });
    await panel.locator(".hitl-in-panel", { hasText: "Answered Reject by admin" }).waitFor({ timeout: 30_000 });
    await page.goto(`${srv.url}dags/approval/grid?run=${encodeURIComponent(second)}&task=ship`);
    await page.locator(".ti-panel .panel-state .badge.st-skipped").waitFor({ timeout: RUN_TIMEOUT });
    // Airflow's link to a task's request (`generate_link_to_ui`) opens that task's panel.
    await page.goto(`${srv.url}dags/approval/runs/${encodeURIComponent(second)}/tasks/ask/required_actions?map_index=-1`);
    await page.waitForURL(like(`${srv.url}dags/approval/grid?**task=ask**`));
    await page.locator(".ti-panel .hitl-in-panel", { hasText: "Answered Reject by admin" }).waitFor({ timeout: 30_000 });
    w.check("human in the loop");
  });
});

describe("an asset schedule on the DAG's details", { concurrency: false }, () => {
  let srv;
  let ctx;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));
  const YAML = [
    "on_assets:",
    "  schedule:",
    "    __or__:",
    "      - __and__:",
    "        - {__type__: airflow.sdk.Asset, uri: 's3://b/a'}",
    "        - {__type__: airflow.sdk.Asset, uri: 's3://b/b'}",
    "      - {__type__: airflow.sdk.Asset, name: c}",
    "  start_date: 2024-01-01",
    "  tasks:",
    "    - task_id: t",
    "      operator: airflow.providers.standard.operators.bash.BashOperator",
    "      bash_command: 'echo 1'",
    "",
  ].join("\n");
  const env = { UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS: "True", UPDRAFT__CORE__LOAD_EXAMPLES: "False" };
  before(async () => {
    srv = await startServer({ env, files: { "on_assets.yml": YAML } });
    ctx = await launch(profile);
  });
  after(async () => {
    await ctx?.close();
    await stopServer(srv);
    fs.rmSync(profile, { recursive: true, force: true });
  });

  test("shows the condition in words", async () => {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const w = watch(page, srv.url);
    await page.goto(`${srv.url}dags/on_assets/details`);
    await page.locator(".details code.asset-condition", { hasText: "on (s3://b/a & s3://b/b) | c" }).waitFor({ timeout: RUN_TIMEOUT });
    await page.screenshot({ path: path.join(SHOTS, "asset-schedule-details.png") });
    w.check("asset schedule");
  });
});

describe("assets under /d12345", { concurrency: false }, () => {
  let srv;
  let ctx;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));
  const YAML = [
    "producer:",
    "  schedule: null",
    "  start_date: 2024-01-01",
    "  tasks:",
    "    - task_id: make",
    "      operator: airflow.providers.standard.operators.bash.BashOperator",
    "      bash_command: 'echo made'",
    "      outlets: ['s3://bucket/orders']",
    "consumer:",
    "  schedule: ['s3://bucket/orders']",
    "  start_date: 2024-01-01",
    "  tasks:",
    "    - task_id: use",
    "      operator: airflow.providers.standard.operators.bash.BashOperator",
    "      bash_command: 'echo used'",
    "either:",
    "  catchup: false",
    "  start_date: 2024-01-01",
    "  schedule:",
    "    __type__: airflow.timetables.assets.AssetOrTimeSchedule",
    "    timetable: {__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 1 * * 5', timezone: UTC}",
    "    assets: [{__type__: airflow.sdk.Asset, uri: 's3://bucket/orders'}]",
    "  tasks:",
    "    - task_id: t",
    "      operator: airflow.providers.standard.operators.bash.BashOperator",
    "      bash_command: 'echo either'",
    "",
  ].join("\n");
  // alice has the user role: she may trigger DAGs but not create asset events (op and admin may).
  const env = {
    UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_USERS: "admin:admin,alice:user",
    UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION: "False",
    UPDRAFT__CORE__LOAD_EXAMPLES: "False",
  };
  before(async () => {
    srv = await startServerAt("/d12345", { env, files: { "assets.yml": YAML } });
    ctx = await launch(profile);
  });
  after(async () => {
    await ctx?.close();
    await stopServer(srv);
    fs.rmSync(profile, { recursive: true, force: true });
  });

  let adminToken;
  const auth = () => ({ Authorization: `Bearer ${adminToken}` });
  /** The consumer's runs, through the API. */
  const consumerRuns = async () => {
    const res = await fetch(`${srv.url}api/v2/dags/consumer/dagRuns`, { headers: auth() });
    assert.equal(res.status, 200);
    return (await res.json()).dag_runs;
  };

  test("a producer's event, a created event, the consumers' runs and the schedules in words", async () => {
    assert.match(srv.url, /\/d12345\/$/);
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const w = watch(page, srv.url);
    const tok = await fetch(`${srv.url}auth/token`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: "admin", password: srv.password }),
    });
    assert.equal(tok.status, 201, await tok.clone().text());
    adminToken = (await tok.json()).access_token;
    // The DAGs are parsed before the first run can be triggered.
    let res;
    for (let i = 0; i < 300; i++) {
      res = await fetch(`${srv.url}api/v2/dags/producer/dagRuns`, {
        method: "POST", headers: { "Content-Type": "application/json", ...auth() }, body: JSON.stringify({ logical_date: null }),
      });
      if (res.status !== 404) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(res.status, 200, await res.text());

    /** Logs in through the login page, from a deep link to the asset list. */
    const login = async (username, password) => {
      const doneProbe = w.allow(meProbe(srv.url));
      await page.goto(`${srv.url}assets`);
      await page.waitForURL(like(`${srv.url}login?next=**`));
      await page.fill("#username", username);
      await page.fill("#password", password);
      await page.click("form.login-card button[type=submit]");
      await page.waitForURL(like(`${srv.url}assets`));
      await page.locator(".who .name", { hasText: username }).waitFor();
      doneProbe();
    };
    await login("admin", srv.password);

    // The list: the asset, its consumer DAG and its producing task, and a last event.
    await page.locator("nav.main-nav a[aria-current=page]", { hasText: "Assets" }).waitFor();
    const row = page.locator("table.asset-list tbody tr", { hasText: "s3://bucket/orders" });
    await row.waitFor({ timeout: RUN_TIMEOUT });
    await row.locator(".col-consumers a", { hasText: "consumer" }).waitFor();
    await row.locator(".col-producers", { hasText: "producer · make" }).waitFor();
    await row.locator(".col-last-event").filter({ hasNotText: "Never" }).waitFor({ timeout: RUN_TIMEOUT });
    await page.screenshot({ path: path.join(SHOTS, "assets-list.png") });
    // Searchable, by name or URI.
    await page.fill("#asset-search", "nothing-like-it");
    await page.locator("table.asset-list .empty", { hasText: "No asset matches this search." }).waitFor();
    await page.waitForURL(like(`${srv.url}assets?search=nothing-like-it`));
    await page.fill("#asset-search", "bucket/ord");
    await row.waitFor();

    // The asset's page: the producer's event, where it came from, and the run it triggered.
    await row.locator("a.asset-link").click();
    await page.waitForURL(like(`${srv.url}assets/**`));
    const events = page.locator("#asset-events table.asset-events tbody tr");
    await events.first().locator(".event-source", { hasText: "producer" }).waitFor({ timeout: RUN_TIMEOUT });
    await events.first().locator(".event-source code", { hasText: "make" }).waitFor();
    await events.first().locator(".created-runs a", { hasText: "consumer · asset_triggered__" }).waitFor({ timeout: RUN_TIMEOUT });
    await page.locator(".asset-consumers a", { hasText: "consumer" }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, "asset-page.png") });
    assert.equal((await consumerRuns()).length, 1);

    // "Create event": a bad extra is refused in the API's words, a good one triggers the consumer.
    const done = w.allow((url, status, method) => status === 422 && url === `${srv.url}api/v2/assets/events` && method !== "GET");
    await page.click("#create-event");
    const dialog = page.locator("dialog");
    await dialog.locator("#event-extra").fill("[1]");
    await dialog.getByRole("button", { name: "Create event" }).click();
    await dialog.locator(".form-error", { hasText: "extra: Input should be a valid dictionary" }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, "asset-create-event-error.png") });
    await dialog.locator("#event-extra").fill('{"rows": 42}');
    await dialog.getByRole("button", { name: "Create event" }).click();
    await dialog.waitFor({ state: "detached" });
    done();
    const manual = events.filter({ hasText: '"rows": 42' });
    await manual.locator(".created-runs a", { hasText: "consumer · asset_triggered__" }).waitFor({ timeout: RUN_TIMEOUT });
    await events.nth(1).waitFor();
    assert.equal(await events.count(), 2);
    await page.screenshot({ path: path.join(SHOTS, "asset-page-created-event.png") });
    const runs = await consumerRuns();
    assert.equal(runs.length, 2);

    // The DAG list shows the asset schedule in words.
    await page.goto(`${srv.url}dags`);
    await page.locator('tr[data-dag-id="consumer"] .col-schedule code.asset-schedule', { hasText: "on s3://bucket/orders" }).waitFor({ timeout: RUN_TIMEOUT });
    await page.locator('tr[data-dag-id="either"] .col-schedule code.asset-schedule', { hasText: "on s3://bucket/orders or 0 1 * * 5" }).waitFor();
    assert.equal(await page.locator('tr[data-dag-id="producer"] .col-schedule').innerText(), "None");
    await page.screenshot({ path: path.join(SHOTS, "assets-dag-list.png") });

    // The DAG pages: what each consumes and produces, linked to the asset; the run's triggering events.
    await page.goto(`${srv.url}dags/producer/grid`);
    await page.locator(".dag-produces a", { hasText: "s3://bucket/orders" }).waitFor({ timeout: RUN_TIMEOUT });
    const newest = runs.filter((r) => r.run_type === "asset_triggered").sort((a, b) => a.run_after.localeCompare(b.run_after)).at(-1);
    await page.goto(`${srv.url}dags/consumer/grid?run=${encodeURIComponent(newest.dag_run_id)}`);
    await page.locator(".dag-head code.asset-schedule", { hasText: "on s3://bucket/orders" }).waitFor({ timeout: RUN_TIMEOUT });
    await page.locator(".dag-consumes a", { hasText: "s3://bucket/orders" }).waitFor();
    const triggering = page.locator(".run-panel #run-asset-events .asset-events-list li");
    await triggering.first().waitFor({ timeout: RUN_TIMEOUT });
    await triggering.first().locator(".event-extra", { hasText: '"rows":42' }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, "assets-consumer-run.png") });
    await page.locator(".dag-consumes a", { hasText: "s3://bucket/orders" }).click();
    await page.waitForURL(like(`${srv.url}assets/**`));
    await events.first().waitFor({ timeout: RUN_TIMEOUT });
    const assetPage = page.url();
    await page.locator("#create-event").waitFor();

    // A role that may not create events sees the events but no button.
    const doneProbe = w.allow(meProbe(srv.url));
    await w.nav(async () => {
      await page.click("#logout");
      await page.waitForURL(like(`${srv.url}login`));
    });
    doneProbe();
    const generated = JSON.parse(fs.readFileSync(path.join(srv.home, "simple_auth_manager_passwords.json.generated"), "utf8"));
    await login("alice", generated.alice);
    await page.goto(assetPage);
    await events.nth(1).waitFor({ timeout: RUN_TIMEOUT });
    await page.locator(".asset-page h1", { hasText: "s3://bucket/orders" }).waitFor();
    assert.equal(await page.locator("#create-event").count(), 0, "no Create event button for the user role");
    await page.screenshot({ path: path.join(SHOTS, "asset-page-user-role.png") });
    w.check("assets");
  });
});

describe("a plugin's external views under /d12345", { concurrency: false }, () => {
  let srv;
  let ctx;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));
  const PLUGIN = [
    "name: company",
    "external_views:",
    "  - name: Company wiki",
    "    href: https://wiki.example.com/",
    "  - name: Runbook",
    "    href: https://wiki.example.com/runbooks/{dag_id}",
    "    destination: dag",
    "  - name: Team page",
    "    href: plugins/company/team.html",
    "    url_route: team",
    "static_folder: static",
    "",
  ].join("\n");
  const DAG = "viewed:\n  schedule: null\n  start_date: 2024-01-01\n  tasks:\n    - task_id: t\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      bash_command: echo hi\n";
  before(async () => {
    const port = await freePort();
    srv = await startServer({
      port,
      baseUrl: `http://127.0.0.1:${port}/d12345`,
      env: { UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS: "True", UPDRAFT__CORE__LOAD_EXAMPLES: "False" },
      files: { "viewed.yml": DAG },
      plugins: { "company.yml": PLUGIN, "static/team.html": "<!doctype html><title>team</title><h1 id=team>The team</h1>" },
    });
    ctx = await launch(profile);
  });
  after(async () => {
    await ctx?.close();
    await stopServer(srv);
    fs.rmSync(profile, { recursive: true, force: true });
  });

  test("the navigation and the DAG page show the plugin's links", async () => {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const w = watch(page, srv.url);
    assert.ok(srv.url.endsWith("/d12345/"), srv.url);
    await page.goto(`${srv.url}dags`);
    const nav = page.locator("nav.main-nav a.plugin-view", { hasText: "Company wiki" });
    await nav.waitFor();
    assert.equal(await nav.getAttribute("href"), "https://wiki.example.com/");
    assert.equal(await nav.getAttribute("target"), "_blank");
    await page.goto(`${srv.url}dags/viewed`);
    const runbook = page.locator(".plugin-views a", { hasText: "Runbook" });
    await runbook.waitFor();
    assert.equal(await runbook.getAttribute("href"), "https://wiki.example.com/runbooks/viewed");
    // A nav view is not shown on the DAG page, nor a DAG view in the navigation.
    assert.equal(await page.locator(".plugin-views a", { hasText: "Company wiki" }).count(), 0);
    assert.equal(await page.locator("nav.main-nav a", { hasText: "Runbook" }).count(), 0);
    await page.screenshot({ path: path.join(SHOTS, "d12345-plugin-views.png") });
    // A view with a url_route opens inside the UI: the plugin's own static page in a frame.
    const team = page.locator("nav.main-nav a.plugin-view", { hasText: "Team page" });
    assert.equal(await team.getAttribute("href"), "plugin/team");
    await team.click();
    await page.waitForURL(`${srv.url}plugin/team`);
    await page.frameLocator("iframe.plugin-iframe").locator("#team", { hasText: "The team" }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, "d12345-plugin-frame.png") });
    w.check("external views");
  });
});
