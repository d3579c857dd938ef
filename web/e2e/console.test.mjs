// The monitoring console in a real browser against the real `bulwark demo`: an officer handles
// an alert from acknowledgement to resolution, reads the case page and replays a track with a
// stated purpose; the auditor then finds that read in the access log; every role sees only its
// own screens. Screenshots of the main screens go to e2e/artifacts/ (CI artefacts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifacts, launch, logIn, seriousA11yViolations, startDemo } from "./helpers.mjs";

const PURPOSE = "Reviewing the Mapo approach alert for the case file";

test("console: alert handling, case page, replay, audit and role navigation", { timeout: 420_000 }, async () => {
  const demo = await startDemo();
  const browser = await launch();
  const errors = [];
  const shot = (page, name) => page.screenshot({ path: join(artifacts, name) });
  try {
    const officer = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    officer.on("pageerror", (e) => errors.push(String(e)));
    await logIn(officer, demo.base, demo.username, demo.password);

    // Officers' navigation: live, cases, replay, measures, and nothing else.
    await officer.waitForSelector("#nav a[data-route=live][aria-current=page]");
    const nav = await officer.locator("#nav a").evaluateAll((as) => as.map((a) => a.dataset.route));
    assert.deepEqual(nav, ["live", "cases", "replay", "measures"]);

    // An alert arrives (the Mapo approach alerts within about 90 s of the demo's start).
    await officer.waitForSelector(".bw-offender .bw-marker", { timeout: 30_000 });
    const item = officer.locator(".alert-item.critical").first();
    await item.waitFor({ timeout: 150_000 });
    const id = await item.getAttribute("data-alert-id");
    const alert = officer.locator(`.alert-item[data-alert-id="${id}"]`);
    // Alerts are grouped by case: the group links to the case page.
    assert.match(await alert.locator("xpath=ancestor::li[contains(@class,'alert-group')]").locator(".group-head a").getAttribute("href"), /^#\/cases\/\d+$/);
    await officer.waitForTimeout(1500); // let the tiles fail or load before the screenshot
    await shot(officer, "console-live.png");
    const liveViolations = await seriousA11yViolations(officer);
    assert.deepEqual(liveViolations, [], `axe on the live screen: ${JSON.stringify(liveViolations, null, 1)}`);

    // Acknowledge.
    await alert.locator("button.ack").click();
    await officer.waitForSelector(`.alert-item[data-alert-id="${id}"][data-state=acknowledged]`, { timeout: 10_000 });

    // Record an action through the dialog; Escape closes it and gives focus back first.
    await alert.locator("button.act").click();
    await officer.waitForSelector(".dialog[role=dialog]");
    assert.equal(await officer.evaluate(() => document.activeElement?.closest(".dialog") != null), true, "focus moves into the dialog");
    for (let i = 0; i < 7; i++) await officer.keyboard.press("Tab");
    assert.equal(await officer.evaluate(() => document.activeElement?.closest(".dialog") != null), true, "Tab stays inside the dialog");
    await officer.keyboard.press("Escape");
    await officer.waitForSelector(".dialog", { state: "detached" });
    assert.equal(await officer.evaluate((id) => document.activeElement?.closest(`[data-alert-id="${id}"]`) != null, id), true, "focus returns to the alert");
    await alert.locator("button.act").click();
    await officer.selectOption(".dialog select[name=action]", "victim_called");
    await officer.fill(".dialog textarea[name=note]", "Victim reached, safe indoors");
    await officer.click(".dialog button[type=submit]");
    await officer.waitForSelector(".dialog", { state: "detached" });

    // Dispatch without a police unit: only the officer's task to the offender.
    await alert.locator("button.dispatch").click();
    await officer.click(".dialog button[type=submit]");
    await officer.waitForSelector(".dialog", { state: "detached" });

    // The history shows the steps.
    await alert.locator("button.hist").click();
    await officer.waitForFunction((id) => /피해자 통화/.test(document.querySelector(`[data-alert-id="${id}"] .history`)?.textContent ?? ""), id, { timeout: 10_000 });

    // Resolve with a cause through the form; the alert leaves the queue.
    await officer.locator(`.alert-item[data-alert-id="${id}"] button.resolve`).click();
    await officer.click(".dialog button[type=submit]"); // no cause chosen: the form refuses
    assert.equal(await officer.locator(".dialog select[name=cause]:invalid").count(), 1);
    assert.equal(await officer.locator(`.alert-item[data-alert-id="${id}"]`).count(), 1);
    await officer.selectOption(".dialog select[name=cause]", "gps_error");
    await officer.fill(".dialog textarea[name=note]", "Fix jumped 80 m; victim confirmed no contact");
    await officer.click(".dialog button[type=submit]");
    await officer.waitForSelector(`.alert-item[data-alert-id="${id}"]`, { state: "detached", timeout: 10_000 });
    const history = await officer.evaluate(async (id) => {
      const r = await fetch(`/api/v1/alerts/${id}/history`, { headers: { Authorization: `Bearer ${sessionStorage.getItem("bw-token")}` } });
      return r.json();
    }, id);
    const actions = history.map((x) => x.action);
    assert.ok(actions.includes("acknowledge") && actions.includes("victim_called"), JSON.stringify(actions));
    // The dispatch route records the officer's own task to the offender.
    assert.ok(actions.includes("officer_dispatched_to_offender"), JSON.stringify(actions));
    assert.ok(!actions.includes("police_dispatched_to_victim"), `no police unit was chosen: ${JSON.stringify(actions)}`);
    assert.equal(history.at(-1).action, "resolve");
    assert.equal(history.at(-1).cause, "gps_error");

    // Case page: people, devices with battery, the order's zones on the map, the timeline.
    await officer.click('#nav a[data-route=cases]');
    await officer.locator(".case-list a").first().click();
    await officer.waitForSelector("table.devices tbody tr");
    assert.ok(await officer.locator("table.devices tbody tr").count() >= 2);
    await officer.waitForFunction(() => [...document.querySelectorAll("table.devices td.battery")].some((td) => /\d+%/.test(td.textContent)), null, { timeout: 10_000 });
    const zoneItems = await officer.locator(".order .zones li").allInnerTexts();
    assert.ok(zoneItems.some((z) => z.includes("Home")) && zoneItems.some((z) => z.includes("Workplace")), zoneItems.join(" | "));
    assert.ok(await officer.locator("#case-map .leaflet-overlay-pane path").count() >= 2, "zones drawn on the case map");
    await officer.waitForSelector("#timeline li");
    // Zone editor: add a circle by clicking the map; the draft lists it; saving answers something clear.
    const before = await officer.locator(".zone-row").count();
    await officer.click("button.add-circle");
    const box = await officer.locator("#case-map").boundingBox();
    await officer.mouse.click(box.x + box.width / 3, box.y + box.height / 3);
    await officer.waitForFunction((n) => document.querySelectorAll(".zone-row").length === n + 1, before);
    await officer.fill(".zone-editor textarea[name=reasons]", "Victim moved to a new workplace");
    await officer.click("button.save-zones");
    await officer.waitForFunction(() => (document.querySelector(".zone-editor .msg")?.textContent ?? "").length > 0);
    await officer.evaluate(() => document.getElementById("view").scrollTo(0, 0));
    await shot(officer, "console-case.png");
    const caseViolations = await seriousA11yViolations(officer);
    assert.deepEqual(caseViolations, [], `axe on the case page: ${JSON.stringify(caseViolations, null, 1)}`);

    // Track replay with a stated purpose: the track is drawn and the slider moves the marker.
    await officer.click('#nav a[data-route=replay]');
    await officer.waitForSelector("#replay-device option", { state: "attached" });
    // One device first (the cases, both parties together, are listed above the devices).
    const oneDevice = await officer.locator('#replay-device option[value^="device:"]').first().getAttribute("value");
    await officer.selectOption("#replay-device", oneDevice);
    await officer.selectOption("#replay-purpose", "alert_response");
    await officer.fill("#replay-purpose-text", PURPOSE);
    await officer.click(".replay-form button[type=submit]");
    await officer.waitForSelector("path.replay-track", { timeout: 15_000 });
    const firstInfo = await officer.locator("#replay-info").innerText();
    assert.match(firstInfo, /±\d+ m/);
    const m0 = await officer.locator(".replay-marker").boundingBox();
    await officer.focus("#replay-slider");
    await officer.keyboard.press("End");
    await officer.waitForFunction((t) => document.querySelector("#replay-info").innerText !== t, firstInfo);
    const m1 = await officer.locator(".replay-marker").boundingBox();
    assert.ok(Math.abs(m1.x - m0.x) + Math.abs(m1.y - m0.y) > 0.5, "marker moved with the slider");
    await shot(officer, "console-replay.png");

    // Both parties of a case together: two tracks, a marker each, the distance between them
    // at the moment shown, and each party named with its fix's accuracy and source.
    const aCase = await officer.locator('#replay-device option[value^="case:"]').first().getAttribute("value");
    await officer.selectOption("#replay-device", aCase);
    await officer.click(".replay-form button[type=submit]");
    await officer.waitForSelector("path.replay-track-protected", { timeout: 15_000 });
    await officer.waitForSelector("path.replay-track-offender");
    await officer.focus("#replay-slider");
    await officer.keyboard.press("End");
    await officer.waitForFunction(() => document.querySelectorAll(".replay-marker").length === 2);
    const both = await officer.locator("#replay-info").innerText();
    assert.match(both, /두 사람 사이 거리: \d+ m/, both);
    assert.match(both, /가해자 — Offender \d/, both);
    assert.match(both, /피해자 — Protected person \d/, both);
    assert.equal(await officer.locator("#replay-map").getAttribute("data-parties"), "2");
    await shot(officer, "console-replay-case.png");

    await officer.click('#nav a[data-route=measures]');
    await officer.waitForSelector("#measures");
    assert.match(await officer.locator("#measures").innerText(), /%/); // a false-alarm share exists now
    await shot(officer, "console-measures.png");

    // English.
    await officer.click("#lang");
    await officer.waitForSelector('#nav a[data-route=live]:text("Live map")');
    await officer.click("#lang");

    // The auditor: only the access log, which holds the officer's track read with its purpose.
    const auditorCtx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const auditor = await auditorCtx.newPage();
    auditor.on("pageerror", (e) => errors.push(String(e)));
    await logIn(auditor, demo.base, "auditor1", demo.password);
    await auditor.waitForSelector("#chain-status");
    assert.deepEqual(await auditor.locator("#nav a").evaluateAll((as) => as.map((a) => a.dataset.route)), ["audit"]);
    await auditor.fill(".filters input[name=action]", "read_track");
    await auditor.waitForFunction((p) => [...document.querySelectorAll("table.audit td.purpose")].some((td) => td.textContent.includes(p)), PURPOSE);
    assert.match(await auditor.locator("#chain-status").innerText(), /prev_hash/);
    await shot(auditor, "console-audit.png");
    // An auditor asking for the live screen gets a refusal and no positions.
    await auditor.goto(`${demo.base}/#/live`);
    await auditor.waitForSelector(".screen-live .error[role=alert]");
    assert.equal(await auditor.locator(".leaflet-marker-icon").count(), 0);

    // Court staff: the court screen (its workflow: court-dispatch.test.mjs).
    const clerkCtx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const clerk = await clerkCtx.newPage();
    clerk.on("pageerror", (e) => errors.push(String(e)));
    await logIn(clerk, demo.base, "clerk1", demo.password);
    await clerk.waitForSelector(".screen-court h3");
    assert.deepEqual(await clerk.locator("#nav a").evaluateAll((as) => as.map((a) => a.dataset.route)), ["court"]);
    await clerk.waitForSelector(".screen-court .court-notices, .screen-court #pet-h ~ div p");
    assert.equal(await clerk.locator(".screen-court .error").count(), 0);

    // The administrator: unknown devices and accounts, no map.
    const adminCtx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const admin = await adminCtx.newPage();
    admin.on("pageerror", (e) => errors.push(String(e)));
    await admin.goto(`${demo.base}/#token=${demo.adminToken}`);
    await admin.waitForSelector("#nav a[data-route=unknown]");
    assert.deepEqual(await admin.locator("#nav a").evaluateAll((as) => as.map((a) => a.dataset.route)), ["unknown", "accounts"]);
    await admin.waitForSelector(".register-form");
    await shot(admin, "console-unknown-devices.png");

    assert.deepEqual(errors, [], `page errors: ${errors.join("\n")}`);
  } finally {
    await browser.close();
    demo.proc.kill("SIGTERM");
  }
});
