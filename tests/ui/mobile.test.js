// Every page at a 1440-px desktop and a 390-px phone, at no prefix and under /d12345:
// a screenshot of each (light, and at no prefix dark too for the main pages), no sideways
// scrolling on the phone, and no serious or critical axe-core finding in either theme. Then the keyboard
// shortcuts, the dark-mode toggle, the phone's menu and a dialog on a phone. One server
// per prefix; the pages are visited in the app (history navigation), so axe-core is
// injected once per prefix.

import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import { SHOTS, CHROMIUM, like, startServerAt, stopServer, launch, watch, meProbe, PREFIXES, chained } from "./harness.js";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const WIDTHS = [{ width: 1440, height: 900 }, { width: 390, height: 844 }];
const DAG = "example_task_group";
const TASK = "start";

/** A producer of an asset, so the assets pages have something to show. */
const ASSET_YAML = [
  "asset_producer:",
  "  schedule: null",
  "  start_date: 2024-01-01",
  "  tasks:",
  "    - task_id: make",
  "      operator: airflow.providers.standard.operators.bash.BashOperator",
  "      bash_command: 'echo made'",
  "      outlets: ['s3://bucket/a-rather-long-path/to/the/orders/of/the/day.parquet']",
  "",
].join("\n");

/**
 * Every page of the UI: `path` (relative to the base; a function of the seeded ids),
 * `ready` (a selector that shows the page has its data), `main` (issue 20's main
 * pages: photographed and checked in the dark theme too) and `allow` (error replies the page expects, as
 * harness.js's `watch().allow` takes them). Add a line here for each new page.
 */
export const PAGES = [
  { name: "dags", path: () => "dags", ready: "tr[data-dag-id] .dag-link", main: true },
  { name: "dag-overview", path: () => `dags/${DAG}/overview`, ready: "svg.ov-chart rect.ov-bar.st-success", main: false },
  { name: "dag-grid", path: () => `dags/${DAG}/grid`, ready: "table.grid a.sq.st-success", main: true },
  { name: "dag-graph", path: (ids) => `dags/${DAG}/graph?run=${encodeURIComponent(ids.run)}`, ready: "svg.graph .node.st-success", main: true },
  { name: "dag-runs", path: () => `dags/${DAG}/runs`, ready: "table.runs tbody tr", main: true },
  { name: "dag-tasks", path: () => `dags/${DAG}/tasks`, ready: "table.task-list tbody tr .badge.st-success", main: false },
  { name: "dag-calendar", path: () => `dags/${DAG}/calendar`, ready: ".cal-grid .cal-cell.cal-success", main: false },
  { name: "dag-events", path: () => `dags/${DAG}/events`, ready: "table.event-log tbody td", main: false },
  { name: "dag-details", path: () => `dags/${DAG}/details`, ready: ".details table.kv", main: true },
  { name: "dag-code", path: () => `dags/${DAG}/code`, ready: "pre.source .src-line", main: true },
  { name: "run-panel", path: (ids) => `dags/${DAG}/grid?run=${encodeURIComponent(ids.run)}`, ready: ".run-panel", main: false },
  { name: "ti-panel", path: (ids) => `dags/${DAG}/grid?run=${encodeURIComponent(ids.run)}&task=section_1.task_1`, ready: ".ti-panel #ti-log .log-line:visible", main: true },
  { name: "ti-page", path: (ids) => `dags/${DAG}/runs/${encodeURIComponent(ids.run)}/tasks/section_1.task_1`, ready: ".ti-page #ti-log .log-line:visible", main: false },
  { name: "connections", path: () => "admin/connections", ready: "table.admin tbody td:not(.empty)", main: true },
  { name: "variables", path: () => "admin/variables", ready: "table.admin tbody td:not(.empty)", main: true },
  { name: "pools", path: () => "admin/pools", ready: "table.admin tbody td:not(.empty)", main: true },
  { name: "assets", path: () => "assets", ready: "table.asset-list tbody td:not(.empty)", main: true },
  { name: "asset", path: (ids) => `assets/${ids.asset}`, ready: ".asset-page h1", main: false },
  { name: "required-actions", path: () => "required_actions", ready: ".hitl-page h1", main: false },
  { name: "about", path: () => "about", ready: ".about .card", main: true },
  { name: "audit-log", path: () => "events", ready: "table.event-log tbody td", main: false },
  { name: "xcoms", path: () => "xcoms", ready: "table.xcom-list tbody td", main: false },
  { name: "import-errors", path: () => "import_errors", ready: ".import-errors .ie-line", main: false },
  // With expose_config off (the default) the API refuses, and the page says so.
  { name: "config", path: () => "configs", ready: ".config-page #config-refused, .config-page table.kv", main: false,
    allow: (url, status) => status === 403 && url.endsWith("api/v2/config") },
  { name: "plugins", path: () => "plugins", ready: ".plugins-page .empty, .plugins-page table.plugin-list", main: false },
  { name: "providers", path: () => "providers", ready: ".providers-page .empty, .providers-page table", main: false },
  { name: "not-found", path: () => "no/such/page", ready: ".empty-page h1", main: false },
];

for (const { label, prefix } of PREFIXES.filter((p) => p.label !== "nested")) {
  describe(`phones, keyboard, themes and accessibility at ${prefix || "/"}`, { concurrency: false }, () => {
    let srv;
    let ctx;
    let page;
    let w;
    let base;
    let token;
    const ids = {};
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-chromium-"));

    // The steps build on each other: after one fails, the rest are skipped, not timed out.
    const step = chained((name) => shot(name));

    const shot = (name) => page.screenshot({ path: path.join(SHOTS, `mobile-${label}-${name}.png`), fullPage: true });

    /** Calls the API as admin. */
    const call = async (method, rel, body) => {
      const res = await fetch(`${base}${rel}`, {
        method, headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` }, body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      assert.ok(res.ok, `${method} ${rel}: ${res.status} ${text}`);
      return text ? JSON.parse(text) : null;
    };

    /** Shows `rel` as a click on a link would: the app's router, no reload. */
    const visit = async (rel) => {
      await page.evaluate((href) => {
        // A dialog a failed step left open would block every click after it.
        for (const d of document.querySelectorAll("dialog[open]")) d.close();
        history.pushState(null, "", href);
        dispatchEvent(new PopStateEvent("popstate"));
      }, `${base}${rel}`);
    };

    /** No sideways scrolling: the page is no wider than the window. */
    const assertNoOverflow = async (what) => {
      const [sw, iw, wide] = await page.evaluate(() => {
        const iw = window.innerWidth;
        // The widest elements past the right edge name the culprit in the message.
        const past = [...document.querySelectorAll("body *")]
          .filter((e) => e.getBoundingClientRect().right > iw + 0.5 && !e.closest("dialog:not([open]), .grid-wrap, .graph-wrap, pre.source, .log"))
          .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}.${[...e.classList].join(".")}#${e.id} right=${Math.round(e.getBoundingClientRect().right)}`);
        return [document.documentElement.scrollWidth, iw, past];
      });
      assert.ok(sw <= iw, `${what}: scrollWidth ${sw} > innerWidth ${iw}; past the edge: ${wide.join(", ")}`);
    };

    /** axe-core's serious and critical findings on the page as it is now. */
    const assertAccessible = async (what) => {
      if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.addScriptTag({ path: AXE });
      const found = await page.evaluate(async () => {
        const r = await window.axe.run(document, { resultTypes: ["violations"] });
        return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
          .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.slice(0, 4).map((n) => `${n.target.join(" ")} ${n.failureSummary.replace(/\s+/g, " ").slice(0, 160)}`).join(" | ")}`);
      });
      assert.deepEqual(found, [], `${what}: axe-core violations`);
    };

    /**
     * Where axe-core runs (it costs most of this file's time): the main pages in the light
     * theme at both widths and in the dark one at 1440 (colours do not change with the
     * width), the others at 390 (where the layout differs most); under the prefix, whose
     * pages differ only in their URLs, the main pages at 390.
     */
    const wantAxe = (theme, width, p) => {
      const phone = width < 800;
      if (prefix || !p.main) return phone && (p.main || !prefix);
      return theme === "light" || !phone;
    };

    /**
     * Shows a page at each width (and each theme if it is a main one): shots, overflow,
     * axe. Findings go to `found` when given (so one run lists every page's), else throw.
     */
    const checkPage = async (p, { themes = ["light"], found = null } = {}) => {
      for (const theme of themes) {
        await page.evaluate((t) => {
          document.documentElement.dataset.theme = t;
        }, theme);
        for (const size of WIDTHS) {
          await page.setViewportSize(size);
          await page.locator(p.ready).first().waitFor();
          // Two frames: the new width is laid out and painted.
          await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
          const what = `${p.name} at ${size.width}px, ${theme}`;
          await shot(`${p.name}-${size.width}-${theme}`);
          for (const check of [size.width < 800 ? assertNoOverflow : null, wantAxe(theme, size.width, p) ? assertAccessible : null]) {
            try {
              await check?.(what);
            } catch (e) {
              if (!found) throw e;
              found.push(e.message.split("\n")[0] === `${what}: axe-core violations` ? `${what}: ${JSON.stringify(e.actual)}` : e.message);
            }
          }
        }
      }
      w.check(p.name);
    };

    before(async () => {
      const env = { UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION: "False" };
      srv = await startServerAt(prefix, { env, files: { "asset.yml": ASSET_YAML } });
      base = srv.url;
      const tok = await fetch(`${base}auth/token`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: "admin", password: srv.password }),
      });
      assert.equal(tok.status, 201);
      token = (await tok.json()).access_token;
      ctx = await launch(profile);
      page = ctx.pages()[0] ?? (await ctx.newPage());
      // The running state pulses; axe must read the colours at rest.
      await page.emulateMedia({ reducedMotion: "reduce", colorScheme: "light" });
      w = watch(page, base);
    });

    after(async () => {
      await ctx?.close();
      await stopServer(srv);
      fs.rmSync(profile, { recursive: true, force: true });
    });

    step("seeds a finished run, an asset, a connection, a variable and a pool", async () => {
      // The DAGs are parsed before their first run can be made.
      for (let i = 0; ; i++) {
        const res = await fetch(`${base}api/v2/dags/${DAG}`, { headers: { Authorization: `Bearer ${token}` } });
        if (res.ok) break;
        assert.ok(i < 300, `${DAG} is not parsed`);
        await new Promise((r) => setTimeout(r, 200));
      }
      ids.run = (await call("POST", `api/v2/dags/${DAG}/dagRuns`, { logical_date: null, conf: {} })).dag_run_id;
      await call("POST", "api/v2/dags/asset_producer/dagRuns", { logical_date: null });
      await call("POST", "api/v2/connections", {
        connection_id: "warehouse_with_a_long_name_for_phones", conn_type: "postgres", host: "warehouse.internal.example.com",
        login: "etl", password: "secret", port: 5432, description: "The reporting warehouse, read by every nightly DAG",
      });
      await call("POST", "api/v2/variables", { key: "report_recipients", value: "ops@example.com,finance-team@example.com,someone.else@example.com", description: "Who gets the nightly report" });
      await call("POST", "api/v2/pools", { name: "warehouse", slots: 4, description: "Connections the warehouse allows", include_deferred: false });
      for (let i = 0; ; i++) {
        const r = await call("GET", `api/v2/dags/${DAG}/dagRuns/${encodeURIComponent(ids.run)}`);
        if (r.state === "success") break;
        assert.notEqual(r.state, "failed");
        assert.ok(i < 450, `the run is still ${r.state}`);
        await new Promise((res) => setTimeout(res, 200));
      }
      for (let i = 0; ; i++) {
        const a = await call("GET", "api/v2/assets");
        if (a.assets.length) {
          ids.asset = a.assets[0].id;
          break;
        }
        assert.ok(i < 300, "no asset");
        await new Promise((res) => setTimeout(res, 200));
      }
    });

    step("the login page at 1440 and 390 px, then logs in", async () => {
      const doneProbe = w.allow(meProbe(base));
      await page.goto(`${base}dags`);
      await page.waitForURL(like(`${base}login?next=**`));
      await checkPage({ name: "login", ready: "#username" }, { themes: ["light", "dark"] });
      await page.setViewportSize(WIDTHS[0]);
      await page.evaluate(() => {
        document.documentElement.dataset.theme = "light";
      });
      await page.fill("#username", "admin");
      await page.fill("#password", srv.password);
      await page.click("form.login-card button[type=submit]");
      await page.waitForURL(like(`${base}dags`));
      doneProbe();
      w.check("login");
    });

    step("every page at 1440 and 390 px: no sideways scrolling, no serious axe finding", async () => {
      const found = [];
      for (const p of PAGES) {
        const allowed = p.allow ? w.allow(p.allow) : () => {};
        await visit(p.path(ids));
        // The dark theme looks the same under any prefix: it is checked at the root only.
        await checkPage(p, { themes: p.main && !prefix ? ["light", "dark"] : ["light"], found });
        allowed();
      }
      assert.deepEqual(found, [], "findings");
    });

    step("on a phone, tables stack as labelled rows and the menu folds the navigation", async () => {
      await page.setViewportSize(WIDTHS[1]);
      await page.evaluate(() => {
        document.documentElement.dataset.theme = "light";
      });
      await visit("admin/connections");
      const cell = page.locator("table.admin tbody tr", { hasText: "warehouse_with_a_long_name_for_phones" }).locator("td").nth(1);
      assert.ok(await cell.getAttribute("data-label"), "the cell carries its column's heading");
      const before = await cell.evaluate((td) => getComputedStyle(td, "::before").content);
      assert.equal(before, `"${await cell.getAttribute("data-label")}"`);
      assert.equal(await cell.evaluate((td) => getComputedStyle(td).display), "flex");
      // The navigation is behind the Menu button.
      const nav = page.locator("nav.main-nav");
      assert.equal(await nav.isVisible(), false);
      await page.click(".nav-toggle");
      assert.equal(await page.getAttribute(".nav-toggle", "aria-expanded"), "true");
      await shot("menu-open-390");
      await nav.getByRole("link", { name: "Variables" }).click();
      await page.waitForURL(like(`${base}admin/variables`));
      await page.locator("table.admin tbody td[data-label]").first().waitFor();
      assert.equal(await nav.isVisible(), false, "following a link closes the menu");
      await assertNoOverflow("variables after the menu");
      w.check("menu");
    });

    step("on a phone, the trigger dialog fits the screen and scrolls inside", async () => {
      await visit(`dags/${DAG}/grid`);
      await page.click("#trigger");
      const dialog = page.locator("dialog[open]");
      await dialog.locator("#trigger-conf").waitFor();
      await shot("trigger-dialog-390");
      const box = await dialog.evaluate((d) => {
        const r = d.getBoundingClientRect();
        return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, iw: innerWidth, ih: innerHeight };
      });
      assert.ok(box.left >= 0 && box.right <= box.iw && box.top >= 0 && box.bottom <= box.ih, `the dialog is inside the window: ${JSON.stringify(box)}`);
      // Its buttons are on screen without scrolling the page.
      const submit = dialog.locator("footer button[type=submit]");
      const b = await submit.boundingBox();
      assert.ok(b && b.y + b.height <= box.ih, "the submit button is on screen");
      await assertNoOverflow("the trigger dialog");
      await assertAccessible("the trigger dialog");
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "detached" });
      w.check("trigger dialog");
    });

    step("on a phone's browser, the DAG list's trigger dialog opens inside the screen", async () => {
      // A phone's browser lays a page that overflows out at the overflow's width and shows
      // a 390-px part of it, so a dialog centred in that width opens half off-screen;
      // only a mobile context (meta viewport, zoom) behaves so.
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
      try {
        const phone = await browser.newContext({ viewport: WIDTHS[1], isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
        const p = await phone.newPage();
        const pw = watch(p, base);
        const doneProbe = pw.allow(meProbe(base));
        await p.goto(`${base}login`);
        await p.fill("#username", "admin");
        await p.fill("#password", srv.password);
        await p.click("form.login-card button[type=submit]");
        await p.locator("tr[data-dag-id] .dag-link").first().waitFor();
        doneProbe();
        await p.locator(`tr[data-dag-id="${DAG}"] button.trigger`).click();
        await p.locator("dialog[open] #trigger-conf").waitFor();
        const box = await p.evaluate(() => {
          const r = document.querySelector("dialog[open]").getBoundingClientRect();
          return { left: r.left, right: r.right, innerWidth, visible: visualViewport.width + visualViewport.offsetLeft };
        });
        await p.screenshot({ path: path.join(SHOTS, `mobile-${label}-phone-trigger-dialog.png`) });
        assert.equal(box.innerWidth, WIDTHS[1].width, "the page is laid out at the phone's width");
        assert.ok(box.left >= 0 && box.right <= box.visible, `the dialog is on screen: ${JSON.stringify(box)}`);
        await p.keyboard.press("Escape");
        pw.check("phone");
      } finally {
        await browser.close();
      }
    });

    step("keyboard: / focuses the search, ? lists the shortcuts, typing is not taken", async () => {
      await page.setViewportSize(WIDTHS[0]);
      await visit("dags");
      await page.locator("tr[data-dag-id]").first().waitFor();
      await page.locator("h1").click();
      await page.keyboard.press("/");
      assert.equal(await page.evaluate(() => document.activeElement?.id), "dag-search");
      // In the box, / and ? are text.
      await page.keyboard.type("a/b?");
      assert.equal(await page.inputValue("#dag-search"), "a/b?");
      assert.equal(await page.locator("dialog[open]").count(), 0);
      await page.fill("#dag-search", "");
      await page.locator("h1").click();
      await page.keyboard.press("?");
      const dialog = page.locator("dialog#shortcuts[open]");
      await dialog.getByText("Focus the search box").waitFor();
      await assertAccessible("the shortcuts dialog");
      await shot("shortcuts-1440");
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "detached" });
      // On a page without a search box, / does nothing.
      await visit("about");
      await page.locator(".about .card").first().waitFor();
      await page.locator("h1").click();
      const focused = await page.evaluate(() => document.activeElement?.id);
      await page.keyboard.press("/");
      assert.equal(await page.evaluate(() => document.activeElement?.id), focused);
      w.check("shortcuts");
    });

    step("keyboard: the arrows walk the grid and Enter opens the task instance", async () => {
      await visit(`dags/${DAG}/grid`);
      const newest = page.locator(`table.grid a.sq[data-key="ti:${ids.run}:${TASK}"]`);
      await newest.waitFor();
      await page.locator("h1").click();
      // From nothing in focus, an arrow enters the grid at the newest run's bar.
      await page.keyboard.press("ArrowDown");
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.key), `run:${ids.run}`);
      // Down from the bar: the first task's cell in that run.
      await page.keyboard.press("ArrowDown");
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.key), `ti:${ids.run}:${TASK}`);
      // Left: the task's name; right: back to the cell; up: the run bar again.
      await page.keyboard.press("ArrowLeft");
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.key), `task:${TASK}`);
      await page.keyboard.press("ArrowRight");
      await page.keyboard.press("ArrowUp");
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.key), `run:${ids.run}`);
      // Down twice: past the group's row (its summary is no link) to the group's first task.
      const t1 = "section_1.task_1";
      await page.keyboard.press("ArrowDown");
      await page.keyboard.press("ArrowDown");
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.key), `ti:${ids.run}:${t1}`);
      await page.keyboard.press("Enter");
      await page.waitForURL((u) => u.searchParams.get("task") === t1 && u.searchParams.get("run") === ids.run);
      await page.locator(".ti-panel #ti-log .log-line:visible").first().waitFor();
      // The grid keeps the focus on the cell after it redraws, and the walk goes on from there.
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.key), `ti:${ids.run}:${t1}`);
      await page.keyboard.press("ArrowDown");
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.key), `ti:${ids.run}:section_1.task_2`);
      w.check("grid keys");
    });

    step("a collapsed group in the graph is named by the text it shows", async () => {
      await visit(`dags/${DAG}/graph?run=${encodeURIComponent(ids.run)}`);
      await page.locator("svg.graph .group-head").first().click();
      const node = page.locator('svg.graph .group-node[aria-expanded="false"]');
      await node.waitFor();
      assert.match(await node.getAttribute("aria-label"), /^section_1 2 tasks/);
      await assertAccessible("the graph with a collapsed group");
      // Open again: the choice is kept for the session.
      await node.click();
      await page.locator("svg.graph .group-head").first().waitFor();
      w.check("collapsed group");
    });

    step("the theme: light, dark or the OS's, kept across reloads", async () => {
      await visit("dags");
      await page.locator("#theme").waitFor();
      const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(await page.inputValue("#theme"), "os");
      await page.emulateMedia({ colorScheme: "dark" });
      await page.waitForFunction(() => document.documentElement.dataset.theme === "dark");
      await page.emulateMedia({ colorScheme: "light" });
      await page.waitForFunction(() => document.documentElement.dataset.theme === "light");
      const light = await bg();
      await page.selectOption("#theme", "dark");
      assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
      assert.notEqual(await bg(), light);
      assert.equal(await page.evaluate(() => localStorage.getItem("updraft.theme")), "dark");
      // A choice outlives a reload and beats the OS.
      await page.reload();
      await page.locator("tr[data-dag-id]").first().waitFor();
      assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
      assert.equal(await page.inputValue("#theme"), "dark");
      await page.selectOption("#theme", "light");
      await page.emulateMedia({ colorScheme: "dark" });
      assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "light");
      await page.selectOption("#theme", "os");
      assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
      assert.equal(await page.evaluate(() => localStorage.getItem("updraft.theme")), null);
      await page.emulateMedia({ colorScheme: "light" });
      w.check("theme");
    });
  });
}
