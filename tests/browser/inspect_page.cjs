// Browser test of the inspector page (issues 7, 15 and 19): real ferry,
// real chromium.
//
// Starts ferry-echo, a never-ending upstream and ferry (admin listener,
// routes with inspect: true, the configuration in gateway.yaml), opens
// http://ADMIN/inspect in Debian's chromium driven by playwright-core, and
// checks: a request appears live; the header diff marks X-Forwarded-For
// added and the client's Connection removed; the route names its file and
// line; replay sends it again and links the original, and so does an edited
// replay (another target, one more header); a rewritten request
// line is marked changed; "why this route" lists the earlier route and the
// condition it failed; a response the client cut short shows as such; the
// HAR button downloads HAR 1.2; a filter expression narrows the list and the
// live stream and a malformed one says why. Saves screenshots (SCREENSHOT
// and three beside it: inspector-edit.png, inspector-rewrite.png,
// inspector-filter.png). Every
// wait has a timeout; processes it started are stopped by pid.
//
// Environment: FERRY_BIN, FERRY_ECHO_BIN, BROWSER_DEPS (a directory with
// node_modules/playwright-core), SCREENSHOT (path of the PNG to write).
"use strict";
const path = require("path");
const fs = require("fs");
const os = require("os");
const net = require("net");
const http = require("http");
const { spawn } = require("child_process");

const { chromium } = require(path.join(process.env.BROWSER_DEPS, "node_modules", "playwright-core"));

const FERRY = process.env.FERRY_BIN;
const ECHO = process.env.FERRY_ECHO_BIN;
const SHOT = process.env.SCREENSHOT;
const TIMEOUT = 20000;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

// Every process started here, killed by pid if this script dies early.
const children = new Set();
process.on("exit", () => {
  for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
});

// Start a process and resolve once its stderr (or stdout) matches re.
function start(cmd, args, re, name, cwd) {
  const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], cwd });
  children.add(p);
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${out}`)), TIMEOUT);
    p.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${name} (${cmd}): ${e.message}`));
    });
    const on = (d) => {
      out += d.toString();
      if (re.test(out)) {
        clearTimeout(timer);
        resolve(p);
      }
    };
    p.stdout.on("data", on);
    p.stderr.on("data", on);
    p.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}: ${out}`));
    });
  }).then((proc) => {
    proc.removeAllListeners("exit");
    proc.output = () => out;
    return proc;
  });
}

function stop(p, name) {
  return new Promise((resolve, reject) => {
    if (!p || p.exitCode !== null || p.signalCode !== null) return resolve();
    const timer = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`${name} did not stop within ${TIMEOUT} ms`));
    }, TIMEOUT);
    p.on("exit", (code, sig) => {
      clearTimeout(timer);
      if (name === "ferry" && code !== 0) reject(new Error(`ferry exited with ${code} ${sig}: ${p.output()}`));
      else resolve();
    });
    p.kill("SIGTERM");
  });
}

function get(port, pathName, headers) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: pathName, headers, agent: false, timeout: TIMEOUT }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
  });
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function main() {
  const [httpPort, adminPort, echoPort, slowPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-browser-"));
  const cfg = path.join(tmp, "gateway.yaml"); // not proxy.yaml: the page must name the real file
  fs.writeFileSync(cfg, `listeners:
  - address: 127.0.0.1:${httpPort}
workers: 1
admin:
  address: 127.0.0.1:${adminPort}
  replay: true
access_log: {path: off}
upstreams:
  api:
    servers:
      - address: 127.0.0.1:${echoPort}
  slow:
    servers:
      - address: 127.0.0.1:${slowPort}
routes:
  - path_prefix: /api
    upstream: api
    inspect: true
    response_headers:
      set: {X-Frame-Options: DENY}
  - path_prefix: /rw
    rewrite_prefix: /v2
    upstream: api
    inspect: true
  - path_prefix: /slow
    upstream: slow
    inspect: true
`);
  const routeLine = (prefix) => fs.readFileSync(cfg, "utf8").split("\n").indexOf(`  - path_prefix: ${prefix}`) + 1;
  // An upstream whose body never ends: the client leaves after the head.
  const slow = net.createServer((sock) => {
    sock.once("data", () => {
      sock.write("HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n");
      let sent = 0;
      const pump = () => {
        while (sent < 50000000 && !sock.destroyed) {
          sent += 10000;
          if (!sock.write(Buffer.alloc(10000, 120))) return sock.once("drain", pump);
        }
      };
      pump();
    });
    sock.on("error", () => {});
  });
  await new Promise((resolve) => slow.listen(slowPort, "127.0.0.1", resolve));
  let echo, ferry, browser;
  try {
    check(FERRY && fs.existsSync(FERRY), `FERRY_BIN (${FERRY}) is not a built ferry`);
    echo = await start(ECHO, ["-n", "api-1", `127.0.0.1:${echoPort}`], /listening|echo/i, "ferry-echo");
    // Run from the config's directory with a relative -c, as people do: the
    // page names the file as given (and the screenshots hold no temp path).
    ferry = await start(FERRY, ["-c", "gateway.yaml"], /listening on 127/, "ferry", tmp);

    // A fresh profile directory (--user-data-dir): playwright passes it.
    browser = await chromium.launchPersistentContext(path.join(tmp, "profile"), {
      executablePath: "/usr/bin/chromium",
      headless: true,
      timeout: TIMEOUT,
      viewport: { width: 1400, height: 820 },
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-quic"],
    });
    const page = browser.pages()[0] || (await browser.newPage());
    const shotDir = path.dirname(SHOT);
    fs.mkdirSync(shotDir, { recursive: true });
    page.setDefaultTimeout(TIMEOUT);
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${adminPort}/inspect`);
    await page.waitForSelector("#dot.live"); // the EventSource is connected

    // Traffic after the page is up: it must arrive live, without a reload.
    const r = await get(httpPort, "/api/users?page=2", { Host: "shop.example", "X-Client-Note": "hello",
      Connection: "keep-alive", Accept: "application/json" });
    check(r.status === 200, `proxied request answered ${r.status}`);
    await get(httpPort, "/api/orders/17", { Host: "shop.example" });

    const row = page.locator("tr.row", { hasText: "/api/users?page=2" });
    await row.waitFor();
    const origId = await row.getAttribute("data-id");
    check((await row.locator("td").nth(4).textContent()) === "200", "status column");
    await row.click();
    await page.waitForSelector("#detail h2");

    const fwdXff = page.locator('.pair >> nth=0 >> .head >> nth=1 >> li[data-name="X-Forwarded-For"]');
    check((await fwdXff.getAttribute("data-diff")) === "added", "X-Forwarded-For is marked added in the forwarded request");
    const cliConn = page.locator('.pair >> nth=0 >> .head >> nth=0 >> li[data-name="Connection"]');
    check((await cliConn.getAttribute("data-diff")) === "removed", "Connection is marked removed from the client request");
    const cliNote = page.locator('.pair >> nth=0 >> .head >> nth=0 >> li[data-name="X-Client-Note"]');
    check((await cliNote.getAttribute("data-diff")) === null, "an untouched header is not marked");
    const xfo = page.locator('.pair >> nth=1 >> .head >> nth=1 >> li[data-name="X-Frame-Options"]');
    check((await xfo.getAttribute("data-diff")) === "added", "response header set by the route is marked added");
    const curl = await page.locator("#curl").textContent();
    check(curl.includes(`http://127.0.0.1:${httpPort}/api/users?page=2`) && curl.includes("-H 'X-Client-Note: hello'"),
      `copy as curl command: ${curl}`);

    const routeInfo = await page.locator("#route-info").textContent();
    check(routeInfo === `#0 (gateway.yaml line ${routeLine("/api")}): path_prefix /api`, `route names its file and line: ${routeInfo}`);
    const lines = page.locator(".pair >> nth=0 >> .line");
    check((await lines.nth(0).getAttribute("data-diff")) === null, "an unchanged request line is not marked");

    // Replay: the captured head goes through ferry again and shows up live.
    await page.locator("#replay").click();
    await page.waitForFunction(() => document.getElementById("note").textContent.startsWith("sent again"));
    const replayed = page.locator(`tr.row:not([data-id="${origId}"])`, { hasText: "/api/users?page=2" });
    await replayed.waitFor();
    check((await page.locator("tr.row").count()) === 3, "the replay is a third exchange in the list");
    await replayed.click();
    const mark = page.locator('.pair >> nth=0 >> .head >> nth=0 >> li[data-name="X-Ferry-Replay-Of"]');
    check((await mark.textContent()) === `X-Ferry-Replay-Of: ${origId}`, "the replay names the original");
    await page.locator(`tr.row[data-id="${origId}"]`).click(); // the original again, for the screenshot
    await page.waitForSelector(`#detail[data-shown="${origId}"]`);
    await page.screenshot({ path: SHOT });

    // Edit and replay: another target and one more header; the new capture links back.
    await page.locator("#edit").click();
    await page.fill("#e-target", "/api/edited?via=form");
    await page.fill("#e-headers", (await page.inputValue("#e-headers")) + "\nX-Edited: yes");
    await page.screenshot({ path: path.join(shotDir, "inspector-edit.png") });
    await page.locator("#e-send").click();
    await page.waitForFunction(() => document.getElementById("note").textContent.startsWith("sent again, edited"));
    const edited = page.locator("tr.row", { hasText: "/api/edited?via=form" });
    await edited.waitFor();
    await edited.click();
    await page.waitForSelector("#replay-of");
    check((await page.locator("#replay-of").textContent()).trim() === `replay of #${origId}`, "the edited replay links the original");
    const editedHdr = page.locator('.pair >> nth=0 >> .head >> nth=0 >> li[data-name="X-Edited"]');
    check((await editedHdr.textContent()) === "X-Edited: yes", "the edited header was sent");
    await page.locator("#replay-of").click();
    await page.waitForSelector(`#detail[data-shown="${origId}"]`);

    // A rewritten request line is marked as changed on both sides.
    await get(httpPort, "/rw/items?x=1", { Host: "shop.example" });
    const rw = page.locator("tr.row", { hasText: "/rw/items?x=1" });
    await rw.waitFor();
    await rw.click();
    await page.waitForFunction(() => (document.getElementById("route-info") || {}).textContent?.includes("path_prefix /rw"));
    check((await lines.nth(0).getAttribute("data-diff")) === "changed", "client request line marked changed");
    check((await lines.nth(1).getAttribute("data-diff")) === "changed", "forwarded request line marked changed");
    check((await lines.nth(1).textContent()) === "GET /v2/items?x=1 HTTP/1.1", "forwarded line shown");
    // Why this route: the earlier route and the condition it failed, then the match.
    const why = await page.locator("#why li").allTextContents();
    check(why.length === 2 && why[0] === "routes[0] (line " + routeLine("/api") + ") skipped: path: /rw/items is not /api or below it (path_prefix /api)"
      && why[1] === "routes[1] (line " + routeLine("/rw") + ") matched: path_prefix /rw", `why this route: ${JSON.stringify(why)}`);
    await page.screenshot({ path: path.join(shotDir, "inspector-rewrite.png") });

    // A response the client cut short is not shown as a plain 200.
    await new Promise((resolve, reject) => {
      const c = net.connect(httpPort, "127.0.0.1", () => c.write("GET /slow/file HTTP/1.1\r\nHost: shop.example\r\n\r\n"));
      c.once("data", () => { c.destroy(); resolve(); });
      c.on("error", reject);
      c.setTimeout(TIMEOUT, () => reject(new Error("no answer from /slow")));
    });
    const cut = page.locator("tr.row", { hasText: "/slow/file" });
    await cut.waitFor();
    const cutStatus = await cut.locator("td").nth(4).textContent();
    check(cutStatus === "200 cut short", `status of a response cut short: ${cutStatus}`);

    // HAR export: the button downloads the captured exchanges as HAR 1.2.
    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#har").click()]);
    const harPath = path.join(tmp, "export.har");
    await download.saveAs(harPath);
    const har = JSON.parse(fs.readFileSync(harPath, "utf8"));
    check(har.log.version === "1.2" && har.log.creator.name === "ferry", "HAR log header");
    check(har.log.entries.length === 6, `one HAR entry per exchange: ${har.log.entries.length}`);
    check(har.log.entries.some((e) => e.request.url === "http://shop.example/rw/items?x=1"), "HAR has the rewritten request");

    // A filter expression, applied by ferry to the list, the live stream and the HAR link.
    await page.fill("#f-expr", "~u /rw | ~c 5..");
    await page.press("#f-expr", "Enter");
    await page.waitForFunction(() => document.querySelectorAll("tr.row").length === 1);
    check((await page.locator("tr.row").first().textContent()).includes("/rw/items?x=1"), "the filtered list");
    check((await page.locator("#har").getAttribute("href")).includes("filter=" + encodeURIComponent("~u /rw | ~c 5..")),
      "the HAR link takes the filter");
    await page.waitForSelector("#dot.live");
    await get(httpPort, "/api/after-filter", { Host: "shop.example" });
    await get(httpPort, "/rw/second", { Host: "shop.example" });
    await page.locator("tr.row", { hasText: "/rw/second" }).waitFor();
    check((await page.locator("tr.row").count()) === 2, "only matching exchanges arrive live");
    await page.locator("tr.row", { hasText: "/rw/second" }).click();
    await page.screenshot({ path: path.join(shotDir, "inspector-filter.png") });
    await page.fill("#f-expr", "~x nope");
    await page.press("#f-expr", "Enter");
    await page.waitForFunction(() => document.getElementById("f-error").textContent.includes("unknown filter ~x"));
    check((await page.locator("tr.row").count()) === 2, "a bad filter keeps the list as it was");
    check(errors.length === 0, `page errors: ${errors.join("; ")}`);
    console.log(`ok: live list, header diff, replay, file and line, rewritten line, cut short, HAR; screenshots in ${shotDir}`);
  } finally {
    if (browser) await browser.close();
    await stop(ferry, "ferry");
    await stop(echo, "ferry-echo");
    slow.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
