import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { NodeRole, type NodeStatus } from "../../gen/raftkv/v1/cluster_pb.js";
import { createRaftkvClient, type RaftkvClient } from "../../src/rpc/client/index.js";
// Read-only reuse of the chaos harness's helpers (as bench/cluster-bench does): a log tail for error
// messages, and the reaper, a detached process that SIGKILLs our nodes if this process dies without
// cleaning up (kill -9, OOM), which no exit handler can cover.
import { readTail } from "../../test/chaos/node-process.js";
import type { Reaper } from "../../test/chaos/reaper.js";

/**
 * A 3-node raftkv cluster of real `raftkv serve` processes on loopback for the state benchmark: nodes
 * can be SIGKILLed and started again with the same flags, and every node is measured from outside
 * (ClusterService.Status, /metrics, /readyz, /proc, its data directory).
 */

export interface NodeSpec {
  readonly id: number;
  readonly name: string;
  readonly clientUrl: string;
  readonly dataDir: string;
  readonly logPath: string;
  readonly command: readonly string[];
}

interface Running {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<void>;
  expectedExit: boolean;
}

/** A node's /metrics, by series: `name` or `name{label="value"}` exactly as prom-client prints it. */
export class Metrics {
  constructor(private readonly series: ReadonlyMap<string, number>) {}

  static parse(text: string): Metrics {
    const series = new Map<string, number>();
    for (const line of text.split("\n")) {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
      if (match === null) continue;
      const value = Number(match[2]);
      if (match[1] !== undefined && !Number.isNaN(value)) series.set(match[1], value);
    }
    return new Metrics(series);
  }

  get(name: string, labels?: Record<string, string>): number | undefined {
    const suffix =
      labels === undefined
        ? ""
        : `{${Object.entries(labels)
            .map(([k, v]) => `${k}="${v}"`)
            .join(",")}}`;
    return this.series.get(`${name}${suffix}`);
  }
}

/** The raftkv command the nodes run, and whether it runs the compiled dist/ or the sources through tsx. */
export function serveCommand(repoRoot: string): { command: string[]; runs: string } {
  const newest = (dir: string): number => {
    let latest = 0;
    if (!existsSync(dir)) return latest;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) latest = Math.max(latest, newest(path));
      else if (entry.name.endsWith(".ts")) latest = Math.max(latest, statSync(path).mtimeMs);
    }
    return latest;
  };
  // The same rule as bin/raftkv.js, which decides it in each node: dist/ when it is at least as new as
  // every source file. Through tsx a node starts slower, which shows in restart-to-ready.
  const compiled = join(repoRoot, "dist", "src", "cli", "index.js");
  const current =
    existsSync(compiled) && Math.max(newest(join(repoRoot, "src")), newest(join(repoRoot, "gen"))) <= statSync(compiled).mtimeMs;
  return {
    command: [process.execPath, join(repoRoot, "bin", "raftkv.js"), "serve"],
    runs: current ? "compiled dist/" : "TypeScript sources through tsx (dist/ is older than src/: `npm run build` for compiled numbers)",
  };
}

export class Cluster {
  readonly nodes: readonly NodeSpec[];
  /** Set when a node exited without being told to: the run is over (its log tail is in the message). */
  crash: Error | undefined;
  private readonly running = new Map<number, Running>();
  private readonly clients = new Map<number, RaftkvClient>();
  /** The highest VmHWM seen of each node, across its restarts. */
  private readonly peakHwm = new Map<number, number>();
  private readonly sampler: NodeJS.Timeout;
  private closing = false;
  private readonly initialCluster: string;

  constructor(
    private readonly repoRoot: string,
    dir: string,
    portBase: number,
    serverFlags: readonly string[],
    private readonly reaper: Reaper,
  ) {
    const { command } = serveCommand(repoRoot);
    const specs = [1, 2, 3].map((id) => ({ id, client: portBase + 2 * (id - 1), peer: portBase + 2 * (id - 1) + 1 }));
    const initialCluster = specs.map((n) => `${n.id}=http://127.0.0.1:${n.peer}|http://127.0.0.1:${n.client}`).join(",");
    this.initialCluster = initialCluster;
    this.nodes = specs.map((n) => {
      const dataDir = join(dir, `node-${n.id}`);
      return {
        id: n.id,
        name: `node-${n.id}`,
        clientUrl: `http://127.0.0.1:${n.client}`,
        dataDir,
        logPath: `${dataDir}.log`,
        command: [
          ...command,
          ...["--id", String(n.id), "--name", `node-${n.id}`, "--data-dir", dataDir, "--initial-cluster", initialCluster],
          ...["--listen-client", `127.0.0.1:${n.client}`, "--listen-peer", `127.0.0.1:${n.peer}`],
          ...serverFlags,
        ],
      };
    });
    // VmHWM dies with its process: sample it now and then, and always right before a kill.
    this.sampler = setInterval(() => this.sampleMemory(), 1_000);
    this.sampler.unref();
  }

  node(id: number): NodeSpec {
    const spec = this.nodes.find((n) => n.id === id);
    if (spec === undefined) throw new Error(`no node ${id}`);
    return spec;
  }

  startAll(): void {
    for (const n of this.nodes) this.start(n.id);
  }

  /**
   * Seeds every member, before any starts, from one backup file with `raftkv snapshot restore` and the
   * cluster's own --initial-cluster; the nodes must then be started with `--cluster-id clusterId`.
   */
  async restore(file: string, clusterId: string): Promise<void> {
    const [executable, script] = serveCommand(this.repoRoot).command;
    if (executable === undefined || script === undefined) throw new Error("cannot find bin/raftkv.js");
    for (const n of this.nodes) {
      const args = [script, "snapshot", "restore", file, "--data-dir", n.dataDir, "--name", n.name, "--id", String(n.id)];
      args.push("--initial-cluster", this.initialCluster, "--cluster-id", clusterId, "--output", "json");
      try {
        await promisify(execFile)(executable, args, { cwd: this.repoRoot, maxBuffer: 1 << 20, timeout: 30 * 60_000 });
      } catch (error) {
        const stderr = (error as { stderr?: unknown }).stderr;
        throw new Error(
          `raftkv snapshot restore for ${n.name} failed: ${typeof stderr === "string" && stderr !== "" ? stderr.trim() : String(error)}`,
          { cause: error },
        );
      }
    }
  }

  /** Starts node `id` (again) with its flags; returns performance.now() at the spawn. */
  start(id: number): number {
    const spec = this.node(id);
    // After close() (Ctrl-C while a phase runs on), a phase must not bring a node back.
    if (this.closing) throw new Error(`the cluster is closed; not starting ${spec.name}`);
    if (this.running.has(id)) throw new Error(`${spec.name} is already running`);
    const log = openSync(spec.logPath, "a");
    let child: ChildProcess;
    const startedAt = performance.now();
    try {
      const [executable, ...args] = spec.command;
      if (executable === undefined) throw new Error(`${spec.name}: empty command`);
      // detached: a process group of its own, so the terminal's Ctrl-C reaches only the benchmark,
      // which then kills every node itself.
      child = spawn(executable, args, { cwd: this.repoRoot, stdio: ["ignore", log, log], detached: true });
    } finally {
      closeSync(log);
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${spec.name}: could not start ${spec.command.join(" ")}`);
    this.reaper.add(pid);
    child.once("error", () => undefined);
    const running: Running = {
      child,
      pid,
      expectedExit: false,
      exited: new Promise<void>((resolve) =>
        child.once("exit", (code, signal) => {
          this.running.delete(id);
          this.reaper.remove(pid);
          if (!running.expectedExit && !this.closing && this.crash === undefined) {
            this.crash = new Error(
              `${spec.name} (pid ${pid}) exited on its own (${signal ?? `code ${code}`}); end of ${spec.logPath}:\n${readTail(spec.logPath, 3_000)}`,
            );
          }
          resolve();
        }),
      ),
    };
    this.running.set(id, running);
    return startedAt;
  }

  /** Stops node `id` with `signal` and waits until it has exited. */
  async kill(id: number, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const running = this.running.get(id);
    if (running === undefined) return;
    this.sampleMemory();
    running.expectedExit = true;
    killQuietly(running.pid, signal);
    await running.exited;
    this.clients.get(id)?.close();
    this.clients.delete(id);
  }

  isRunning(id: number): boolean {
    return this.running.has(id);
  }

  pid(id: number): number | undefined {
    return this.running.get(id)?.pid;
  }

  throwIfCrashed(): void {
    if (this.crash !== undefined) throw this.crash;
  }

  /** SIGKILL every node and wait for them: the data is thrown away, nothing needs a clean stop. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.sampler);
    const all = [...this.running.values()];
    for (const r of all) killQuietly(r.pid, "SIGKILL");
    await Promise.race([Promise.all(all.map((r) => r.exited)), sleep(5_000)]);
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  /** For process "exit" handlers: synchronous, no waiting. */
  killNow(): void {
    this.closing = true;
    for (const r of this.running.values()) killQuietly(r.pid, "SIGKILL");
  }

  /** The node's own Status, or undefined when it does not answer (down, starting, stalled past 3 s). */
  async status(id: number): Promise<NodeStatus | undefined> {
    if (!this.running.has(id)) return undefined;
    let client = this.clients.get(id);
    if (client === undefined) {
      client = createRaftkvClient({ endpoints: [this.node(id).clientUrl], attemptTimeoutMs: 3_000 });
      this.clients.set(id, client);
    }
    const [answer] = await client.statusAll();
    return answer?.status?.status;
  }

  /** Status of every running node that answers. */
  async statuses(): Promise<Map<number, NodeStatus>> {
    const answers = await Promise.all(this.nodes.map(async (n) => [n.id, await this.status(n.id)] as const));
    const map = new Map<number, NodeStatus>();
    for (const [id, s] of answers) if (s !== undefined) map.set(id, s);
    return map;
  }

  /** The leader (highest term if two claim it), once one is known. */
  async waitForLeader(timeoutMs = 60_000): Promise<{ spec: NodeSpec; status: NodeStatus }> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.throwIfCrashed();
      const statuses = await this.statuses();
      let best: { spec: NodeSpec; status: NodeStatus } | undefined;
      for (const [id, s] of statuses) {
        if (s.role === NodeRole.LEADER && (best === undefined || s.term > best.status.term)) best = { spec: this.node(id), status: s };
      }
      if (best !== undefined) return best;
      if (performance.now() > deadline) {
        const seen = [...statuses.values()].map((s) => `${s.name}: ${NodeRole[s.role]} term ${s.term}`).join("; ");
        throw new Error(`no leader after ${timeoutMs} ms (${seen || "no node answered Status"})`);
      }
      await sleep(100);
    }
  }

  async metrics(id: number): Promise<Metrics | undefined> {
    if (!this.running.has(id)) return undefined;
    try {
      const response = await fetch(new URL("/metrics", this.node(id).clientUrl), { signal: AbortSignal.timeout(10_000) });
      return response.ok ? Metrics.parse(await response.text()) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Whether /readyz answers 200 (false while the port is closed or it answers 503). */
  async ready(id: number): Promise<boolean> {
    try {
      const response = await fetch(new URL("/readyz", this.node(id).clientUrl), { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      return response.status === 200;
    } catch {
      return false;
    }
  }

  /** VmRSS and VmHWM of the node's process, in bytes (undefined when it is not running). */
  memory(id: number): { rss: number; hwm: number } | undefined {
    const pid = this.running.get(id)?.pid;
    if (pid === undefined) return undefined;
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
      return { rss: kib("VmRSS"), hwm: kib("VmHWM") };
    } catch {
      return undefined;
    }
  }

  sampleMemory(): void {
    for (const n of this.nodes) {
      const hwm = this.memory(n.id)?.hwm;
      if (hwm !== undefined) this.peakHwm.set(n.id, Math.max(hwm, this.peakHwm.get(n.id) ?? 0));
    }
  }

  /** The highest VmHWM of the node over every process it ran as. */
  peakRss(id: number): number | undefined {
    this.sampleMemory();
    return this.peakHwm.get(id);
  }

  /** The size of the node's newest snapshot file (`raft/snap/<index>-<term>.snap`, docs/storage.md), or undefined. */
  snapshotFileBytes(id: number): number | undefined {
    const dir = join(this.node(id).dataDir, "raft", "snap");
    try {
      const newest = readdirSync(dir)
        .filter((name) => name.endsWith(".snap"))
        .sort()
        .at(-1);
      return newest === undefined ? undefined : statSync(join(dir, newest)).size;
    } catch {
      return undefined;
    }
  }

  /** What the node's data directory takes on disk (like du: allocated blocks). */
  diskBytes(id: number): number {
    return diskUsage(this.node(id).dataDir);
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/** Allocated bytes under `path` (st_blocks × 512, as du counts), tolerating files removed meanwhile. */
export function diskUsage(path: string): number {
  let stats;
  try {
    stats = lstatSync(path);
  } catch {
    return 0;
  }
  let total = stats.blocks * 512;
  if (stats.isDirectory()) {
    let entries: string[] = [];
    try {
      entries = readdirSync(path);
    } catch {
      // Removed meanwhile.
    }
    for (const entry of entries) total += diskUsage(join(path, entry));
  }
  return total;
}
