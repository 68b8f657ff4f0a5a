// tests/site_browser_test.mjs: tangled from notes/docs-site.org; edit the note, not this file.

import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const siteDir = path.join(repo, "build", "site");
const shotDir = path.join(repo, "build", "site-test");
const nodeDir = process.env.CARACAL_NODE_DIR || path.join(repo, "build", "node");
const requireFromNode = createRequire(path.join(nodeDir, "package.json"));
const puppeteer = (await import(pathToFileURL(requireFromNode.resolve("puppeteer-core")).href)).default;

let passed = 0, failed = 0;
function check(ok, what, detail = "") {
  if (ok) passed++; else failed++;
  console.log(`${ok ? "ok" : "FAIL"} ${what}${!ok && detail ? `: ${detail}` : ""}`);
  return ok;
}

// A port nobody holds right now: bind port 0, read it back, let it go.
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// caracal itself when CARACAL_BIN is set (it must exist), else python3's http.server.
function startServer(port) {
  const bin = process.env.CARACAL_BIN;
  if (bin && !fs.existsSync(bin)) throw new Error(`CARACAL_BIN=${bin} does not exist; build it first`);
  const [cmd, args, name] = bin
    ? [bin, ["-w", "1", "-t", "1:2", "-b", `tcp://127.0.0.1:${port}`, "--root", siteDir], "caracal"]
    : ["python3", ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", siteDir], "python3 http.server"];
  // python's access log would bury the test's own lines; caracal's stderr stays.
  const stderr = name === "caracal" ? "inherit" : "ignore";
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", stderr], detached: true });
  return { child, name };
}

// Stop the server and everything it forked (its process group), then reap it.
async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try { process.kill(-child.pid, "SIGTERM"); } catch { return; }
  const timer = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch {} }, 10000);
  await exited;
  clearTimeout(timer);
}

async function waitUntilServing(base, deadlineMs = 20000) {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    try { const r = await fetch(base + "/index.html"); if (r.ok) return true; } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

// Visit every page reachable from the home page; check each link and anchor.
async function crawl(page, base) {
  const seen = new Set(["/index.html"]);
  const queue = ["/index.html"];
  const anchors = [];       // [page it appears on, target path, fragment]
  const ids = new Map();    // path -> Set of ids on that page
  const assets = new Set(); // non-HTML targets: diagrams, the index
  const images = [];        // [page, src, width, height, naturalWidth]
  let pages = 0;
  while (queue.length) {
    const at = queue.shift();
    const response = await page.goto(base + at, { waitUntil: "load" });
    if (!check(response && response.status() === 200, `page ${at} loads`, `status ${response && response.status()}`)) continue;
    pages++;
    const found = await page.evaluate(() => ({
      links: [...document.querySelectorAll("a[href]")].map((a) => a.href),
      ids: [...document.querySelectorAll("[id]")].map((e) => e.id),
      imgs: [...document.querySelectorAll("img")].map((i) => {
        const r = i.getBoundingClientRect();
        return [i.src, r.width, r.height, i.naturalWidth];
      }),
    }));
    ids.set(at, new Set(found.ids));
    for (const [src, w, h, nw] of found.imgs) images.push([at, new URL(src).pathname, w, h, nw]);
    for (const href of found.links) {
      const u = new URL(href);
      if (u.origin !== base) continue;
      const target = u.pathname === "/" ? "/index.html" : u.pathname;
      if (u.hash) anchors.push([at, target, decodeURIComponent(u.hash.slice(1))]);
      if (!target.endsWith(".html")) { assets.add(target); continue; }
      if (!seen.has(target)) { seen.add(target); queue.push(target); }
    }
  }
  return { pages, anchors, ids, assets, images };
}

// Links: every page answered 200 while crawling; here the anchors and files.
async function checkLinks(site, base) {
  const notes = fs.readdirSync(path.join(repo, "notes")).filter((f) => f.endsWith(".org")).length;
  check(site.pages >= notes + 1, `crawled ${site.pages} pages, one per note (${notes}) and more`);
  const missing = site.anchors.filter(([, target, id]) => site.ids.has(target) && !site.ids.get(target).has(id));
  check(missing.length === 0, `every #anchor of ${site.anchors.length} internal links exists`,
    missing.slice(0, 5).map(([at, t, id]) => `${at} -> ${t}#${id}`).join(", "));
  for (const asset of [...site.assets].sort()) {
    const r = await fetch(base + asset);
    check(r.ok, `linked file ${asset} loads`, `status ${r.status}`);
  }
}

// Every picture on every page is drawn at a size above zero, and every
// diagram in the site is one of them.
function checkDiagrams(site) {
  const drawn = ([, , w, h, nw]) => w > 0 && h > 0 && nw > 0;
  for (const [at, src] of site.images.filter((i) => !drawn(i))) {
    check(false, `picture ${src} on ${at} is drawn`, "zero size or not decoded");
  }
  const svgs = fs.readdirSync(path.join(siteDir, "diagrams")).filter((f) => f.endsWith(".svg"));
  for (const svg of svgs.sort()) {
    const shown = site.images.filter(([, src]) => src === `/diagrams/${svg}`);
    check(shown.length > 0 && shown.every(drawn),
      `diagram ${svg} is drawn with a non-zero size`, shown.length ? JSON.stringify(shown[0]) : "on no page");
  }
}

// The search finds words that the thread pool note certainly holds.
async function checkSearch(page, base) {
  await page.goto(`${base}/search.html?q=${encodeURIComponent("condition variable")}`, { waitUntil: "load" });
  const found = await page.waitForSelector("#results li a", { timeout: 10000 }).then(() => true, () => false);
  const hits = await page.$$eval("#results li a", (as) => as.map((a) => a.getAttribute("href")));
  check(found && hits.some((h) => h.startsWith("thread-pool.html")),
    `search "condition variable" finds the thread pool note`, hits.slice(0, 3).join(", "));
  await page.screenshot({ path: path.join(shotDir, "search.png") });
}

// Screenshots for a person to look at, and a page read with JavaScript off.
async function checkPages(page, base) {
  const home = await fetch(`${base}/`);
  check(home.ok && (await home.text()).includes('<h1 class="title">'), "/ serves the home page (the root note)");
  await page.goto(`${base}/index.html`, { waitUntil: "load" });
  await page.screenshot({ path: path.join(shotDir, "index.png"), fullPage: true });
  await page.goto(`${base}/src/thread_pool.cpp.html`, { waitUntil: "load" });
  await page.screenshot({ path: path.join(shotDir, "source-page.png") });
  const back = await page.$$eval(".chunk-head a", (as) => as.map((a) => a.getAttribute("href")));
  check(back.length > 1 && back.every((h) => h.startsWith("../thread-pool.html#")),
    `each of the ${back.length} parts of src/thread_pool.cpp links back to its block in the note`);
  await page.setJavaScriptEnabled(false);
  await page.goto(`${base}/thread-pool.html`, { waitUntil: "load" });
  const words = await page.$eval("main", (m) => m.innerText.split(/\s+/).length);
  const cross = await page.$eval("main", (m) => ({
    backlinks: m.querySelectorAll("section.backlinks li a").length,
    usedIn: [...m.querySelectorAll(".block-foot")].some((f) => f.textContent.includes("used in")),
  }));
  check(cross.backlinks > 0 && cross.usedIn, "the thread pool note lists its backlinks and where its fragments are used");
  check(words > 200, `a note page reads without JavaScript (${words} words)`);
  await page.screenshot({ path: path.join(shotDir, "no-javascript.png") });
  check(fs.existsSync(path.join(shotDir, "index.png")), "screenshots saved under build/site-test/");
}

async function main() {
  fs.mkdirSync(shotDir, { recursive: true });
  if (!check(fs.existsSync(path.join(siteDir, "index.html")), "build/site/index.html exists (make site)")) return;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let server;
  try { server = startServer(port); } catch (err) { check(false, "the server under test starts", err.message); return; }
  const { child, name } = server;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "caracal-site-test-"));
  let browser = null;
  try {
    check(await waitUntilServing(base), `${name} serves build/site on ${base}`);
    browser = await puppeteer.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      userDataDir,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const site = await crawl(page, base);
    await checkLinks(site, base);
    checkDiagrams(site);
    await checkSearch(page, base);
    await checkPages(page, base);
  } catch (err) {
    check(false, "browser test ran to the end", String((err && err.stack) || err));
  } finally {
    if (browser) await browser.close().catch(() => {});
    await stopServer(child);
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

await main();
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
