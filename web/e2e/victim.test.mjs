// The victim app in a real (phone-sized) browser against the real demo: she signs in, shares her
// location, sees the offender approach (distance shrinks, the banner turns), sends a silent SOS
// by press-and-hold that reaches the monitoring console, reads her order and who viewed her
// data, cannot reach another case, and leaves with the quick exit. Screenshots and the measured
// SOS → console latency go to web/e2e/artifacts/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { artifacts, launch, startDemo } from "./helpers.mjs";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
// The Mapo case's home (crates/bulwark/src/demo.rs): her browser says she is there.
const HOME = { latitude: 37.556, longitude: 126.904, accuracy: 15 };
const EXIT = "https://www.weather.go.kr/";

/** Polls `f` until it returns a truthy value or the deadline passes (no timing assertions). */
async function until(what, f, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function apiAs(base, token, method, path, body) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function axeSerious(page) {
  await page.evaluate(AXE); // not a <script> tag: the CSP refuses inline scripts
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
}

test("victim app: approach, silent SOS to the console, her case only, quick exit", { timeout: 360_000 }, async () => {
  const demo = await startDemo();
  const browser = await launch();
  try {
    // A phone: small viewport, touch, Korean, her location granted and set to her home.
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, hasTouch: true, locale: "ko-KR",
      permissions: ["geolocation"], geolocation: HOME, serviceWorkers: "allow",
    });
    // No internet here: tiles fail fast (the app falls back to a grid); the exit page is stubbed.
    await phone.route("https://tile.openstreetmap.org/**", (r) => r.abort());
    await phone.route(`${EXIT}**`, (r) => r.fulfill({ status: 200, contentType: "text/html", body: "<title>날씨누리</title><h1>날씨</h1>" }));
    const page = await phone.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const apiCalls = [];
    page.on("request", (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith("/api/")) apiCalls.push(`${r.method()} ${u.pathname}`);
    });

    await page.goto(`${demo.base}/app/`);
    assert.equal(await page.evaluate(() => document.documentElement.lang), "ko");
    await page.fill("#username-input", "victim1");
    await page.fill("#password-input", demo.password);
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("#home:not([hidden])");
    const first = await until("a first status", async () => {
      const s = await page.getAttribute("#banner", "data-status");
      return s && s !== "unknown" ? s : null;
    }, 30_000);
    console.log(`first status: ${first}`);
    await page.screenshot({ path: join(artifacts, "victim-home.png") });

    // Accessibility of the home screen: no serious or critical axe violations.
    const violations = await axeSerious(page);
    assert.deepEqual(violations, [], `axe: ${violations.join("\n")}`);

    // Her own location, from the browser's Geolocation API, is stored: the app shows "last sent".
    await page.click("#share-toggle");
    assert.equal(await page.getAttribute("#share-toggle", "aria-pressed"), "true");
    await page.waitForFunction(() => {
      const v = document.getElementById("share-last-sent")?.textContent ?? "—";
      return v !== "—" && v.trim() !== "";
    }, null, { timeout: 30_000 });
    assert.equal((await page.textContent("#share-permission"))?.trim(), "허용됨");
    assert.match(await page.textContent("#share-accuracy"), /±15 m/);

    // The offender approaches: the banner leaves safe/degraded for in_area, approaching or
    // violation, the marker appears inside her disclosure radius and the distance shrinks.
    const seen = [];
    const distances = [];
    await until("the offender approaching or violating", async () => {
      const s = await page.getAttribute("#banner", "data-status");
      if (seen[seen.length - 1] !== s) seen.push(s);
      const d = await page.getAttribute("#offender", "data-distance");
      const disclosed = (await page.getAttribute("#offender", "data-offender")) === "disclosed";
      if (disclosed && d && distances[distances.length - 1] !== Number(d)) distances.push(Number(d));
      return s === "approaching" || s === "violation";
    }, 180_000);
    // The engine warns on his predicted approach, before he is inside her disclosure radius;
    // the marker appears once he is inside it.
    await page.waitForSelector(".off-marker .dot", { timeout: 120_000 });
    // Shrinking: wait until a distance below the first disclosed one is shown.
    await until("a shorter distance", async () => {
      const d = Number(await page.getAttribute("#offender", "data-distance"));
      if (d && distances[distances.length - 1] !== d) distances.push(d);
      return distances.length >= 2 && Math.min(...distances.slice(1)) < distances[0];
    }, 60_000);
    console.log(`banner sequence: ${seen.join(" → ")}; distances: ${distances.join(", ")} m`);
    assert.ok(seen.some((s) => s === "approaching" || s === "violation"), seen.join(","));
    assert.ok(await page.isVisible("#off-age"), "the disclosed position shows its age");
    await page.screenshot({ path: join(artifacts, "victim-approach.png") });

    // The monitoring console, as the officer, in a second window.
    const desk = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await desk.route("https://tile.openstreetmap.org/**", (r) => r.abort());
    const consolePage = await desk.newPage();
    await consolePage.goto(`${demo.base}/`);
    await consolePage.fill("#username-input", demo.username);
    await consolePage.fill("#password-input", demo.password);
    await consolePage.click("#login-form button[type=submit]");
    await consolePage.waitForSelector(".alert-item", { timeout: 60_000 });
    const sosBefore = await consolePage.locator(".alert-item", { hasText: "SOS" }).count();
    assert.equal(sosBefore, 0, "no SOS before she presses");

    // Silent SOS: press and hold ~1.5 s on the button (one thumb), then release.
    const box = await page.locator("#sos").boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.waitForFunction(() => document.getElementById("sos-note")?.dataset.state === "sending"
      || document.getElementById("sos-note")?.dataset.state === "sent", null, { timeout: 5_000 });
    await page.mouse.up();
    const released = Date.now();
    const shownAt = await consolePage.waitForFunction(() => {
      const item = [...document.querySelectorAll(".alert-item")].find((e) => e.textContent.includes("SOS"));
      return item ? Date.now() : null;
    }, null, { timeout: 30_000, polling: "raf" }).then((h) => h.jsonValue());
    await page.waitForFunction(() => document.getElementById("sos-note")?.dataset.state === "sent", null, { timeout: 10_000 });
    const sendStart = Number(await page.getAttribute("#sos-note", "data-send-start"));
    const acked = Number(await page.getAttribute("#sos-note", "data-sent-at"));
    const latency = {
      release_to_console_ms: shownAt - released,
      send_start_to_console_ms: shownAt - sendStart,
      send_start_to_durable_ack_ms: acked - sendStart,
      measured_at: new Date().toISOString(),
      how: "web/e2e/victim.test.mjs: hold #sos 1.5 s in the victim app, time until the officer's console (live stream) lists an SOS alert; same machine clock",
    };
    writeFileSync(join(artifacts, "latency.json"), JSON.stringify(latency, null, 2));
    console.log(`SOS latency: ${JSON.stringify(latency)}`);
    assert.ok(await consolePage.locator(".alert-item", { hasText: "SOS" }).count() >= 1);
    await page.screenshot({ path: join(artifacts, "victim-sos.png") });
    await consolePage.screenshot({ path: join(artifacts, "console-sos.png") });

    // Her order: conditions and expiry.
    await page.click("#tabs button[data-screen=order-screen]");
    await page.waitForSelector(".order .days-left");
    assert.match(await page.textContent(".order .days-left"), /\d+ 일/);
    assert.equal(await page.locator(".order").count(), 1, "only her case's order");
    await page.screenshot({ path: join(artifacts, "victim-order.png") });

    // Who viewed her data: the officer's console reads are there.
    await page.click("#tabs button[data-screen=log-screen]");
    await page.waitForSelector("#access-log li");
    await until("the officer in her access log", async () => {
      await page.click("#tabs button[data-screen=log-screen]");
      return (await page.textContent("#access-log")).includes("officer");
    }, 20_000);
    await page.screenshot({ path: join(artifacts, "victim-access-log.png") });

    // Alerts and petitions (filing, the decision and test alerts: victim-court.test.mjs).
    await page.click("#tabs button[data-screen=alerts-screen]");
    await page.waitForSelector("#alerts li");
    await page.click("#tabs button[data-screen=petition-screen]");
    await page.waitForSelector("#petitions li");

    // English.
    await page.click("#tabs button[data-screen=home]");
    await page.click("#lang");
    assert.equal(await page.evaluate(() => document.documentElement.lang), "en");
    await page.screenshot({ path: join(artifacts, "victim-home-en.png") });
    await page.click("#discreet");
    assert.equal(await page.title(), "Weather");
    await page.click("#discreet");

    // She can never open another case: her session against other cases' routes is refused,
    // listings hold her case only, and her app asked only for her own routes.
    const login = await fetch(`${demo.base}/api/v1/auth/login`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "victim1", password: demo.password }),
    }).then((r) => r.json());
    const mine = await apiAs(demo.base, login.token, "GET", "/api/v1/me/case");
    assert.equal(mine.status, 200);
    const cases = await apiAs(demo.base, login.token, "GET", "/api/v1/cases");
    assert.ok(cases.body.every((c) => c.id === mine.body.case_id), JSON.stringify(cases.body));
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const to = new Date(Date.now() + 3_600_000).toISOString();
    for (const device of [3, 4, 5, 6]) {
      const r = await apiAs(demo.base, login.token, "GET",
        `/api/v1/devices/${device}/track?from=${from}&to=${to}&purpose_code=data_subject_request&purpose_text=looking%20at%20another%20case`);
      assert.equal(r.status, 403, `device ${device} track: ${JSON.stringify(r.body)}`);
    }
    for (const other of [2, 3]) {
      const r = await apiAs(demo.base, login.token, "POST", "/api/v1/orders", {
        case_id: other, kind: "provisional_measure", valid_from: from, no_approach_m: 100, warning_m: 500, disclosure_radius_m: 600,
      });
      assert.equal(r.status, 403, `order for case ${other}`);
    }
    const allowed = /^(GET|POST|PUT|DELETE) \/api\/v1\/(me\/[a-z-]+(\/test)?|auth\/(login|me|logout)|petitions(\/\d+)?|push\/vapid-public-key)$/;
    const strays = [...new Set(apiCalls)].filter((c) => !allowed.test(c));
    assert.deepEqual(strays, [], "the app called only her own routes");

    // The server unreachable: the app says so and shows protection degraded, never a frozen
    // "safe"; it recovers by itself.
    // The service worker controls the app (installable) but never answers an API request.
    await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 15_000 });
    await phone.setOffline(true);
    const cached = await page.evaluate(async () => {
      try {
        await fetch("/api/v1/me/case", { headers: { Authorization: `Bearer ${sessionStorage.getItem("bw-token")}` } });
        return "answered";
      } catch {
        return "network error";
      }
    });
    assert.equal(cached, "network error", "an API answer came from a cache");
    await page.waitForSelector("#conn:not([hidden])", { timeout: 20_000 });
    assert.equal(await page.getAttribute("#banner", "data-status"), "degraded");
    if (await page.isVisible("#off-age")) {
      // A position disclosed before the connection dropped is shown as old, not current.
      assert.ok(await page.isVisible(".old-warn"), "the last known position is flagged as old");
    }
    await page.screenshot({ path: join(artifacts, "victim-offline.png") });
    await phone.setOffline(false);
    await page.waitForSelector("#conn", { state: "hidden", timeout: 20_000 });

    // Quick exit: Escape twice leaves for the neutral page and forgets the session.
    await page.keyboard.press("Escape");
    await page.keyboard.press("Escape");
    await page.waitForURL(`${EXIT}**`, { timeout: 10_000 });
    const back = await phone.newPage();
    await back.goto(`${demo.base}/app/`);
    await back.waitForSelector("#login-screen:not([hidden])");
    assert.equal(await back.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("bw-")).length), 0);

    assert.deepEqual(errors, [], `page errors: ${errors.join("\n")}`);
  } finally {
    await browser.close();
    demo.proc.kill("SIGTERM");
  }
});
