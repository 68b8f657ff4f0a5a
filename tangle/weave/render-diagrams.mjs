// tangle/weave/render-diagrams.mjs: render diagrams/NAME.mmd files to NAME.svg
// in ONE headless Chromium session (notes/diagrams.org explains why and how).
//   node tangle/weave/render-diagrams.mjs diagrams/a.mmd diagrams/b.mmd ...
// Needs build/node (make site-deps): puppeteer-core drives Debian's chromium,
// mermaid's browser bundle lays the diagrams out.  Writes each SVG through a
// temporary file and a rename; an SVG whose bytes did not change is left as
// it is (only its time is refreshed, so make sees it is current).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.CARACAL_NODE_DIR || path.join(here, "..", "..", "build", "node");
const requireFromNode = createRequire(path.join(nodeDir, "package.json"));
const puppeteer = (await import(pathToFileURL(requireFromNode.resolve("puppeteer-core")).href)).default;
const mermaidBundle = path.join(path.dirname(requireFromNode.resolve("mermaid/package.json")), "dist", "mermaid.min.js");

// Headless, as root, and quiet on a machine with no network.
const chromiumArgs = [
  "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];

// Plain SVG text (no <foreignObject> HTML) so the picture shows in any SVG
// viewer; ids derived from the diagram's name so that an unchanged diagram
// renders to the same bytes.
function mermaidConfig(name) {
  return {
    startOnLoad: false,
    theme: "neutral",
    htmlLabels: false,
    flowchart: { htmlLabels: false, useMaxWidth: true },
    sequence: { useMaxWidth: true },
    state: { useMaxWidth: true },
    deterministicIds: true,
    deterministicIDSeed: name,
    fontFamily: "DejaVu Sans, Verdana, Arial, sans-serif",
  };
}

// Diagram kinds whose rendering was checked to carry no state from one
// diagram to the next within a page (see "One page for all diagrams").
// Anything else gets a fresh page of its own.
const sharedPageKinds = /^(graph|flowchart|stateDiagram(-v2)?|sequenceDiagram)\b/;

function kindOf(definition) {
  const first = definition.split("\n").map((l) => l.trim()).find((l) => l && !l.startsWith("%%"));
  return first || "";
}

// mermaid numbers a sequence diagram's actors with a counter that lives as
// long as the page; counting from the diagram's own first actor makes the
// ids the same whatever was rendered before it.
function renumberActors(svg) {
  const numbers = [...svg.matchAll(/(["#])(actor|root-)(\d+)/g)].map((m) => Number(m[3]));
  if (numbers.length === 0) return svg;
  const first = Math.min(...numbers);
  return svg.replace(/(["#])(actor|root-)(\d+)/g, (_, q, p, n) => `${q}${p}${Number(n) - first}`);
}

async function newMermaidPage(browser) {
  const page = await browser.newPage();
  await page.setContent('<!DOCTYPE html><html><head><meta charset="utf-8"></head>' +
    '<body><div id="container"></div></body></html>');
  await page.addScriptTag({ path: mermaidBundle });
  return page;
}

// Lay one diagram out in the page and serialise it as XML, as a file needs.
function renderIn(page, name, definition) {
  return page.evaluate(async (name, definition, config) => {
    /* global mermaid */
    mermaid.initialize(config);
    const container = document.getElementById("container");
    const { svg } = await mermaid.render(`diagram-${name}`, definition, container);
    container.innerHTML = svg;
    const element = container.querySelector("svg");
    element.style.backgroundColor = "white";
    const xml = new XMLSerializer().serializeToString(element);
    container.innerHTML = "";
    return xml;
  }, name, definition, mermaidConfig(name));
}

function writeIfChanged(svgPath, text) {
  if (fs.existsSync(svgPath) && fs.readFileSync(svgPath, "utf8") === text) {
    const now = new Date();
    fs.utimesSync(svgPath, now, now);
    return "unchanged";
  }
  const tmp = `${svgPath}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, svgPath);
  return "";
}

async function renderAll(browser, files) {
  let failed = 0;
  let shared = null;
  for (const mmd of files) {
    const name = path.basename(mmd, ".mmd");
    const definition = fs.readFileSync(mmd, "utf8");
    const fresh = !sharedPageKinds.test(kindOf(definition));
    let page = null;
    try {
      page = fresh ? await newMermaidPage(browser) : (shared ??= await newMermaidPage(browser));
      const svg = renumberActors(await renderIn(page, name, definition));
      const what = writeIfChanged(mmd.replace(/\.mmd$/, ".svg"), svg + "\n");
      console.log(`  ${"MERMAID".padEnd(8)} ${mmd}${what ? ` (${what})` : ""}`);
    } catch (err) {
      failed++;
      const message = String((err && err.message) || err).split("\n").slice(0, 3).join(" | ");
      console.error(`${mmd}:1: mermaid: ${message}`);
      // A failed render may leave the shared page in any state: start afresh.
      if (page === shared && shared) { await shared.close().catch(() => {}); shared = null; }
    } finally {
      if (fresh && page) await page.close().catch(() => {});
    }
  }
  return failed;
}

async function main(files) {
  if (files.length === 0) return 0;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "caracal-mermaid-"));
  let browser = null;
  try {
    browser = await puppeteer.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      userDataDir,
      args: chromiumArgs,
    });
    return (await renderAll(browser, files)) ? 1 : 0;
  } finally {
    if (browser) await browser.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

process.exitCode = await main(process.argv.slice(2));
