// Starts the real `portcullis serve` (fresh data dir, free port) and the
// mock-upstream binary, as tests/e2e/conftest.py does for the Python tests.
import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const target = process.env.CARGO_TARGET_DIR ?? join(process.env.HOME ?? "", ".cache/portcullis/target");
export const BIN = process.env.PCX_BIN ?? join(target, "debug/portcullis");
export const MOCK_BIN = process.env.PCX_MOCK_BIN ?? join(BIN, "..", "mock-upstream");
export const UPSTREAM_SECRET = "sk-upstream-provider-secret-4242";

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The environment without PORTCULLIS_* variables. */
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PORTCULLIS_")));
}

export async function startGateway() {
  const dir = mkdtempSync(join(tmpdir(), "pcx-console-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const stdout = join(dir, "stdout.log");
  const stderr = join(dir, "stderr.log");
  const proc = spawn(BIN, ["serve", "--data-dir", join(dir, "data"), "--listen", `127.0.0.1:${port}`], {
    env: cleanEnv(),
    stdio: ["ignore", openSync(stdout, "w"), openSync(stderr, "w")],
  });
  let exited = null;
  proc.on("exit", (code) => (exited = code));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited !== null) throw new Error(`gateway exited with ${exited}: ${readFileSync(stderr, "utf8")}`);
    try {
      if ((await fetch(base + "/readyz")).status === 200) break;
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  const output = () => readFileSync(stdout, "utf8");
  const password = output().match(/password:\s+(\S+)/)?.[1];
  if (!password) throw new Error(`no one-time password printed: ${output()}`);
  return {
    base,
    port,
    dir,
    password,
    logs: () => readFileSync(stderr, "utf8"),
    stop: () => stop(proc),
  };
}

export async function startMock() {
  const port = await freePort();
  const proc = spawn(MOCK_BIN, ["--listen", `127.0.0.1:${port}`, "--expected-key", UPSTREAM_SECRET], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("mock-upstream did not start")), 20_000);
    proc.stdout.once("data", (chunk) => {
      clearTimeout(timer);
      if (String(chunk).includes("listening")) resolve();
      else reject(new Error(`mock-upstream: ${chunk}`));
    });
    proc.once("exit", (code) => reject(new Error(`mock-upstream exited with ${code}`)));
  });
  return { base: `http://127.0.0.1:${port}`, stop: () => stop(proc) };
}

function stop(proc) {
  if (proc.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    proc.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    proc.kill("SIGTERM");
  });
}
