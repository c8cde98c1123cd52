/**
 * npm run bench — throughput, latency and server CPU of a 3-node raftkv cluster through gRPC, and
 * with --compare etcd the same workload, with the same client, against a 3-member etcd cluster.
 * Prints tables and writes JSON; asserts nothing about time (numbers depend on the machine and on
 * whatever else runs on it). `npm run bench -- --help` lists the flags.
 *
 * Both clusters run on loopback on this machine, so client and servers share its cores: the client's
 * own CPU per operation is reported next to the servers' so that a saturated client is visible.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { execFileSync } from "node:child_process";
import { defaultServeCommand } from "../test/chaos/node-process.js";
import { delta, preload, quantile, runLoad, scrapeAll, workloads, type Workload } from "./cluster-bench/measure.js";
import { checkPortsFree, onPath, ServerProcesses, treeCpu, type CpuSample } from "./cluster-bench/processes.js";
import { cellsTable, comparisonTable, ms, type CellRecord } from "./cluster-bench/report.js";
import { Endpoint, etcdSystem, raftkvPipelineSystem, raftkvSystem, type KvSystem } from "./cluster-bench/systems.js";

const repoRoot = resolve(import.meta.dirname, "..");
const usage = `npm run bench -- [flags]

Starts a 3-node raftkv cluster on loopback in a temporary directory (or uses --endpoints), runs every
workload at every concurrency against the leader, prints a table and writes JSON.

  --endpoints URL,...   an existing raftkv cluster's client URLs instead of starting one
  --compare etcd        also start a 3-member etcd cluster (needs etcd on PATH; Debian: etcd-server)
                        and run every cell against it too, alternating with raftkv cell by cell
  --concurrency LIST    calls in flight, comma-separated (default 1,16,64,256)
  --pipeline LIST       then puts through raftkv's pipelined client (one Pipeline stream to the
                        leader) at these requests in flight (default 256,1024; "none" to skip)
  --workloads LIST      put, get (linearizable), mixed (90% get, 10% put) (default put,get,mixed)
  --seconds S           measured seconds per cell (default 5)
  --warmup S            unmeasured seconds before each cell (default 1)
  --keys N              distinct keys, all written before the cells (default 10000; keys are 16 bytes)
  --value-bytes N       value size (default 256)
  --channels N          grpc-js channels (HTTP/2 connections) to the leader (default 1)
  --target WHO          leader (default) or follower: send every call to a follower instead, which
                        forwards writes to the leader (raftkv --forward-writes, etcd's own proxying)
  --port-base P         raftkv takes ports P..P+5, etcd P+10..P+15 (default 24379: below Linux's
                        ephemeral range and clear of npm start's ports)
  --data-dir DIR        where the temporary server directories go (default the OS temp dir; not tmpfs,
                        where fsync costs nothing)
  --json FILE           results as JSON (default results/bench-<timestamp>.json)
  --help                this text
`;

interface Options {
  readonly endpoints: readonly string[] | undefined;
  readonly compareEtcd: boolean;
  readonly concurrency: readonly number[];
  readonly pipeline: readonly number[];
  readonly workloads: readonly Workload[];
  readonly seconds: number;
  readonly warmup: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly channels: number;
  readonly target: "leader" | "follower";
  readonly portBase: number;
  readonly dataDir: string;
  readonly json: string;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options | undefined {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      "endpoints": { type: "string" },
      "compare": { type: "string" },
      "concurrency": { type: "string", default: "1,16,64,256" },
      "pipeline": { type: "string", default: "256,1024" },
      "workloads": { type: "string", default: workloads.join(",") },
      "seconds": { type: "string", default: "5" },
      "warmup": { type: "string", default: "1" },
      "keys": { type: "string", default: "10000" },
      "value-bytes": { type: "string", default: "256" },
      "channels": { type: "string", default: "1" },
      "target": { type: "string", default: "leader" },
      "port-base": { type: "string", default: "24379" },
      "data-dir": { type: "string", default: tmpdir() },
      "json": { type: "string" },
      "help": { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const number = (flag: string, text: string, min: number, max: number, integer: boolean): number => {
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      throw new UsageError(`--${flag} must be ${integer ? "an integer" : "a number"} from ${min} to ${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
  const list = (text: string): string[] => text.split(",").map((s) => s.trim());
  if (values.compare !== undefined && values.compare !== "etcd")
    throw new UsageError(`--compare takes only "etcd", got ${JSON.stringify(values.compare)}`);
  const chosen = list(values.workloads);
  for (const w of chosen)
    if (!(workloads as readonly string[]).includes(w))
      throw new UsageError(`--workloads: unknown workload ${JSON.stringify(w)} (known: ${workloads.join(", ")})`);
  const endpoints = values.endpoints === undefined ? undefined : list(values.endpoints);
  for (const url of endpoints ?? []) {
    if (!/^http:\/\/[^/]+:\d+\/?$/.test(url))
      throw new UsageError(`--endpoints: ${JSON.stringify(url)} is not a client URL like http://127.0.0.1:2379`);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  return {
    endpoints,
    compareEtcd: values.compare === "etcd",
    concurrency: [...new Set(list(values.concurrency).map((c) => number("concurrency", c, 1, 4096, true)))],
    pipeline: values.pipeline === "none" ? [] : [...new Set(list(values.pipeline).map((c) => number("pipeline", c, 1, 4096, true)))],
    workloads: [...new Set(chosen as Workload[])],
    seconds: number("seconds", values.seconds, 0.1, 3600, false),
    warmup: number("warmup", values.warmup, 0, 3600, false),
    keys: number("keys", values.keys, 1, 1_000_000, true),
    valueBytes: number("value-bytes", values["value-bytes"], 0, 1_000_000, true),
    channels: number("channels", values.channels, 1, 64, true),
    target: values.target === "follower" ? "follower" : values.target === "leader" ? "leader" : badTarget(values.target),
    portBase: number("port-base", values["port-base"], 1024, 65_535 - 16, true),
    dataDir: resolve(values["data-dir"]),
    json: resolve(values.json ?? join(repoRoot, "results", `bench-${stamp}.json`)),
  };
}

function badTarget(value: string | undefined): never {
  throw new UsageError(`--target: ${JSON.stringify(value)} is neither leader nor follower`);
}

/** One system under test: how to call it, its endpoints, and the server pids to measure (if started here). */
interface Target {
  readonly system: KvSystem;
  readonly endpoints: readonly Endpoint[];
  /** Server pids in the order of `endpoints`; empty for --endpoints. */
  readonly pids: readonly number[];
  readonly metricNames: {
    readonly fsyncs: string;
    readonly commitIndex: string;
    readonly peerMessages: string | undefined;
    readonly peerBatches: string | undefined;
  };
}

const raftkvMetrics = {
  fsyncs: "raftkv_wal_fsync_duration_seconds_count",
  commitIndex: "raftkv_raft_commit_index",
  peerMessages: "raftkv_peer_messages_sent_total",
  peerBatches: "raftkv_peer_batches_total",
};
// etcd exports bytes sent to peers but no message or batch count.
const etcdMetrics = {
  fsyncs: "etcd_disk_wal_fsync_duration_seconds_count",
  commitIndex: "etcd_server_proposals_committed_total",
  peerMessages: undefined,
  peerBatches: undefined,
};

const tmpfsMagic = 0x01021994;
const leaderWaitMs = 60_000;
const preloadConcurrency = 256;
const idleSampleMs = 3_000;

function startRaftkv(servers: ServerProcesses, dir: string, portBase: number): string[] {
  const serve = defaultServeCommand(repoRoot);
  if (serve === undefined) throw new Error("cannot find bin/raftkv.js to start raftkv");
  const nodes = [1, 2, 3].map((id) => ({ id, client: portBase + 2 * (id - 1), peer: portBase + 2 * (id - 1) + 1 }));
  const initialCluster = nodes.map((n) => `${n.id}=http://127.0.0.1:${n.peer}|http://127.0.0.1:${n.client}`).join(",");
  for (const n of nodes) {
    const dataDir = join(dir, `raftkv-${n.id}`);
    servers.start({
      name: `raftkv-${n.id}`,
      logPath: `${dataDir}.log`,
      command: [
        ...serve,
        ...["--id", String(n.id), "--name", `node-${n.id}`, "--data-dir", dataDir, "--initial-cluster", initialCluster],
        ...["--listen-client", `127.0.0.1:${n.client}`, "--listen-peer", `127.0.0.1:${n.peer}`],
      ],
    });
  }
  return nodes.map((n) => `http://127.0.0.1:${n.client}`);
}

/** etcd's defaults (fsync on), only the flags a 3-member loopback cluster needs. */
function startEtcd(servers: ServerProcesses, etcd: string, dir: string, portBase: number): string[] {
  const members = [1, 2, 3].map((i) => ({ name: `etcd-${i}`, client: portBase + 10 + 2 * (i - 1), peer: portBase + 11 + 2 * (i - 1) }));
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(",");
  // ETCD_* variables are flags to etcd: drop inherited ones so that only the flags below apply.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ETCD_")));
  // etcd 3.4 refuses to start on architectures other than amd64 unless told to.
  const goArch: Record<string, string> = { arm64: "arm64", ppc64: "ppc64le", s390x: "s390x" };
  if (process.arch !== "x64") env.ETCD_UNSUPPORTED_ARCH = goArch[process.arch] ?? process.arch;
  for (const m of members) {
    const peerUrl = `http://127.0.0.1:${m.peer}`;
    const clientUrl = `http://127.0.0.1:${m.client}`;
    servers.start({
      name: m.name,
      logPath: join(dir, `${m.name}.log`),
      env,
      command: [
        etcd,
        ...["--name", m.name, "--data-dir", join(dir, m.name)],
        ...["--initial-advertise-peer-urls", peerUrl, "--listen-peer-urls", peerUrl],
        ...["--listen-client-urls", clientUrl, "--advertise-client-urls", clientUrl],
        ...[
          "--initial-cluster",
          initialCluster,
          "--initial-cluster-state",
          "new",
          "--initial-cluster-token",
          `raftkv-bench-${process.pid}`,
        ],
      ],
    });
  }
  return members.map((m) => `http://127.0.0.1:${m.client}`);
}

async function waitForLeader(target: Target, servers: ServerProcesses | undefined, timeoutMs: number): Promise<Endpoint> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (servers?.crash !== undefined) throw servers.crash;
    const leader = await target.system.findLeader(target.endpoints);
    if (leader !== undefined) return leader;
    if (Date.now() > deadline)
      throw new Error(`${target.system.name}: no leader among ${target.endpoints.map((e) => e.url).join(",")} after ${timeoutMs} ms`);
    await sleep(200);
  }
}

interface Snapshot {
  readonly serverCpu: CpuSample | undefined;
  readonly clientCpuUs: number;
  readonly metrics: readonly (Map<string, number> | undefined)[];
}

async function snapshot(target: Target, edge: "start" | "end"): Promise<Snapshot> {
  // /proc is read at the window's very edge and the scrape outside the window, so that the scrape's
  // own server CPU does not count as the workload's.
  const read = (): { serverCpu: CpuSample | undefined; clientCpuUs: number } => {
    const usage = process.cpuUsage();
    return { serverCpu: treeCpu(target.pids), clientCpuUs: usage.user + usage.system };
  };
  if (edge === "end") {
    const cpu = read();
    return { ...cpu, metrics: await scrapeAll(target.endpoints) };
  }
  const metrics = await scrapeAll(target.endpoints);
  return { ...read(), metrics };
}

/** Server CPU between two snapshots: /proc for servers started here, else their process_cpu_seconds_total. */
function serverCpu(
  target: Target,
  before: Snapshot,
  after: Snapshot,
): { cpuMs: number | undefined; source: CellRecord["serverCpuSource"]; split: CellRecord["serverCpuSplit"] } {
  const [b, a] = [before.serverCpu, after.serverCpu];
  if (b !== undefined && a !== undefined) {
    const userMs = a.userMs - b.userMs;
    const systemMs = a.systemMs - b.systemMs;
    const perNodeMs = Object.fromEntries(target.endpoints.map((e, i) => [e.url, (a.perRootMs[i] ?? 0) - (b.perRootMs[i] ?? 0)]));
    return { cpuMs: userMs + systemMs, source: "proc", split: { userMs, systemMs, perNodeMs } };
  }
  const seconds = delta(before.metrics, after.metrics, "process_cpu_seconds_total");
  return seconds === undefined
    ? { cpuMs: undefined, source: null, split: null }
    : { cpuMs: seconds * 1000, source: "metrics", split: null };
}

async function runCell(
  target: Target,
  options: Options,
  workload: Workload,
  concurrency: number,
  keys: readonly Buffer[],
  value: Buffer,
): Promise<CellRecord> {
  const leader = await waitForLeader(target, undefined, 10_000);
  const called = options.target === "follower" ? (target.endpoints.find((e) => e.url !== leader.url) ?? leader) : leader;
  const { result, before, after } = await runLoad(
    {
      system: target.system,
      leader: called,
      workload,
      concurrency,
      warmupMs: options.warmup * 1000,
      measureMs: options.seconds * 1000,
      keys,
      value,
    },
    (edge) => snapshot(target, edge),
  );
  const perOp = (total: number | undefined): number | null => (total === undefined || result.ops === 0 ? null : total / result.ops);
  const { cpuMs: serverCpuMs, source, split } = serverCpu(target, before, after);
  const names = target.metricNames;
  const fsyncs = delta(before.metrics, after.metrics, names.fsyncs);
  const committed = delta(before.metrics, after.metrics, names.commitIndex);
  const peerMessages = names.peerMessages === undefined ? undefined : delta(before.metrics, after.metrics, names.peerMessages);
  const peerBatches = names.peerBatches === undefined ? undefined : delta(before.metrics, after.metrics, names.peerBatches);
  const q = (p: number): number | null => (result.ops === 0 ? null : quantile(result.latenciesMs, p));
  return {
    system: target.system.name,
    workload,
    concurrency,
    seconds: result.elapsedMs / 1000,
    ops: result.ops,
    opsPerSecond: result.ops / (result.elapsedMs / 1000),
    latencyMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: q(1) },
    errors: result.errors,
    errorsByCode: result.errorsByCode,
    misses: result.misses,
    serverCpuMs: serverCpuMs ?? null,
    serverCpuSource: source,
    serverCpuSplit: split,
    leader: leader.url,
    serverCpuMsPerOp: perOp(serverCpuMs),
    clientCpuMsPerOp: perOp((after.clientCpuUs - before.clientCpuUs) / 1000),
    fsyncs: fsyncs ?? null,
    entriesPerFsync: fsyncs === undefined || committed === undefined || fsyncs === 0 ? null : committed / fsyncs,
    // raftkv counts the batches written to its Step streams; etcd exports no such count (n/a).
    messagesPerBatch: peerMessages === undefined || peerBatches === undefined || peerBatches === 0 ? null : peerMessages / peerBatches,
    peerMessagesPerOp: perOp(peerMessages),
  };
}

async function main(): Promise<number> {
  let parsed: Options | undefined;
  try {
    parsed = parseOptions(process.argv.slice(2));
  } catch (error) {
    // parseArgs reports bad flags as errors with an ERR_PARSE_ARGS_* code.
    const code = (error as { code?: unknown }).code;
    if (!(error instanceof UsageError || (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")))) throw error;
    process.stderr.write(`npm run bench: ${(error as Error).message}\n(npm run bench -- --help lists the flags)\n`);
    return 2;
  }
  if (parsed === undefined) {
    process.stdout.write(usage);
    return 0;
  }
  const options = parsed;
  const began = Date.now();
  const loadAtStart = loadavg();
  const notes: string[] = [];
  const etcd = options.compareEtcd ? onPath("etcd") : undefined;
  if (options.compareEtcd && etcd === undefined) {
    notes.push("--compare etcd: no etcd on PATH (Debian: apt-get install etcd-server); measured raftkv only");
    process.stderr.write(`npm run bench: ${notes.at(-1)}\n`);
  }
  const startsServers = options.endpoints === undefined || etcd !== undefined;
  let tempDir: string | undefined;
  let servers: ServerProcesses | undefined;
  const targets: Target[] = [];
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await servers?.stopAll();
    for (const t of targets) for (const e of t.endpoints) e.close();
    if (tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true, maxRetries: 3 });
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\nnpm run bench: ${signal}; stopping the servers and removing ${tempDir ?? "nothing"}\n`);
    void cleanup().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("exit", () => {
    servers?.killNow();
    if (!cleaned && tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true });
  });

  try {
    if (startsServers) {
      mkdirSync(options.dataDir, { recursive: true });
      tempDir = mkdtempSync(join(options.dataDir, "raftkv-bench-"));
      if (statfsSync(tempDir).type === tmpfsMagic)
        notes.push(`${options.dataDir} is tmpfs: fsync costs nothing there, so write numbers are not a disk's`);
      servers = new ServerProcesses(repoRoot);
      const ports = [
        ...(options.endpoints === undefined ? [0, 1, 2, 3, 4, 5] : []),
        ...(etcd !== undefined ? [10, 11, 12, 13, 14, 15] : []),
      ].map((p) => options.portBase + p);
      await checkPortsFree(ports, "choose other ports with --port-base");
    }
    // Without --endpoints, startsServers made `servers` and `tempDir` above.
    const raftkvUrls = options.endpoints ?? startRaftkv(servers as ServerProcesses, tempDir as string, options.portBase);
    targets.push({
      system: raftkvSystem(repoRoot),
      endpoints: raftkvUrls.map((url) => new Endpoint(url, options.channels)),
      pids: options.endpoints === undefined ? (servers?.pids("raftkv-") ?? []) : [],
      metricNames: raftkvMetrics,
    });
    if (etcd !== undefined && servers !== undefined && tempDir !== undefined) {
      const urls = startEtcd(servers, etcd, tempDir, options.portBase);
      targets.push({
        system: etcdSystem(import.meta.dirname),
        endpoints: urls.map((url) => new Endpoint(url, options.channels)),
        pids: servers.pids("etcd-"),
        metricNames: etcdMetrics,
      });
    }
    const etcdVersion = etcd === undefined ? null : (execFileSync(etcd, ["--version"], { encoding: "utf8" }).split("\n")[0] ?? null);

    process.stdout.write(
      `npm run bench: ${targets.map((t) => `${t.system.name} ${t.endpoints.map((e) => e.url).join(",")}`).join("; ")}\n` +
        `  ${options.workloads.join(",")} x concurrency ${options.concurrency.join(",")}; ${options.warmup} s warm-up + ${options.seconds} s per cell; ` +
        `${options.keys} keys of 16 B, ${options.valueBytes} B values; ${options.channels} channel(s) to the ${options.target}; ${cpus().length} CPUs, load ${loadavg()[0]?.toFixed(2)}\n`,
    );
    const keys = Array.from({ length: options.keys }, (_, i) => Buffer.from(`bench/${String(i).padStart(10, "0")}`));
    const value = randomBytes(options.valueBytes);
    for (const target of targets) {
      const leader = await waitForLeader(target, servers, leaderWaitMs);
      const started = performance.now();
      await preload(target.system, leader, keys, value, preloadConcurrency);
      process.stdout.write(
        `  ${target.system.name}: leader ${leader.url}; wrote ${options.keys} keys in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
      );
    }

    // The servers' CPU with no load: heartbeats, timers, metrics. It weighs on CPU per op at low rates.
    const idleCpuMsPerSecond: Record<string, number | null> = {};
    for (const target of targets) {
      const before = await snapshot(target, "start");
      await sleep(idleSampleMs);
      const after = await snapshot(target, "end");
      const { cpuMs } = serverCpu(target, before, after);
      idleCpuMsPerSecond[target.system.name] = cpuMs === undefined ? null : cpuMs / (idleSampleMs / 1000);
      process.stdout.write(
        `  ${target.system.name}: idle servers use ${ms(idleCpuMsPerSecond[target.system.name])} ms CPU per second (all 3)\n`,
      );
    }

    const cells: CellRecord[] = [];
    for (const workload of options.workloads) {
      for (const concurrency of options.concurrency) {
        // raftkv and etcd alternate cell by cell, so that drift of a shared machine hits both alike.
        for (const target of targets) {
          const cell = await runCell(target, options, workload, concurrency, keys, value);
          if (servers?.crash !== undefined) throw servers.crash;
          cells.push(cell);
          const errors = Object.entries(cell.errorsByCode).map(([code, e]) => `${code} x${e.count} (${e.first})`);
          process.stdout.write(
            `  ${cell.system.padEnd(6)} ${workload.padEnd(5)} c=${String(concurrency).padEnd(4)} ${cell.opsPerSecond.toFixed(0).padStart(6)} ops/s  p50 ${ms(cell.latencyMs.p50)}  p99 ${ms(cell.latencyMs.p99)} ms  ` +
              `server CPU ${ms(cell.serverCpuMsPerOp)} ms/op  errors ${cell.errors}${errors.length > 0 ? `: ${errors.join("; ")}` : ""}${cell.misses > 0 ? `  misses ${cell.misses}` : ""}\n`,
          );
        }
      }
    }

    // raftkv's own pipelined client, after the grid: the same puts on one Pipeline stream.
    const raftkvTarget = targets.find((t) => t.system.name === "raftkv");
    for (const concurrency of raftkvTarget === undefined ? [] : options.pipeline) {
      if (raftkvTarget === undefined) break;
      const leader = await waitForLeader(raftkvTarget, servers, leaderWaitMs);
      const system = raftkvPipelineSystem(leader.url);
      try {
        const cell = await runCell({ ...raftkvTarget, system }, options, "put", concurrency, keys, value);
        cells.push(cell);
        process.stdout.write(
          `  ${cell.system} put c=${concurrency} ${cell.opsPerSecond.toFixed(0).padStart(6)} ops/s  p50 ${ms(cell.latencyMs.p50)}  p99 ${ms(cell.latencyMs.p99)} ms  ` +
            `server CPU ${ms(cell.serverCpuMsPerOp)} ms/op  errors ${cell.errors}\n`,
        );
      } finally {
        await system.close();
      }
    }

    const seconds = (Date.now() - began) / 1000;
    process.stdout.write(`\n${cellsTable(cells)}\n`);
    if (targets.length > 1)
      process.stdout.write(`\nraftkv vs etcd (ratios are raftkv / etcd; latencies in ms)\n${comparisonTable(cells)}\n`);
    process.stdout.write(
      "\nsrv CPU: the 3 server processes over the measured window (/proc utime+stime of their process trees; with --endpoints\n" +
        "their process_cpu_seconds_total); client CPU: this process. Per-node and user/system splits are in the JSON.\n" +
        "entries/fsync: Σ commit-index delta / Σ WAL fsync delta over the nodes' /metrics. msgs/batch: Σ peer messages delta / Σ peer batches delta (raftkv only).\n",
    );
    for (const note of notes) process.stdout.write(`note: ${note}\n`);
    mkdirSync(dirname(options.json), { recursive: true });
    writeFileSync(
      options.json,
      `${JSON.stringify(
        {
          startedAt: new Date(began).toISOString(),
          durationSeconds: seconds,
          machine: {
            cpus: cpus().length,
            cpuModel: cpus()[0]?.model ?? null,
            loadAverageAtStart: loadAtStart,
            loadAverageAtEnd: loadavg(),
            node: process.version,
            etcd: etcdVersion,
          },
          options,
          idleServerCpuMsPerSecond: idleCpuMsPerSecond,
          notes,
          cells,
        },
        null,
        2,
      )}\n`,
    );
    process.stdout.write(`\nwrote ${options.json}; took ${seconds.toFixed(0)} s\n`);
    return 0;
  } finally {
    await cleanup();
  }
}

try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`npm run bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
