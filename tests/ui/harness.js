// The harness every browser test file shares: starting `updraft standalone` on a fresh
// home, launching Debian's chromium with playwright-core, and watching a page for
// requests outside the prefix, failed requests, unexpected 4xx/5xx and console errors.
// Screenshots go under target/ui-screenshots/<stamp>/, one stamp per `make test-ui`.

import assert from "node:assert/strict";
import { test } from "node:test";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN = process.env.UPDRAFT_BIN ?? path.join(ROOT, "target/debug/updraft");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const STAMP = process.env.UI_STAMP ?? new Date().toISOString().replace(/[:.]/g, "-");
export const SHOTS = path.join(ROOT, "target/ui-screenshots", STAMP);
fs.mkdirSync(SHOTS, { recursive: true });
console.log(`screenshots: ${SHOTS}`);

/** How long a run may take to finish: the flaky task retries once after a second. */
export const RUN_TIMEOUT = 90_000;
export const BROKEN_YAML = "broken_dag:\n  tasks:\n    - task_id: [unclosed\n";

/** A URL pattern: the text as is, `**` for any run of characters. */
export function like(text) {
  return new RegExp(`^${text.split("**").map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
}

/** A free TCP port on 127.0.0.1, for servers whose base_url must carry the port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `updraft standalone` on a fresh home with the example DAGs and a broken file;
 * resolves `{child, url, password, home}` once it prints its URL.
 */
export async function startServer({ port = 0, baseUrl = null, env: extra = {}, files = {}, plugins = {} } = {}) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-ui-"));
  fs.mkdirSync(path.join(home, "dags"));
  fs.mkdirSync(path.join(home, "plugins"));
  for (const [name, text] of Object.entries(plugins)) {
    fs.mkdirSync(path.dirname(path.join(home, "plugins", name)), { recursive: true });
    fs.writeFileSync(path.join(home, "plugins", name), text);
  }
  fs.writeFileSync(path.join(home, "dags", "broken.yml"), BROKEN_YAML);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(home, "dags", name), text);
  const env = {
    PATH: process.env.PATH,
    UPDRAFT_HOME: home,
    UPDRAFT__API__HOST: "127.0.0.1",
    UPDRAFT__API__PORT: String(port),
    UPDRAFT__SCHEDULER__SCHEDULER_HEARTBEAT_SEC: "0.2",
    UPDRAFT__CORE__LOAD_EXAMPLES: "True",
  };
  if (baseUrl) env.UPDRAFT__API__BASE_URL = baseUrl;
  Object.assign(env, extra);
  const child = spawn(BIN, ["standalone"], { env, stdio: ["ignore", "pipe", fs.openSync(path.join(home, "server.log"), "w")] });
  const lines = readline.createInterface({ input: child.stdout });
  let password = null;
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL printed; see ${home}/server.log`)), 30_000);
    child.once("exit", (code) => reject(new Error(`updraft exited with ${code}; see ${home}/server.log`)));
    lines.on("line", (line) => {
      const pw = /Password for user 'admin': (\S+)/.exec(line);
      if (pw) password = pw[1];
      const u = /listening on (http:\/\/\S+)/.exec(line);
      if (u) {
        clearTimeout(timer);
        resolve(u[1].endsWith("/") ? u[1] : `${u[1]}/`);
      }
    });
  });
  assert.ok(password || extra.UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS, "the admin password is printed");
  return { child, url, password, home };
}

/** `startServer` at `prefix` ("" for none): the base_url then carries a free port. */
export async function startServerAt(prefix, opts = {}) {
  if (!prefix) return startServer(opts);
  const port = await freePort();
  return startServer({ ...opts, port, baseUrl: `http://127.0.0.1:${port}${prefix}` });
}

/** Stops the server by its PID: SIGTERM, then SIGKILL if it does not stop in time. */
export async function stopServer(srv) {
  if (!srv) return;
  if (srv.child.exitCode !== null) return;
  const exited = new Promise((resolve) => srv.child.once("exit", resolve));
  process.kill(srv.child.pid, "SIGTERM");
  const timer = setTimeout(() => srv.child.exitCode === null && process.kill(srv.child.pid, "SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
  fs.rmSync(srv.home, { recursive: true, force: true });
}

export async function launch(profile) {
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 800 },
    colorScheme: "light",
  });
}

/**
 * Watches a page: every request must stay under `base`, none may fail, none may answer
 * 4xx/5xx unless `expect(response)` allows it, and the console must stay free of errors.
 */
export function watch(page, base) {
  const problems = [];
  const allowed = [];
  const w = {
    problems,
    /** Allows responses matching `pred` until `done()` is called. */
    allow(pred) {
      allowed.push(pred);
      return () => allowed.splice(allowed.indexOf(pred), 1);
    },
    /** Fails the test with everything seen since the last check. */
    check(step) {
      const found = problems.splice(0);
      assert.deepEqual(found, [], `${step}: unexpected browser events`);
    },
  };
  const isAllowed = (url, status, method) => allowed.some((p) => p(url, status, method));
  page.on("request", (r) => {
    if (!r.url().startsWith(base)) problems.push(`request outside ${base}: ${r.method()} ${r.url()}`);
  });
  // Leaving a page cancels its polls: that is the browser's doing, not a failure.
  let navigating = 0;
  w.nav = async (fn) => {
    navigating += 1;
    try {
      return await fn();
    } finally {
      navigating -= 1;
    }
  };
  for (const name of ["goto", "reload", "goBack", "goForward"]) {
    const orig = page[name].bind(page);
    page[name] = (...args) => w.nav(() => orig(...args));
  }
  page.on("requestfailed", (r) => {
    const err = r.failure()?.errorText;
    // A page that sends itself elsewhere (the UI's redirect to login) cancels the
    // scripts it was still loading, as it cancels its polls.
    if (navigating && err === "net::ERR_ABORTED" && ["fetch", "xhr", "script"].includes(r.resourceType())) return;
    // The change poll (fresh.js, once a second) meets Chromium's occasional report of a
    // finished fetch as aborted (microsoft/playwright#42742) far more often than any
    // other request; a poll that really fails shows the page's stale marker instead,
    // which runs.test.js checks.
    if (err === "net::ERR_ABORTED" && r.method() === "GET" && r.url() === `${base}ui/changes`) return;
    // The brand's icon (favicon.svg, also the tab's icon) is dropped by Chromium when the
    // page moves on by a click before it lands: seen once in the plugins' views under a
    // prefix. An icon that is really missing still fails the response check below.
    if (err === "net::ERR_ABORTED" && r.method() === "GET" && r.url() === `${base}favicon.svg`) return;
    problems.push(`request failed: ${r.method()} ${r.url()}: ${err}`);
  });
  page.on("response", (r) => {
    const status = r.status();
    if (status >= 400 && !isAllowed(r.url(), status, r.request().method())) problems.push(`HTTP ${status}: ${r.request().method()} ${r.url()}`);
  });
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    // Chromium logs every 4xx as a console error; those we allowed are not errors here.
    const loc = m.location()?.url ?? "";
    const status = /status of (\d+)/.exec(m.text());
    if (status && isAllowed(loc, Number(status[1]), null)) return;
    problems.push(`console error: ${m.text()} (${loc})`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  return w;
}

/** The login probe: without a token, `ui/auth/me` answers 401, which sends us to login. */
export const meProbe = (base) => (url, status) => status === 401 && url === `${base}ui/auth/me`;

export const PREFIXES = [
  { label: "root", prefix: "" },
  { label: "d12345", prefix: "/d12345" },
  { label: "nested", prefix: "/a/b" },
].filter((p) => !process.env.UI_PREFIX || p.label === process.env.UI_PREFIX);

/**
 * A `test` for steps that build on each other: after one fails the rest are skipped, not
 * timed out, and the failing step's page is photographed by `snap(name)`.
 */
export function chained(snap) {
  let failed = null;
  return (name, fn) => test(name, async (t) => {
    if (failed) {
      t.skip(`after "${failed}" failed`);
      return;
    }
    try {
      await fn();
    } catch (e) {
      failed = name;
      await Promise.resolve(snap(`FAILED-${name.replace(/\W+/g, "-").slice(0, 40)}`)).catch(() => {});
      throw e;
    }
  });
}
