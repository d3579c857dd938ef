// Every string a person sees is in the language chosen: each screen of both apps, for every
// role, is read in English (no Hangul may remain) and in Korean (no English word, raw code or
// i18n key may remain). Names the demo's administrator entered (people, case references, zone
// labels, usernames) are data, not interface, and are taken out before the check; so is the
// map's attribution (© OpenStreetMap contributors) and the language button, which names the
// other language in that language. Fails with the strings it found and where.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifacts, launch, logIn, startDemo } from "./helpers.mjs";

const HANGUL = /[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]/;
// Proper names and units that are the same in both languages.
const SAME_IN_BOTH = new Set(["Bulwark", "SOS", "GPS", "TOTP", "OpenStreetMap", "Wi", "Fi", "EN", "km", "ID", "HTTP",
  // Device protocols and phone apps by their product names.
  "OsmAnd", "Traccar", "Client", "Watch", "SeTracker", "Teltonika", "OwnTracks", "GPSLogger", "Overland"]);

/** The visible text nodes and the accessible names/titles of visible elements, with where. */
async function seen(page) {
  return page.evaluate(() => {
    const skip = (el) => el.closest(".leaflet-control-attribution, #lang, [translate=no], script, style");
    const visible = (el) => el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true }) && !el.closest(".sr-only-ignore");
    const where = (el) => {
      const parts = [];
      for (let e = el; e && e !== document.body && parts.length < 3; e = e.parentElement) {
        parts.unshift(e.id ? `#${e.id}` : `${e.tagName.toLowerCase()}${e.classList.length ? `.${[...e.classList].join(".")}` : ""}`);
      }
      return parts.join(" > ");
    };
    const out = [{ text: document.title, at: "<title>" }];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      const text = n.textContent.trim();
      // Screen-reader-only text counts too: it is read out to a person.
      if (!text || !el || skip(el) || !(visible(el) || el.closest(".sr-only"))) continue;
      out.push({ text, at: where(el) });
    }
    for (const el of document.body.querySelectorAll("[aria-label], [title], [placeholder], [alt]")) {
      if (skip(el) || !visible(el)) continue;
      for (const a of ["aria-label", "title", "placeholder", "alt"]) {
        const v = el.getAttribute(a)?.trim();
        if (v) out.push({ text: v, at: `${where(el)} @${a}` });
      }
    }
    for (const o of document.querySelectorAll("select option")) {
      if (!skip(o) && o.parentElement && visible(o.parentElement)) out.push({ text: o.textContent.trim(), at: `${where(o.parentElement)} option` });
    }
    return out;
  });
}

/** What is wrong with the strings for `lang`, after the data strings are taken out. */
function untranslated(strings, lang, data) {
  const bad = [];
  for (const { text, at } of strings) {
    let rest = text;
    for (const d of data) rest = rest.split(d).join(" ");
    if (lang === "en") {
      if (HANGUL.test(rest)) bad.push(`${at}: ${JSON.stringify(text)}`);
      continue;
    }
    // Korean: raw codes (snake_case), i18n keys (camelCase) and English words of 3+ letters.
    const words = rest.match(/[A-Za-z][A-Za-z_]*[A-Za-z]/g) ?? [];
    const english = words.filter((w) => w.length >= 3 && !SAME_IN_BOTH.has(w));
    if (english.length) bad.push(`${at}: ${JSON.stringify(text)} (${[...new Set(english)].join(", ")})`);
  }
  return [...new Set(bad)];
}

async function get(base, token, path) {
  const r = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200, `${path}: ${r.status}`);
  return r.json();
}

/** Counts each page's API requests in flight (the live stream, which never ends, aside). */
function track(page) {
  page.inflight = 0;
  const api = (r) => r.url().includes("/api/") && !r.url().includes("/api/v1/live");
  page.on("request", (r) => { if (api(r)) page.inflight++; });
  const done = (r) => { if (api(r)) page.inflight--; };
  page.on("requestfinished", done);
  page.on("requestfailed", done);
  return page;
}

/** Waits for a screen to settle: no API request in flight for half a second, then a frame. */
async function settle(page) {
  const end = Date.now() + 15_000;
  let quietSince = Date.now();
  while (Date.now() < end) {
    if (page.inflight > 0) quietSince = Date.now();
    else if (Date.now() - quietSince > 500) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
}

test("every screen of both apps is wholly in the chosen language", { timeout: 600_000 }, async () => {
  const demo = await startDemo();
  const browser = await launch();
  const failures = [];
  try {
    // The data the demo entered: names, references, labels and usernames are shown as typed.
    const people = await get(demo.base, demo.adminToken, "/api/v1/people");
    const cases = await get(demo.base, demo.adminToken, "/api/v1/cases");
    const accounts = await get(demo.base, demo.adminToken, "/api/v1/accounts");
    const data = [
      ...people.map((p) => p.display_name), ...cases.map((c) => c.reference), ...accounts.map((a) => a.username),
      "Home", "Workplace", "Bulwark demo",
    ].filter(Boolean).sort((a, b) => b.length - a.length);

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "ko-KR" });
    await ctx.route("https://tile.openstreetmap.org/**", (r) => r.abort());
    const check = async (page, name) => {
      await settle(page);
      for (const lang of ["ko", "en"]) {
        const want = await page.evaluate(() => document.documentElement.lang);
        if (want !== lang) {
          await page.click("#lang");
          await page.waitForFunction((l) => document.documentElement.lang === l, lang);
          await settle(page);
        }
        const bad = untranslated(await seen(page), lang, data);
        if (bad.length) failures.push(`${name} [${lang}]:\n  ${bad.join("\n  ")}`);
        await page.screenshot({ path: join(artifacts, `i18n-${name}-${lang}.png`) });
      }
      // Back to Korean for the next screen (the choice is remembered per browser).
      if ((await page.evaluate(() => document.documentElement.lang)) !== "ko") await page.click("#lang");
      await page.waitForFunction(() => document.documentElement.lang === "ko");
    };

    // ---- the console, each role and each of its screens ----
    const console_ = track(await ctx.newPage());
    await console_.goto(`${demo.base}/`);
    await check(console_, "console-login");
    await logIn(console_, demo.base, demo.username, demo.password);
    // The first approach (Mapo) raises alerts within about 90 s: the queue then has alert texts.
    await console_.waitForSelector(".alert-item.critical", { timeout: 150_000 });
    await check(console_, "console-live");
    await console_.locator(".alert-item button", { hasText: /이력|History/ }).first().click().catch(() => {});
    await console_.waitForSelector(".overlay", { timeout: 5_000 }).catch(() => {});
    await check(console_, "console-alert-history");
    await console_.keyboard.press("Escape");
    for (const hash of ["#/cases", `#/cases/${cases[0].id}`, "#/replay", "#/measures"]) {
      await console_.goto(`${demo.base}/${hash}`);
      if (hash === "#/replay") {
        await console_.waitForSelector("#replay-device option", { state: "attached" });
        await console_.fill("#replay-purpose-text", "Checking the translations of the replay");
        await console_.click(".replay-form button[type=submit]");
        await console_.waitForSelector("path.replay-track", { timeout: 15_000 });
      }
      await check(console_, `console-${hash.replace(/[#/]+/g, "-").replace(/^-|-$/g, "")}`);
    }
    await console_.close();
    for (const [role, user, hashes] of [
      ["police", "police1", ["#/tasks", "#/live", "#/cases"]],
      ["clerk", "clerk1", ["#/court"]],
      ["judge", "judge1", ["#/court"]],
      ["auditor", "auditor1", ["#/audit"]],
    ]) {
      const p = track(await ctx.newPage());
      await logIn(p, demo.base, user, demo.password);
      for (const hash of hashes) {
        await p.goto(`${demo.base}/${hash}`);
        await check(p, `console-${role}-${hash.replace(/[#/]+/g, "")}`);
      }
      await p.evaluate(() => sessionStorage.clear());
      await p.close();
    }
    const admin = track(await ctx.newPage());
    await admin.goto(`${demo.base}/#token=${encodeURIComponent(demo.adminToken)}`);
    for (const hash of ["#/devices/unknown", "#/accounts"]) {
      await admin.goto(`${demo.base}/${hash}`);
      await check(admin, `console-admin-${hash.replace(/[#/]+/g, "-").replace(/^-/, "")}`);
    }
    await admin.close();
    await ctx.close();

    // ---- the victim app, each screen, and the discreet cover ----
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: "ko-KR" });
    await phone.route("https://tile.openstreetmap.org/**", (r) => r.abort());
    const v = track(await phone.newPage());
    await v.goto(`${demo.base}/app/`);
    await check(v, "victim-login");
    await v.fill("#username-input", "victim1");
    await v.fill("#password-input", demo.password);
    await v.click("#login-form button[type=submit]");
    await v.waitForSelector("#home:not([hidden])");
    await v.waitForFunction(() => document.querySelector("#banner")?.dataset.status !== undefined && !/확인 중/.test(document.querySelector("#banner-text").textContent));
    // Her own location (the server's copy), so its source is shown too.
    await v.evaluate(() => fetch("/api/v1/me/location", {
      method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${sessionStorage.getItem("bw-token")}` },
      body: JSON.stringify({ lat: 37.556, lon: 126.904, accuracy_m: 15, time: new Date().toISOString() }),
    }));
    await v.click("#test-alert").catch(() => {});
    for (const screen of ["home", "alerts-screen", "order-screen", "log-screen", "petition-screen"]) {
      await v.click(`#tabs button[data-screen="${screen}"]`);
      if (screen === "alerts-screen") await v.click("#test-alert");
      await check(v, `victim-${screen}`);
    }
    await v.click(`#tabs button[data-screen="home"]`);
    await v.click("#discreet");
    await check(v, "victim-discreet");
    // "Hide" leaves nothing that says safety, danger or the case: in both languages the covered
    // page reads as a weather page, title and buttons included (item 5 of issue 16).
    for (const lang of ["ko", "en"]) {
      if ((await v.evaluate(() => document.documentElement.lang)) !== lang) await v.click("#lang");
      // What is on screen (text for screen readers only, `.sr-only`, is not).
      const shown = await v.evaluate(() => {
        const sr = [...document.querySelectorAll(".sr-only")];
        sr.forEach((e) => { e.hidden = true; });
        const text = `${document.title}\n${document.body.innerText}`;
        sr.forEach((e) => { e.hidden = false; });
        return text;
      });
      if (!(lang === "ko" ? /오늘의 날씨/ : /Today's weather/).test(shown)) failures.push(`discreet [${lang}]: no cover: ${JSON.stringify(shown)}`);
      const tells = shown.match(/SOS|안전|Safety|가해자|Offender|피해자|보호|protect|나가기|exit|경보|alert|위치|location|가리기|Hide|신고|emergency|명령|order|\d+ m\b/gi);
      if (tells) failures.push(`discreet [${lang}]: the covered page still says ${JSON.stringify(tells)}: ${JSON.stringify(shown)}`);
      await v.screenshot({ path: join(artifacts, `victim-discreet-cover-${lang}.png`) });
    }
    if ((await v.evaluate(() => document.documentElement.lang)) !== "ko") await v.click("#lang");
    await v.click("#discreet");
    await phone.close();
  } finally {
    await browser.close();
    demo.proc.kill("SIGTERM");
  }
  assert.deepEqual(failures, [], `untranslated strings:\n${failures.join("\n")}`);
});
