import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { exitCodes, runCli, type CliIo } from "../../src/cli/index.js";
import { freePorts } from "../chaos/free-ports.js";

const repo = join(import.meta.dirname, "..", "..");
const dataDir = mkdtempSync(join(tmpdir(), "raftkv-serve-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

interface Served {
  readonly child: ChildProcess;
  readonly endpoint: string;
  readonly exited: Promise<number | null>;
}

/** `raftkv serve` as a real process (through bin/raftkv.js and tsx), ready once it logs that it serves. */
async function serve(clientPort: number, peerPort: number): Promise<Served> {
  const child = spawn(
    process.execPath,
    [
      join(repo, "bin", "raftkv.js"),
      "serve",
      "--data-dir",
      dataDir,
      "--listen-client",
      `127.0.0.1:${clientPort}`,
      "--listen-peer",
      `127.0.0.1:${peerPort}`,
      "--tick-ms",
      "20",
    ],
    { cwd: repo, stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let log = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes("raftkv node serving")) resolve();
    });
    child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
    void exited.then((code) => reject(new Error(`raftkv serve exited with ${code}: ${log}`)));
  });
  return { child, endpoint: `http://127.0.0.1:${clientPort}`, exited };
}

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env: {}, signal: new AbortController().signal };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

describe("raftkv serve", () => {
  it("serves a single node, stops on SIGTERM with exit 0, and keeps its data across a restart", async () => {
    const [clientPort = 0, peerPort = 0] = await freePorts(2);
    const first = await serve(clientPort, peerPort);
    const endpoint = ["--endpoints", first.endpoint];
    // A fresh node elects itself within a few ticks; the client retries until it has.
    expect((await cli("put", "durable", "yes", ...endpoint)).code).toBe(exitCodes.ok);
    expect((await cli("get", "durable", "--value-only", ...endpoint)).stdout).toBe("yes\n");
    const health = await fetch(`${first.endpoint}/readyz`);
    expect(health.status).toBe(200);

    const stopping = Date.now();
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(Date.now() - stopping).toBeLessThan(5_000);

    const second = await serve(clientPort, peerPort);
    try {
      expect((await cli("get", "durable", "--value-only", "--endpoints", second.endpoint)).stdout).toBe("yes\n");
    } finally {
      second.child.kill("SIGTERM");
      expect(await second.exited).toBe(0);
    }
  });

  it("lists every setting for --help and names a bad setting with exit code 2", async () => {
    const help = await cli("serve", "--help");
    expect(help.code).toBe(exitCodes.ok);
    expect(help.stdout).toContain("--initial-cluster ID[:NAME]=PEER_URL|CLIENT_URL");
    const bad = await cli("serve", "--election-ticks", "1");
    expect(bad.code).toBe(exitCodes.usage);
    expect(bad.stderr).toContain("--election-ticks (RAFTKV_ELECTION_TICKS)");
  });
});
