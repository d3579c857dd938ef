// The demo in a real browser: the live map shows offenders and protected people moving, and an
// approach raises an alert on screen within two minutes of the demo starting.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifacts, launch, startDemo } from "./helpers.mjs";

test("demo page shows moving markers and an alert", { timeout: 240_000 }, async () => {
  const demo = await startDemo();
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    // The monitoring officer logs in with the credentials the demo printed.
    await page.goto(`${demo.base}/`);
    await page.fill("#username-input", demo.username);
    await page.fill("#password-input", demo.password);
    await page.click("#login-form button[type=submit]");

    // Markers for both roles appear.
    await page.waitForSelector(".bw-offender .bw-marker", { timeout: 30_000 });
    await page.waitForSelector(".bw-protected .bw-marker", { timeout: 30_000 });
    const offenders = await page.locator(".bw-offender").count();
    assert.ok(offenders >= 3, `expected 3 offender markers, saw ${offenders}`);

    // They move: an offender marker's screen position changes over a few reports.
    const before = await page.locator(".bw-offender").first().boundingBox();
    await page.waitForFunction(
      (b) => { const r = document.querySelector(".bw-offender").getBoundingClientRect(); return Math.abs(r.x - b.x) + Math.abs(r.y - b.y) > 1; },
      before, { timeout: 30_000 },
    );

    // An alert appears (the Mapo approach) within two minutes of start.
    await page.waitForSelector(".alert-item.critical", { timeout: 120_000 });
    const text = await page.locator(".alert-item").first().innerText();
    assert.match(text, /m/);
    await page.screenshot({ path: join(artifacts, "console-demo.png") });

    // An officer acknowledges it: the state change round-trips through the API.
    const first = page.locator(".alert-item.critical").first();
    const id = await first.getAttribute("data-alert-id");
    await first.locator("button", { hasText: /확인|Acknowledge/ }).click();
    await page.waitForFunction((id) => document.querySelector(`[data-alert-id="${id}"] .meta`)?.textContent.includes("확인됨"), id, { timeout: 10_000 });

    assert.deepEqual(errors, [], `page errors: ${errors.join("\n")}`);
  } finally {
    await browser.close();
    demo.proc.kill("SIGTERM");
  }
});
