// Dual dispatch and the court workflow in the console, in a real browser against the real
// `bulwark demo`:
// (a) the officer dispatches an alert naming police1; the history holds both directions;
//     police1 sees the task with the victim's position (time, age, accuracy, source) and
//     moves it to on_scene; the demo runs with `--dispatch-grace-s 0`, so when the officer
//     resolves the alert the grant ends: the police screen says the dispatch ended and shows
//     no old pin (the server enforces it; crates/server/tests/it/alerts.rs tests the same).
// (b) victim1 files a petition over the API; clerk1 starts the review in the console; judge1
//     grants it (version 1) and extends the order (version 2).
// (c) the officer saves a zone in the zone editor: the next version number is shown.
// Screenshots: console-dispatch.png, console-police.png, console-court.png.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifacts, launch, logIn, seriousA11yViolations, startDemo } from "./helpers.mjs";

async function apiAs(base, token, path, body) {
  const r = await fetch(`${base}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function tokenOf(base, username, password) {
  const r = await apiAs(base, null, "/api/v1/auth/login", { username, password });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.token;
}

test("console: dual dispatch with a police unit, the police screen, the court workflow, zone versions", { timeout: 480_000 }, async () => {
  const demo = await startDemo(["--dispatch-grace-s", "0"]);
  const browser = await launch();
  const errors = [];
  const shot = (page, name) => page.screenshot({ path: join(artifacts, name) });
  const page = async (user) => {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const p = await ctx.newPage();
    p.on("pageerror", (e) => errors.push(`${user}: ${e}`));
    await logIn(p, demo.base, user, demo.password);
    return p;
  };
  try {
    // ---- (b) first: the court workflow needs no alert ------------------------------------
    const victimToken = await tokenOf(demo.base, "victim1", demo.password);
    const me = await apiAs(demo.base, victimToken, "/api/v1/auth/me");
    const caseId = me.body.case_ids[0];
    const filed = await apiAs(demo.base, victimToken, "/api/v1/petitions", {
      case_id: caseId, kind: "provisional_measure",
      requested: { no_approach_m: 100, duration_days: 60 },
      statement: "He waits outside my office every evening.",
    });
    assert.equal(filed.status, 201, JSON.stringify(filed.body));
    const pid = filed.body.id;

    const clerk = await page("clerk1");
    await clerk.waitForSelector("#nav a[data-route=court]");
    assert.deepEqual(await clerk.locator("#nav a").evaluateAll((as) => as.map((a) => a.dataset.route)), ["court"]);
    const clerkItem = clerk.locator(`li.petition[data-petition-id="${pid}"]`);
    await clerkItem.waitFor();
    assert.equal(await clerkItem.getAttribute("data-state"), "filed");
    assert.equal(await clerkItem.locator("button.decide").count(), 0, "clerks do not decide");
    await clerkItem.locator("button.review").click();
    await clerk.waitForSelector(`li.petition[data-petition-id="${pid}"][data-state=under_review]`);
    const history = await clerkItem.locator(".petition-history").textContent();
    assert.match(history, /filed/);
    assert.match(history, /review_started/);

    const judge = await page("judge1");
    const judgeItem = judge.locator(`li.petition[data-petition-id="${pid}"][data-state=under_review]`);
    await judgeItem.waitFor();
    // Denying without reasons is refused in the form.
    await judgeItem.locator("button.decide").click();
    await judge.selectOption(".dialog select[name=decision]", "deny");
    await judge.click(".dialog button[type=submit]");
    await judge.waitForSelector(".dialog .error[role=alert]:not([hidden])");
    await judge.selectOption(".dialog select[name=decision]", "grant");
    await judge.click(".dialog button[type=submit]");
    await judge.waitForSelector(".dialog", { state: "detached" });
    const granted = judge.locator(`li.petition[data-petition-id="${pid}"][data-state=in_force]`);
    await granted.waitFor();
    await granted.locator("button.show-versions").click();
    await judge.waitForSelector("table.order-versions tr[data-version='1']");
    await judge.fill(".extend-form textarea[name=reasons]", "Threats continued after the first order");
    await judge.fill(".extend-form input[name=extend_days]", "30");
    await judge.click(".extend-form button[type=submit]");
    await judge.waitForSelector("table.order-versions tr[data-version='2']");
    assert.match(await judge.locator(".ext-msg").innerText(), /v2/);
    // The court's notices name the petition (its filing is announced to the court).
    await judge.reload();
    await judge.waitForSelector(".court-notices li");
    const notices = await judge.locator(".court-notices").innerText();
    assert.match(notices, new RegExp(`#${pid}\\b`), notices);
    await judge.locator(`li.petition[data-petition-id="${pid}"] button.show-versions`).click();
    await judge.waitForSelector("table.order-versions tr[data-version='2']");
    await shot(judge, "console-court.png");
    const courtViolations = await seriousA11yViolations(judge);
    assert.deepEqual(courtViolations, [], `axe on the court screen: ${JSON.stringify(courtViolations, null, 1)}`);

    // ---- (c) zone editor: the saved version is the next one ------------------------------
    const officer = await page(demo.username);
    await officer.goto(`${demo.base}/#/cases`);
    await officer.locator(".case-list a").first().click();
    const editor = officer.locator(".zone-editor section[data-order-id]");
    await editor.waitFor();
    const orderId = await editor.getAttribute("data-order-id");
    const officerToken = await officer.evaluate(() => sessionStorage.getItem("bw-token"));
    const before = await apiAs(demo.base, officerToken, `/api/v1/orders/${orderId}/versions`);
    assert.equal(before.status, 200, JSON.stringify(before.body));
    const n = Math.max(...before.body.map((v) => v.version));
    const rows = await officer.locator(".zone-row").count();
    await officer.click("button.add-circle");
    const box = await officer.locator("#case-map").boundingBox();
    await officer.mouse.click(box.x + box.width / 3, box.y + box.height / 3);
    await officer.waitForFunction((n) => document.querySelectorAll(".zone-row").length === n + 1, rows);
    await officer.fill(".zone-editor textarea[name=reasons]", "Victim moved to a new workplace");
    await officer.click("button.save-zones");
    await officer.waitForSelector(".zone-editor .saved-version");
    assert.equal(Number(await officer.locator(".zone-editor .saved-version").getAttribute("data-version")), n + 1);
    // Redrawn from the server's answer: the saved zones, one more than before.
    assert.equal(await officer.locator(".zone-row").count(), rows + 1);

    // ---- (a) dual dispatch ---------------------------------------------------------------
    await officer.goto(`${demo.base}/#/live`);
    const item = officer.locator(".alert-item.critical").first();
    await item.waitFor({ timeout: 180_000 });
    const id = await item.getAttribute("data-alert-id");
    const alert = officer.locator(`.alert-item[data-alert-id="${id}"]`);
    await alert.locator("button.dispatch").click();
    await officer.waitForSelector(".dialog select[name=police_account_id] option:text-matches('police1')", { state: "attached" });
    const policeValue = await officer.locator(".dialog select[name=police_account_id] option:text-matches('police1')").getAttribute("value");
    await officer.selectOption(".dialog select[name=police_account_id]", policeValue);
    await shot(officer, "console-dispatch.png");
    await officer.click(".dialog button[type=submit]");
    await officer.waitForSelector(".dialog", { state: "detached" });
    await officer.waitForSelector(`.alert-item[data-alert-id="${id}"][data-state=dispatched]`, { timeout: 10_000 });
    const actions = (await apiAs(demo.base, officerToken, `/api/v1/alerts/${id}/history`)).body.map((x) => x.action);
    assert.ok(actions.includes("officer_dispatched_to_offender") && actions.includes("police_dispatched_to_victim"), JSON.stringify(actions));

    // Police: "My tasks" with the victim's position (time, age, accuracy, source).
    const police = await page("police1");
    await police.waitForSelector("#nav a[data-route=tasks]");
    assert.equal(await police.locator("#nav a").first().getAttribute("data-route"), "tasks");
    const task = police.locator("li.task[data-state=open]").first();
    await task.waitFor();
    await police.waitForSelector("li.task[data-has-position=yes] .task-position", { timeout: 30_000 });
    const where = await police.locator("li.task[data-has-position=yes] .task-position").first().innerText();
    assert.match(where, /±\d+ m/);
    assert.match(where, /(gnss|wifi|cell|unknown)/);
    assert.ok(await police.locator("#task-map .leaflet-marker-icon").count() >= 1, "the victim's position is on the map");
    const taskId = await police.locator("li.task[data-has-position=yes]").first().getAttribute("data-task-id");
    await police.locator(`li.task[data-task-id="${taskId}"] button.to-on_scene`).click();
    await police.waitForSelector(`li.task[data-task-id="${taskId}"][data-state=on_scene]`);
    await police.waitForTimeout(1000);
    await shot(police, "console-police.png");
    const policeViolations = await seriousA11yViolations(police);
    assert.deepEqual(policeViolations, [], `axe on the police screen: ${JSON.stringify(policeViolations, null, 1)}`);
    const after = (await apiAs(demo.base, officerToken, `/api/v1/alerts/${id}/history`)).body;
    assert.ok(after.some((x) => x.action === "task_state" && /on_scene/.test(x.note ?? "")), JSON.stringify(after));

    // The officer resolves; with no grace period the grant ends with it: the police screen
    // keeps the task but says the dispatch ended, with no position and no old pin.
    const resolved = await apiAs(demo.base, officerToken, `/api/v1/alerts/${id}/state`, { state: "resolved", cause: "true_violation" });
    assert.equal(resolved.status, 200, JSON.stringify(resolved.body));
    await police.reload();
    await police.waitForSelector(`li.task[data-task-id="${taskId}"]`);
    assert.equal(await police.locator(`li.task[data-task-id="${taskId}"]`).getAttribute("data-has-position"), "no");
    assert.match(await police.locator(`li.task[data-task-id="${taskId}"] .task-ended`).innerText(), /출동 종료|Dispatch ended/);
    assert.equal(await police.locator("#task-map .leaflet-marker-icon").count(), 0, "no old pin after the dispatch ended");
    const policeTasks = await apiAs(demo.base, await tokenOf(demo.base, "police1", demo.password), "/api/v1/tasks");
    const ended = policeTasks.body.find((t) => String(t.id) === String(taskId));
    assert.ok(ended, JSON.stringify(policeTasks.body));
    assert.equal(ended.target.position, null, "the server sends no position after the grant ended");
    await shot(police, "console-police-ended.png");

    assert.deepEqual(errors, [], `page errors: ${errors.join("\n")}`);
  } finally {
    await browser.close();
    demo.proc.kill("SIGTERM");
  }
});
