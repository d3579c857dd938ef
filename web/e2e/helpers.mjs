// Shared helpers for the browser tests: start the real `bulwark demo` binary on a free port and
// launch Debian's Chromium through playwright-core.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const artifacts = join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });

export function bulwarkBinary() {
  const bin = process.env.BULWARK_BIN || join(here, "..", "..", "target", "debug", "bulwark");
  if (!existsSync(bin)) throw new Error(`bulwark binary not found at ${bin}; run 'cargo build -p bulwark' first`);
  return bin;
}

export function chromiumPath() {
  return process.env.CHROMIUM || "/usr/bin/chromium";
}

/// Starts `bulwark demo --http-port 0` and resolves with { base, username, password, proc } once
/// it prints its URL and the monitoring officer's credentials.
export function startDemo() {
  return new Promise((resolve, reject) => {
    const proc = spawn(bulwarkBinary(), ["demo", "--http-port", "0"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`demo did not print its URL in 60 s:\n${out}`)), 60_000);
    const onData = (d) => {
      out += d.toString();
      const url = out.match(/(http:\/\/127\.0\.0\.1:\d+)\//);
      const login = out.match(/username (\S+) password (\S+)/);
      if (url && login) { clearTimeout(timer); resolve({ base: url[1], username: login[1], password: login[2], proc }); }
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
