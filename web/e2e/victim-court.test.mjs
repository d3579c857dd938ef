// The victim app against the court workflow, her alerts and Web Push, in a real (phone-sized)
// browser against the real demo: she files a petition through the form and sees it filed; a
// clerk and a judge (over the HTTP API) review and grant it; her app shows the granted notice,
// the petition's history and the new order. She sends a test alert and it is listed as `test`
// and sounds; silent mode is kept on the server (a fresh browser sees it) and then nothing
// sounds. Headless Chromium has no push service: the app says so instead of failing, and the
// service worker's push handler is checked with a push delivered through DevTools.
// Screenshots go to web/e2e/artifacts/ (victim-petition.png, victim-petition-granted.png,
// victim-notices.png, victim-alerts.png, victim-push.png).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { artifacts, launch, startDemo } from "./helpers.mjs";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

async function axeSerious(page) {
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(AXE); // not a <script> tag: the CSP refuses inline scripts
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
}

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
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function loginAs(base, username, password) {
  const r = await apiAs(base, null, "POST", "/api/v1/auth/login", { username, password });
  assert.equal(r.status, 200, `login ${username}: ${JSON.stringify(r.body)}`);
  return r.body.token;
}

async function phoneContext(browser) {
  const ctx = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, hasTouch: true, locale: "ko-KR",
    permissions: ["notifications"], serviceWorkers: "allow",
  });
  await ctx.route("https://tile.openstreetmap.org/**", (r) => r.abort());
  return ctx;
}

async function signIn(page, base, password) {
  await page.goto(`${base}/app/`);
  await page.fill("#username-input", "victim1");
  await page.fill("#password-input", password);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#home:not([hidden])");
}

test("victim app: petition → review → grant → notice and order; test alert; silent mode on the server; push", { timeout: 240_000 }, async () => {
  const demo = await startDemo();
  const browser = await launch();
  try {
    const phone = await phoneContext(browser);
    const page = await phone.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await signIn(page, demo.base, demo.password);
    const victim = await loginAs(demo.base, "victim1", demo.password);
    const ordersBefore = (await apiAs(demo.base, victim, "GET", "/api/v1/me/case")).body.orders.map((o) => o.id);

    // She files a petition through the form: it is listed as filed, with its history.
    await page.click("#tabs button[data-screen=petition-screen]");
    await page.selectOption("#p-kind", "restraining_order");
    await page.fill("#p-distance", "150");
    await page.fill("#p-days", "60");
    await page.check("#p-em");
    await page.fill("#p-statement", "그가 집 앞에서 기다립니다. 접근 금지를 신청합니다.");
    await page.click("#petition-form button[type=submit]");
    const id = await until("the petition filed", async () => page.getAttribute("#petition-result", "data-petition-id"), 15_000);
    const row = `#petitions li[data-petition-id="${id}"]`;
    await page.waitForSelector(`${row}[data-state=filed]`, { timeout: 15_000 });
    assert.match(await page.textContent(row), /접근금지명령/);
    assert.match(await page.textContent(row), /150 m/);
    assert.equal(await page.locator(`${row} .events li[data-event=filed]`).count(), 1);
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await page.screenshot({ path: join(artifacts, "victim-petition.png") });
    const mine = await apiAs(demo.base, victim, "GET", "/api/v1/petitions");
    assert.deepEqual(mine.body.map((p) => [p.id, p.state, p.petitioner]).filter(([i]) => String(i) === id), [[Number(id), "filed", "victim"]]);

    // The court, over the HTTP API: the clerk reviews, the judge grants.
    const clerk = await loginAs(demo.base, "clerk1", demo.password);
    const judge = await loginAs(demo.base, "judge1", demo.password);
    const reviewed = await apiAs(demo.base, clerk, "POST", `/api/v1/petitions/${id}/review`);
    assert.equal(reviewed.status, 200, JSON.stringify(reviewed.body));
    assert.equal(reviewed.body.state, "under_review");
    const granted = await apiAs(demo.base, judge, "POST", `/api/v1/petitions/${id}/decision`, { decision: "grant", reasons: "repeated waiting at her home" });
    assert.equal(granted.status, 200, JSON.stringify(granted.body));
    assert.equal(granted.body.state, "in_force");
    const orderId = granted.body.order_id;
    assert.ok(orderId != null && !ordersBefore.includes(orderId), `a new order: ${orderId}`);

    // Her app: the granted notice on the home screen (with the end date), the petition in
    // force with its history, the new order under "my order".
    await page.click("#tabs button[data-screen=home]");
    await page.waitForSelector("#notice[data-kind=granted]", { timeout: 30_000 });
    assert.match(await page.textContent("#notice"), /보호 명령이 내려졌습니다/);
    assert.match(await page.textContent("#notice"), /\d{4}\. ?\d{1,2}\. ?\d{1,2}\./, "the order's end date");
    console.log(`notice: ${await page.textContent("#notice")}`);
    await page.screenshot({ path: join(artifacts, "victim-notices.png") });
    assert.deepEqual(await axeSerious(page), [], "axe: home with a notice");
    await page.click("#tabs button[data-screen=order-screen]");
    await page.waitForSelector(`.order[data-order-id="${orderId}"]`, { timeout: 15_000 });
    assert.match(await page.textContent(`.order[data-order-id="${orderId}"]`), /효력 있음/);
    await page.waitForSelector("#notices li[data-kind=granted]");
    await page.click("#tabs button[data-screen=petition-screen]");
    await page.waitForSelector(`${row}[data-state=in_force]`, { timeout: 15_000 });
    for (const ev of ["filed", "review_started", "granted"]) {
      assert.equal(await page.locator(`${row} .events li[data-event=${ev}]`).count(), 1, `history: ${ev}`);
    }
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await page.screenshot({ path: join(artifacts, "victim-petition-granted.png") });
    assert.deepEqual(await axeSerious(page), [], "axe: petitions");

    // Push: headless Chromium has no push service. The switch asks, tries, and says so.
    await page.click("#tabs button[data-screen=alerts-screen]");
    await page.waitForSelector("#push-state[data-state]");
    await page.click("#push-toggle");
    const pushState = await until("a push outcome", async () => {
      const s = await page.getAttribute("#push-state", "data-state");
      return s && s !== "working" && s !== "off" ? s : null;
    }, 40_000);
    console.log(`push: ${pushState}: ${await page.textContent("#push-state")}`);
    if (pushState !== "on") {
      assert.ok(["unavailable", "unsupported"].includes(pushState), pushState);
      assert.match(await page.textContent("#push-state"), /이 브라우저에서는 푸시 알림을 사용할 수 없습니다/);
    }

    // Her test alert: listed as class `test`, and it sounds (silent mode is off).
    await page.click("#test-alert");
    await page.waitForSelector("#alerts li[data-class=test]", { timeout: 15_000 });
    assert.equal(await page.getAttribute("body", "data-last-signal"), "test");
    const listed = await apiAs(demo.base, victim, "GET", "/api/v1/me/alerts");
    assert.ok(listed.body.some((a) => a.class === "test" && a.kind === "test"), JSON.stringify(listed.body));
    await page.screenshot({ path: join(artifacts, "victim-alerts.png") });
    assert.deepEqual(await axeSerious(page), [], "axe: alerts");

    // Silent mode is kept on the server: saved, survives a reload and reaches a fresh browser.
    assert.equal(await page.isChecked("#silent"), false);
    const saved = page.waitForResponse((r) => r.url().endsWith("/api/v1/me/settings") && r.request().method() === "PUT");
    await page.check("#silent");
    assert.equal((await saved).status(), 200);
    assert.deepEqual((await apiAs(demo.base, victim, "GET", "/api/v1/me/settings")).body, { silent: true });
    await page.reload();
    await page.waitForSelector("#home:not([hidden])");
    await page.click("#tabs button[data-screen=alerts-screen]");
    await until("silent mode after the reload", () => page.isChecked("#silent"), 10_000);
    const other = await phoneContext(browser);
    const page2 = await other.newPage();
    await signIn(page2, demo.base, demo.password);
    await page2.click("#tabs button[data-screen=alerts-screen]");
    await until("silent mode in a fresh browser", () => page2.isChecked("#silent"), 10_000);
    await other.close();
    // …and then a new alert makes no sound and no vibration.
    const before = await page.locator("#alerts li[data-class=test]").count();
    await page.click("#test-alert");
    await until("the second test alert", async () => (await page.locator("#alerts li[data-class=test]").count()) > before, 15_000);
    assert.equal(await page.getAttribute("body", "data-last-signal"), "silent");

    // The service worker's push handler, with a push delivered through DevTools: neutral,
    // class-specific words, tagged by alert, silent honoured; discreet mode says even less.
    await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 15_000 });
    const cdp = await phone.newCDPSession(page);
    const regs = [];
    cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => regs.push(...e.registrations));
    await cdp.send("ServiceWorker.enable");
    const reg = await until("the service worker registration", async () => regs.find((r) => r.scopeURL.endsWith("/app/")), 10_000);
    const deliver = (payload) => cdp.send("ServiceWorker.deliverPushMessage", {
      origin: demo.base, registrationId: reg.registrationId, data: JSON.stringify(payload),
    });
    const shown = () => page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications())
      .map((n) => ({ title: n.title, body: n.body, tag: n.tag, silent: n.silent })));
    await deliver({ alert_id: 9001, class: "danger", kind: "proximity_violation", event: "alert.raised", silent: false });
    const n1 = await until("a danger notification", async () => (await shown()).find((n) => n.tag === "alert-9001"), 10_000);
    console.log(`push notification: ${JSON.stringify(n1)}`);
    assert.equal(n1.title, "안전");
    assert.match(n1.body, /긴급 알림/);
    assert.equal(n1.silent, false);
    await page.click("#discreet");
    await until("the service worker told of discreet mode", () => page.evaluate(async () => {
      const r = await (await caches.open("bw-victim-prefs")).match("/app/__prefs");
      return r ? (await r.json()).discreet : false;
    }), 10_000);
    await deliver({ alert_id: 9002, class: "technical", kind: "device_offline", event: "alert.raised", silent: true });
    const n2 = await until("a discreet silent notification", async () => (await shown()).find((n) => n.tag === "alert-9002"), 10_000);
    console.log(`discreet push notification: ${JSON.stringify(n2)}`);
    assert.equal(n2.title, "날씨");
    assert.equal(n2.silent, true);
    for (const n of [n1, n2]) assert.doesNotMatch(`${n.title} ${n.body}`, /가해자|스토킹|offender|stalk/i);
    await page.click("#discreet");
    await page.screenshot({ path: join(artifacts, "victim-push.png") });

    assert.deepEqual(errors, [], `page errors: ${errors.join("\n")}`);
  } finally {
    await browser.close();
    demo.proc.kill("SIGTERM");
  }
});
