// Browser test of the web UI: a real Chromium, driven by playwright-core, against a real
// `avatar up` on the demo data (infra/browser-test.sh starts it and sets the environment).
// Plain node, no test framework: each step throws on failure, and the process exits 1.
//
// Env: AVATAR_URL (http://127.0.0.1:PORT), AVATAR_TOKEN (an editor token for ada-lovelace),
//      CHROMIUM (the browser binary), SCREENSHOTS (a folder; one PNG per step lands there),
//      PLAYWRIGHT (optional: path of the playwright-core package; else normal resolution).
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const need = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (run infra/browser-test.sh)`);
  return v;
};
const URL_ = need("AVATAR_URL");
const TOKEN = need("AVATAR_TOKEN");
const CHROMIUM = need("CHROMIUM");
const SHOTS = need("SCREENSHOTS");
const AVATAR = process.env.AVATAR_ID || "ada-lovelace";
const QUESTION = "What did Ada write about the Analytical Engine?";
// The base model on CPU: a cold first answer can take a while on a busy CI runner.
const ANSWER_MS = Number(process.env.ANSWER_TIMEOUT_MS || 300_000);

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT || "playwright-core");

mkdirSync(SHOTS, { recursive: true });
const t0 = Date.now();
let shotNo = 0;
const written = [];
async function shot(page, name) {
  const file = join(SHOTS, `${String(++shotNo).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  written.push(file);
}
function step(msg) {
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
}
function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
const pageErrors = [];
let page;
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") pageErrors.push("console: " + m.text()); });
  page.on("response", (r) => { if (r.status() >= 400) pageErrors.push(`HTTP ${r.status()} ${r.url()}`); });

  step("open the app");
  await page.goto(URL_ + "/");
  await page.locator("h1", { hasText: "Avatar" }).waitFor();
  await shot(page, "open");

  step("enter the token and pick the avatar");
  await page.fill("#token", TOKEN);
  await page.click("#login button[type=submit]");
  await page.locator(`#avatar option[value="${AVATAR}"]`).waitFor({ state: "attached" });
  await page.selectOption("#avatar", AVATAR);
  check((await page.inputValue("#avatar")) === AVATAR, "avatar not selected");
  check((await page.textContent("#notice")).trim() === "", "notice after login: " + (await page.textContent("#notice")));
  await shot(page, "logged-in");

  step("keyboard: Tab from the avatar picker reaches the question box");
  await page.focus("#avatar");
  let tabs = 0;
  while ((await page.evaluate(() => document.activeElement && document.activeElement.id)) !== "question") {
    check(++tabs <= 12, "Tab never reached the question box");
    await page.keyboard.press("Tab");
  }
  step(`  reached #question after ${tabs} Tab press(es)`);

  // Record every length the answer's text takes, to tell a streamed answer from one that
  // lands all at once.
  await page.evaluate(() => {
    window.__lens = [];
    new MutationObserver(() => {
      const all = document.querySelectorAll("#log .msg.assistant");
      if (all.length) window.__lens.push(all[all.length - 1].textContent.length);
    }).observe(document.getElementById("log"), { childList: true, subtree: true, characterData: true });
  });

  step("ask (typed, Enter sends)");
  await page.keyboard.type(QUESTION);
  await page.keyboard.press("Enter");
  await page.locator("#log .msg.user", { hasText: QUESTION }).waitFor({ timeout: 5_000 });
  check((await page.inputValue("#question")) === "", "Enter did not send (question box not cleared)");
  const out = page.locator("#log .msg.assistant").last();
  await page.waitForFunction(
    () => [...document.querySelectorAll("#log .msg.assistant")].pop()?.textContent.length > 0,
    null, { timeout: ANSWER_MS });
  step("  first streamed text arrived");
  await shot(page, "streaming");
  // While an answer streams, Enter must not send a second question on top of it.
  if (!(await page.isDisabled("#send"))) step("  (the answer finished before the double-send check)");
  else {
    await page.keyboard.type("again");
    await page.keyboard.press("Enter");
    check((await page.locator("#log .msg.user").count()) === 1, "Enter sent a second question mid-answer");
    check((await page.inputValue("#question")) === "again", "the typed text was lost mid-answer");
    await page.fill("#question", "");
  }
  const cite = page.locator("#log .cites button").first();
  await cite.waitFor({ timeout: ANSWER_MS });
  const answer = (await out.textContent()) || "";
  check(!answer.startsWith("⚠"), "the answer is an error: " + answer);
  check(answer.trim().length > 0, "empty answer");
  const lens = await page.evaluate(() => window.__lens);
  const distinct = new Set(lens.filter((n) => n > 0)).size;
  check(distinct >= 2, `answer did not stream (text lengths seen: ${JSON.stringify(lens)})`);
  check(!(await page.isDisabled("#send")), "Send still disabled after the answer");
  check(await page.evaluate(() => document.activeElement.id === "question"), "focus not back on the question box");
  step(`  answer (${answer.length} chars in ${distinct} steps): ${answer.slice(0, 100).replace(/\s+/g, " ")}…`);
  await shot(page, "answer");

  step("open the citation: the record panel shows the record");
  const citeLabel = (await cite.textContent()) || "";
  check(/^\[1\] \S/.test(citeLabel), "citation label: " + citeLabel);
  await cite.click();
  await page.locator("#panel").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.getElementById("panel-text").textContent.trim().length > 0);
  check((await page.locator("#panel-meta dt", { hasText: "source" }).count()) === 1, "record panel has no source");
  check(await page.evaluate(() => document.activeElement.id === "panel-close"), "focus not on the panel's close button");
  check(await page.evaluate(() => { const p = document.getElementById("panel"); return p.scrollWidth <= p.clientWidth; }),
    "the record panel scrolls sideways (a long value does not wrap)");
  await shot(page, "record");
  await page.keyboard.press("Escape");
  await page.locator("#panel").waitFor({ state: "hidden" });

  step("add a memory with a unique word");
  const word = "zephyrquill" + Date.now().toString(36);
  await page.click("#tab-memories");
  await page.locator("#memory-form").waitFor({ state: "visible" });
  await page.fill("#mem-title", "Browser test");
  await page.fill("#mem-text", `She kept a notebook she called ${word} for the engine's punched cards.`);
  await page.fill("#mem-by", "the browser test");
  await page.click("#mem-save");
  await page.locator("#memory-list li", { hasText: word }).waitFor();
  check((await page.inputValue("#mem-text")) === "", "memory form not reset after saving");
  await shot(page, "memory");

  step("search for it");
  await page.click("#tab-search");
  await page.fill("#q", word);
  const hit = page.locator("#hits li", { hasText: word });
  // Indexing may trail the write by a moment: search again until it shows, for a while.
  const deadline = Date.now() + 30_000;
  for (let tries = 1; ; tries++) {
    await page.press("#q", "Enter");
    await page.waitForFunction(() => !document.getElementById("hits").hasAttribute("aria-busy"), null, { timeout: 60_000 });
    if (await hit.count()) { step(`  found on try ${tries}`); break; }
    step(`  try ${tries}: ${(await page.textContent("#hits")).slice(0, 80)}`);
    if (Date.now() > deadline) throw new Error(`memory "${word}" not found by search: ${await page.textContent("#hits")}`);
    await page.waitForTimeout(500);
  }
  check((await hit.count()) === 1, `the memory shows ${await hit.count()} times in the results`);
  check((await hit.first().locator(".meta").textContent()).startsWith("memory"), "hit not labelled as a memory");
  check((await hit.first().locator(".snippet mark").allTextContents()).includes(word), "the matched word is not highlighted");
  check(!(await hit.first().locator(".snippet").textContent()).includes("**"), "raw ** markers in the snippet");
  await shot(page, "search");
  await hit.first().locator("button.cite-link").click();
  await page.locator("#panel-text", { hasText: word }).waitFor();
  await shot(page, "search-record");
  await page.click("#panel-close");
  await page.locator("#panel").waitFor({ state: "hidden" });

  step("phone viewport 390×844");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload(); // the token is kept in localStorage: the avatars load by themselves
  await page.locator(`#avatar option[value="${AVATAR}"]`).waitFor({ state: "attached" });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page scrolls sideways on a phone (${overflow}px too wide)`);
  const send = await page.locator("#send").boundingBox();
  check(send && send.x >= 0 && send.x + send.width <= 390, "Send button off screen on a phone");
  const box = await page.locator("#question").boundingBox();
  check(box && box.height < 150, `question box ${box && box.height}px tall on a phone`);
  await shot(page, "phone");
  await page.click("#tab-search");
  await page.fill("#q", word);
  await page.press("#q", "Enter");
  await hit.first().waitFor();
  await shot(page, "phone-search");

  check(pageErrors.length === 0, "errors in the page:\n" + pageErrors.join("\n"));
  step(`passed; ${written.length} screenshots in ${SHOTS}`);
} catch (e) {
  if (page) {
    try { await shot(page, "failure"); } catch (_) { /* the page may be gone */ }
  }
  console.error("FAILED: " + (e && e.stack ? e.stack : e));
  if (pageErrors.length) console.error("page errors:\n" + pageErrors.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
