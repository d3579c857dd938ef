// Shared helpers for the browser tests: start the real `bulwark demo` binary on a free port and
// launch Debian's Chromium through playwright-core.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const artifacts = join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });

export function bulwarkBinary() {
  const target = process.env.CARGO_TARGET_DIR ? resolve(join(here, "..", ".."), process.env.CARGO_TARGET_DIR) : join(here, "..", "..", "target");
  const bin = process.env.BULWARK_BIN || join(target, "debug", "bulwark");
  if (!existsSync(bin)) throw new Error(`bulwark binary not found at ${bin}; run 'cargo build -p bulwark' first`);
  return bin;
}

export function chromiumPath() {
  return process.env.CHROMIUM || "/usr/bin/chromium";
}

/// Starts `bulwark demo --http-port 0` and resolves with { base, username, password, adminToken,
/// proc } once it prints its URL, the monitoring officer's credentials and the admin token.
export function startDemo(extraArgs = []) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bulwarkBinary(), ["demo", "--http-port", "0", ...extraArgs], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`demo did not print its URL in 60 s:\n${out}`)), 60_000);
    const onData = (d) => {
      out += d.toString();
      const url = out.match(/(http:\/\/127\.0\.0\.1:\d+)\//);
      const login = out.match(/username (\S+) password (\S+)/);
      const admin = out.match(/Administrator token[^:]*: (\S+)/);
      if (url && login && admin) { clearTimeout(timer); resolve({ base: url[1], username: login[1], password: login[2], adminToken: admin[1], proc }); }
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", (d) => { out += d.toString(); });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`demo exited early (${code}):\n${out}`)); });
  });
}

export async function launch() {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/// Logs in through the console's form.
export async function logIn(page, base, username, password, hash = "") {
  await page.goto(`${base}/${hash}`);
  await page.fill("#username-input", username);
  await page.fill("#password-input", password);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#login", { state: "hidden" });
}

/// Runs axe-core in the page and returns the serious and critical violations.
export async function seriousA11yViolations(page, exclude = []) {
  // Evaluated through the DevTools protocol, not as a <script> tag: the apps' CSP
  // (script-src 'self') rightly refuses inline scripts.
  await page.evaluate(readFileSync(join(here, "..", "node_modules", "axe-core", "axe.min.js"), "utf8"));
  const res = await page.evaluate(async (exclude) => {
    // eslint-disable-next-line no-undef
    const r = await axe.run({ exclude: exclude.map((s) => [s]) }, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  }, exclude);
  return res.filter((v) => v.impact === "serious" || v.impact === "critical");
}
