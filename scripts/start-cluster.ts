/**
 * `npm start`: a local cluster of `raftkv serve` processes on loopback, for trying raftkv out.
 *
 * - Ports: etcd's documented layout by default (client 2379/22379/32379, peer 2380/22380/32380). With
 *   RAFTKV_PORT_BASE=B, node i (from 1) takes client port B + 2(i-1) and peer port B + 2(i-1) + 1.
 * - RAFTKV_CLUSTER_SIZE: 1 to 5 nodes (default 3).
 * - Data under ./data/node-N; a restart reuses it (the cluster comes back with its keys).
 * - Ctrl-C (or SIGTERM) stops every node gracefully (SIGTERM each, then wait); a node that does not
 *   stop within stopTimeoutMs is killed.
 *
 * The nodes run in process groups of their own, so the terminal's Ctrl-C reaches this script only and
 * each node gets exactly one SIGTERM from here (a second signal would make a node exit at once).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { NodeRole } from "../gen/raftkv/v1/cluster_pb.js";
import { createRaftkvClient } from "../src/rpc/client/index.js";

const stopTimeoutMs = 20_000;
const leaderWaitMs = 20_000;
const repo = join(import.meta.dirname, "..");

interface NodeSpec {
  readonly id: number;
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
}

function fail(message: string): never {
  process.stderr.write(`npm start: ${message}\n`);
  process.exit(2);
}

function clusterSize(): number {
  const text = process.env.RAFTKV_CLUSTER_SIZE ?? "3";
  const size = Number(text);
  if (!Number.isInteger(size) || size < 1 || size > 5) fail(`RAFTKV_CLUSTER_SIZE must be 1 to 5, got ${JSON.stringify(text)}`);
  return size;
}

function nodeSpecs(size: number): NodeSpec[] {
  const baseText = process.env.RAFTKV_PORT_BASE;
  const base = baseText === undefined ? undefined : Number(baseText);
  if (base !== undefined && (!Number.isInteger(base) || base < 1024 || base + 2 * size > 65_535)) {
    fail(`RAFTKV_PORT_BASE must be a port from 1024 that leaves room for ${2 * size} ports, got ${JSON.stringify(baseText)}`);
  }
  return Array.from({ length: size }, (_, i) => {
    const id = i + 1;
    const clientPort = base === undefined ? (id === 1 ? 2379 : id * 10_000 + 2379) : base + 2 * i;
    const peerPort = base === undefined ? clientPort + 1 : base + 2 * i + 1;
    return { id, name: `node-${id}`, clientPort, peerPort };
  });
}

/** One log line of a node for a person: pino's JSON as "node-2 INFO message key=value ...". */
function formatLogLine(name: string, line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return `${name} ${line}`;
  }
  const levels: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
  const { level, msg, time: _time, pid: _pid, hostname: _hostname, node: _node, name: _name, ...fields } = record;
  const rest = Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${name} ${levels[Number(level)] ?? "LOG"} ${String(msg)}${rest === "" ? "" : ` ${rest}`}`;
}

function startNode(
  spec: NodeSpec,
  initialCluster: string,
  onExit: (code: number | null, signal: NodeJS.Signals | null) => void,
): ChildProcess {
  const dataDir = join("data", spec.name);
  mkdirSync(join(repo, dataDir), { recursive: true });
  const child = spawn(
    process.execPath,
    [
      join(repo, "bin", "raftkv.js"),
      "serve",
      "--id",
      String(spec.id),
      "--name",
      spec.name,
      "--data-dir",
      dataDir,
      "--initial-cluster",
      initialCluster,
      "--listen-client",
      `127.0.0.1:${spec.clientPort}`,
      "--listen-peer",
      `127.0.0.1:${spec.peerPort}`,
    ],
    { cwd: repo, stdio: ["ignore", "pipe", "pipe"], detached: true, env: { ...process.env } },
  );
  for (const stream of [child.stdout, child.stderr]) {
    if (stream !== null)
      createInterface({ input: stream }).on("line", (line) => process.stdout.write(`${formatLogLine(spec.name, line)}\n`));
  }
  child.on("exit", onExit);
  return child;
}

async function waitForLeader(endpoints: readonly string[]): Promise<string | undefined> {
  const client = createRaftkvClient({ endpoints, attemptTimeoutMs: 500 });
  try {
    const deadline = Date.now() + leaderWaitMs;
    while (Date.now() < deadline) {
      const statuses = await client.statusAll();
      const leader = statuses.find((s) => s.status?.status?.role === NodeRole.LEADER)?.status?.status;
      if (leader !== undefined) return `${leader.name} (term ${leader.term})`;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return undefined;
  } finally {
    client.close();
  }
}

async function run(): Promise<void> {
  const specs = nodeSpecs(clusterSize());
  const initialCluster = specs.map((s) => `${s.id}=http://127.0.0.1:${s.peerPort}|http://127.0.0.1:${s.clientPort}`).join(",");
  const endpoints = specs.map((s) => `http://127.0.0.1:${s.clientPort}`);
  let stopping = false;
  const running = new Map<number, ChildProcess>();
  const allExited = new Promise<void>((resolve) => {
    for (const spec of specs) {
      const child = startNode(spec, initialCluster, (code, signal) => {
        running.delete(spec.id);
        if (!stopping)
          process.stdout.write(`npm start: ${spec.name} exited unexpectedly (${signal ?? `code ${code}`}); the others keep running\n`);
        if (running.size === 0) resolve();
      });
      running.set(spec.id, child);
    }
  });

  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write("\nnpm start: stopping every node (SIGTERM)...\n");
    for (const child of running.values()) child.kill("SIGTERM");
    setTimeout(() => {
      for (const child of running.values()) {
        process.stdout.write(`npm start: node pid ${child.pid} did not stop in ${stopTimeoutMs} ms; killing it\n`);
        child.kill("SIGKILL");
      }
    }, stopTimeoutMs).unref();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  // Never leave orphans behind, whatever ends this script.
  process.on("exit", () => {
    for (const child of running.values()) child.kill("SIGKILL");
  });

  const leader = await Promise.race([waitForLeader(endpoints), allExited.then(() => undefined)]);
  if (!stopping) {
    process.stdout.write(
      [
        "",
        `raftkv: ${specs.length}-node cluster on loopback, data under ./data/node-N`,
        `  client endpoints: ${endpoints.join(",")}`,
        `  peer ports:       ${specs.map((s) => s.peerPort).join(", ")}`,
        `  leader:           ${leader ?? "none yet (see the logs above)"}`,
        "",
        "Try, in another terminal:",
        `  npx raftkv put greeting hello${process.env.RAFTKV_PORT_BASE === undefined ? "" : ` --endpoints ${endpoints.join(",")}`}`,
        `  npx raftkv get greeting${process.env.RAFTKV_PORT_BASE === undefined ? "" : ` --endpoints ${endpoints.join(",")}`}`,
        `  npx raftkv status${process.env.RAFTKV_PORT_BASE === undefined ? "" : ` --endpoints ${endpoints.join(",")}`}`,
        "Ctrl-C stops the cluster; npm start again resumes it with its data.",
        "",
      ].join("\n"),
    );
  }
  await allExited;
  process.stdout.write("npm start: all nodes stopped\n");
  process.exitCode = stopping ? 0 : 1;
}

await run();
