/**
 * npm run bench:state — how raftkv behaves with a large state (issue 13). For each state size (10 MB
 * and 100 MB by default, 1 GB with --sizes) on a fresh 3-node cluster of real `raftkv serve`
 * processes: the time to fill it through the Pipeline stream, a snapshot's creation time and the
 * longest event-loop stall during it, Put latency with and without a snapshot running, restart-to-ready
 * of a follower holding the state and a full WAL, a follower's catch-up through InstallSnapshot, peak
 * RSS and data-directory size of each node. With --sustained N, N Puts over a fixed key set, with disk
 * and memory every 10%. Prints tables and asserts nothing about time: the numbers depend on the machine
 * and on whatever else runs on it. `npm run bench:state -- --help` lists the flags.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { checkPortsFree } from "./cluster-bench/processes.js";
// Read-only reuse of the chaos harness's reaper (see bench/state/cluster.ts).
import { startReaper } from "../test/chaos/reaper.js";
import { Cluster, serveCommand } from "./state/cluster.js";
import { parseOptions, reproduceCommand, sizeLabel, usage, UsageError, type Options } from "./state/options.js";
import { baseline, filled, fillThroughPipeline, installSnapshot, restart, say, snapshotWindow, type PhaseContext } from "./state/phases.js";
import { mb, ms, sec, summaryTable, sustainedTable, type SizeRecord } from "./state/report.js";
import { writeBackup } from "./state/seed.js";
import { sustained, type Checkpoint } from "./state/sustained.js";

const repoRoot = resolve(import.meta.dirname, "..");
const tmpfsMagic = 0x01021994;
const GiB = 1024 ** 3;
/** The cluster id of a cluster seeded by --fill restore (every member restored with it). */
const restoredClusterId = "raftkv-bench-state";

function write(line = ""): void {
  process.stdout.write(`${line}\n`);
}

/** The flags every node of a size run gets: snapshots decided by entry count alone, room for the state. */
function sizeServerFlags(options: Options, bytes: number): string[] {
  const flags = [
    ...["--snapshot-entries", String(options.snapshotEntries), "--snapshot-bytes", "16GiB"],
    ...["--snapshot-retain-entries", String(options.snapshotRetainEntries)],
  ];
  // The default quota is 2 GiB of keys and values; a larger state needs more.
  const needed = bytes * 1.5;
  if (needed > 2 * GiB) flags.push("--quota-bytes", `${Math.min(64, Math.ceil(needed / GiB))}GiB`);
  return flags;
}

/** Runs one phase; a failure other than a node's crash is recorded and the size run goes on. */
async function phase<T>(record: SizeRecord, cluster: Cluster, name: string, run: () => Promise<T>): Promise<T | undefined> {
  try {
    return await run();
  } catch (error) {
    if (cluster.crash !== undefined) throw cluster.crash;
    const message = error instanceof Error ? error.message : String(error);
    record.failures[name] = message;
    say(`${name} FAILED: ${message}`);
    return undefined;
  }
}

async function runSize(
  options: Options,
  root: string,
  bytes: number,
  reaper: ReturnType<typeof startReaper>,
  track: (c?: Cluster) => void,
) {
  const label = sizeLabel(bytes);
  const keys = Math.ceil(bytes / options.valueBytes);
  const method = options.fill === "auto" ? (bytes >= 1e9 ? "restore" : "pipeline") : options.fill;
  const serverFlags = [...sizeServerFlags(options, bytes), ...(method === "restore" ? ["--cluster-id", restoredClusterId] : [])];
  const record: SizeRecord = { label, bytes, keys, valueBytes: options.valueBytes, serverFlags, failures: {} };
  // Generous: about a second per MB of state on top of two minutes, for a slow shared machine.
  const timeoutMs = 120_000 + (bytes / 1e6) * 1_000;
  write(
    `\n== ${label}: ${keys.toLocaleString("en-US")} keys x ${options.valueBytes} B, filled by ${method}; nodes get ${serverFlags.join(" ")}`,
  );
  await checkPortsFree(
    Array.from({ length: 6 }, (_, i) => options.portBase + i),
    "choose other ports with --port-base",
  );
  const dir = mkdtempSync(join(root, `${label}-`));
  const cluster = new Cluster(repoRoot, dir, options.portBase, serverFlags, reaper);
  track(cluster);
  try {
    const ctx: PhaseContext = {
      cluster,
      keys,
      value: randomBytes(options.valueBytes),
      snapshotEntries: options.snapshotEntries,
      retainEntries: options.snapshotRetainEntries,
      inflight: options.inflight,
      cursor: 0,
    };
    record.fill = await phase(record, cluster, "fill", async () => {
      const started = performance.now();
      if (method === "pipeline") {
        cluster.startAll();
        say(`cluster up in ${dir}; leader ${(await cluster.waitForLeader(60_000)).spec.name}`);
        return fillThroughPipeline(ctx);
      }
      const file = join(dir, "state.backup");
      const { dataBytes } = await writeBackup(file, keys, ctx.value);
      const backupSeconds = (performance.now() - started) / 1000;
      say(`backup of ${mb(dataBytes)} built and written in ${sec(backupSeconds)}; raftkv snapshot restore into every member`);
      await cluster.restore(file, restoredClusterId);
      rmSync(file, { force: true });
      cluster.startAll();
      say(`cluster up in ${dir}; leader ${(await cluster.waitForLeader(timeoutMs)).spec.name}`);
      return filled(ctx, { method, seconds: (performance.now() - started) / 1000, retried: 0, backupBytes: dataBytes, backupSeconds });
    });
    if (record.fill === undefined) return record;
    const f = record.fill;
    say(
      `filled by ${f.method} in ${sec(f.seconds)}: ${mb(f.kvBytes)} of keys and values in ${f.kvKeys ?? "?"} keys` +
        `${f.retried > 0 ? ` (${f.retried} Puts sent again)` : ""}; RSS ${Object.entries(f.rssAfterFill)
          .map(([n, v]) => `${n} ${mb(v)}`)
          .join(", ")}`,
    );

    const termAfterFill = Number((await cluster.waitForLeader()).status.term);

    record.baseline = await phase(record, cluster, "baseline", () => baseline(ctx, options.windowSeconds));
    const b = record.baseline;
    if (b !== undefined) {
      say(
        `no snapshot, 1 Put in flight for ${sec(b.seconds)}: p50 ${ms(b.latency.p50Ms)} p99 ${ms(b.latency.p99Ms)} max ${ms(b.latency.maxMs)} ms ` +
          `(n=${b.latency.count}, errors ${b.latency.errors}); event-loop max ${loopLags(b.loopLagMaxMs)}` +
          `${b.snapshotsCreated > 0 ? `; NOTE ${b.snapshotsCreated} snapshot(s) ran during this window` : ""}`,
      );
    }

    record.restart = await phase(record, cluster, "restart", () => restart(ctx, options.walEntries, timeoutMs));
    const r = record.restart;
    if (r !== undefined) {
      say(
        `restart of ${r.node} (snapshot ${mb(r.snapshotBytes)}, ${r.walEntries} WAL entries, ${r.replayEntries} after the snapshot): ` +
          `started again, /readyz 200 in ${sec(r.readySeconds)}, caught up in ${sec(r.caughtUpSeconds)}; its peak RSS ${mb(r.peakRss)}`,
      );
    }

    record.snapshot = await phase(record, cluster, "snapshot", () => snapshotWindow(ctx, timeoutMs));
    const s = record.snapshot;
    if (s !== undefined) {
      say(
        `snapshot of ${mb(s.snapshotBytes)}: created in ${Object.entries(s.createSeconds)
          .map(([n, v]) => `${n} ${sec(v)}`)
          .join(", ")} (leader ${s.leader}); all durable ${sec(s.wallSeconds)} after it started`,
      );
      say(
        `  during it, 1 Put in flight: p50 ${ms(s.latency.p50Ms)} p99 ${ms(s.latency.p99Ms)} max ${ms(s.latency.maxMs)} ms ` +
          `(n=${s.latency.count}, errors ${s.latency.errors}), longest gap between completed Puts ${ms(s.latency.gapMaxMs)} ms; ` +
          `event-loop max ${loopLags(s.loopLagMaxMs)}`,
      );
    }

    record.install = await phase(record, cluster, "install", () => installSnapshot(ctx, undefined, timeoutMs));
    const i = record.install;
    if (i !== undefined) {
      say(
        `InstallSnapshot: ${i.node} stopped, ${i.writtenWhileDown} Puts written while it was down; started again: /readyz 200 in ` +
          `${sec(i.readySeconds)}, caught up in ${sec(i.caughtUpSeconds)}; ${i.snapshotsInstalled} snapshot(s) of ${mb(i.installedBytes)} ` +
          `installed (${sec(i.installSeconds)} on its loop), ${i.mbPerSecond?.toFixed(1) ?? "n/a"} MB/s from ready to caught up`,
      );
    }

    const termAtEnd = Math.max(...[...(await cluster.statuses()).values()].map((st) => Number(st.term)), termAfterFill);
    record.terms = { afterFill: termAfterFill, atEnd: termAtEnd };
    if (termAtEnd > termAfterFill) say(`NOTE the term went from ${termAfterFill} to ${termAtEnd}: leader elections during the run`);
    record.peakRss = {};
    record.diskBytes = {};
    for (const node of cluster.nodes) {
      record.peakRss[node.name] = cluster.peakRss(node.id) ?? null;
      record.diskBytes[node.name] = cluster.diskBytes(node.id);
    }
    say(
      `peak RSS ${Object.entries(record.peakRss)
        .map(([n, v]) => `${n} ${mb(v)}`)
        .join(", ")}; data dirs ${Object.entries(record.diskBytes)
        .map(([n, v]) => `${n} ${mb(v)}`)
        .join(", ")}`,
    );
    return record;
  } finally {
    await cluster.close();
    track(undefined);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

function loopLags(lags: Record<string, number | null>): string {
  return Object.entries(lags)
    .map(([n, v]) => `${n} ${ms(v)} ms`)
    .join(", ");
}

async function runSustained(options: Options, root: string, reaper: ReturnType<typeof startReaper>, track: (c?: Cluster) => void) {
  const flags = [
    ...(options.snapshotEntriesGiven ? ["--snapshot-entries", String(options.snapshotEntries)] : []),
    ...(options.snapshotRetainGiven ? ["--snapshot-retain-entries", String(options.snapshotRetainEntries)] : []),
  ];
  write(
    `\n== sustained: ${options.sustained.toLocaleString("en-US")} Puts over ${options.sustainedKeys.toLocaleString("en-US")} keys x ${options.valueBytes} B, ` +
      `${options.inflight} in flight; nodes get ${flags.length === 0 ? "raftkv's default snapshot settings" : flags.join(" ")}`,
  );
  await checkPortsFree(
    Array.from({ length: 6 }, (_, i) => options.portBase + i),
    "choose other ports with --port-base",
  );
  const dir = mkdtempSync(join(root, "sustained-"));
  const cluster = new Cluster(repoRoot, dir, options.portBase, flags, reaper);
  track(cluster);
  try {
    cluster.startAll();
    await cluster.waitForLeader(60_000);
    const checkpoints = await sustained(
      cluster,
      options.sustained,
      options.sustainedKeys,
      randomBytes(options.valueBytes),
      options.inflight,
    );
    const peak = cluster.nodes.map((n) => `${n.name} ${mb(cluster.peakRss(n.id))}`).join(", ");
    say(`peak RSS (VmHWM) ${peak}`);
    return { checkpoints, flags };
  } finally {
    await cluster.close();
    track(undefined);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

async function main(): Promise<number> {
  let parsed: Options | undefined;
  try {
    parsed = parseOptions(process.argv.slice(2));
  } catch (error) {
    // parseArgs reports bad flags as errors with an ERR_PARSE_ARGS_* code.
    const code = (error as { code?: unknown }).code;
    if (!(error instanceof UsageError || (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")))) throw error;
    process.stderr.write(`npm run bench:state: ${(error as Error).message}\n(npm run bench:state -- --help lists the flags)\n`);
    return 2;
  }
  if (parsed === undefined) {
    process.stdout.write(usage);
    return 0;
  }
  const options = parsed;
  const began = Date.now();
  const notes: string[] = [];
  mkdirSync(options.dataDir, { recursive: true });
  const root = mkdtempSync(join(options.dataDir, "raftkv-bench-state-"));
  if (statfsSync(root).type === tmpfsMagic)
    notes.push(`${options.dataDir} is tmpfs: fsync costs nothing there, so these are not a disk's numbers`);
  const reaper = startReaper();
  let current: Cluster | undefined;
  const track = (cluster?: Cluster): void => {
    current = cluster;
  };
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await current?.close();
    reaper.close();
    rmSync(root, { recursive: true, force: true, maxRetries: 5 });
  };
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    // `on`, not `once`: tsx relays a terminal's Ctrl-C to this process a second time when it does not
    // hear back within 30 ms, and with no listener left its preflight would exit mid-cleanup.
    if (signalled) return;
    signalled = true;
    process.stderr.write(`\nnpm run bench:state: ${signal}; killing the nodes and removing ${root}\n`);
    void cleanup().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.once("exit", () => {
    current?.killNow();
    try {
      rmSync(root, { recursive: true, force: true, maxRetries: 5 });
    } catch (error) {
      process.stderr.write(`npm run bench:state: could not remove ${root}: ${String(error)}\n`);
    }
  });

  const serve = serveCommand(repoRoot);
  write(
    `npm run bench:state: sizes ${options.sizes.map(sizeLabel).join(", ") || "none"}; ${options.valueBytes} B values; ` +
      `${cpus().length} CPUs, load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}; node ${process.version}`,
  );
  write(`  nodes run ${serve.runs}; data under ${root}`);
  const records: SizeRecord[] = [];
  let sustainedResult: { checkpoints: Checkpoint[]; flags: string[] } | undefined;
  let exitCode = 0;
  try {
    for (const bytes of options.sizes) records.push(await runSize(options, root, bytes, reaper, track));
    if (options.sustained > 0) sustainedResult = await runSustained(options, root, reaper, track);
  } catch (error) {
    process.stderr.write(`\nnpm run bench:state: ${error instanceof Error ? error.message : String(error)}\n`);
    exitCode = 1;
  } finally {
    await cleanup();
  }

  const failures = records.flatMap((r) => Object.entries(r.failures).map(([p, why]) => `${r.label} ${p}: ${why}`));
  if (records.length > 0) {
    write(`\n${summaryTable(records)}`);
    write(
      "\nMB = 10^6 bytes. Latencies: one Put in flight (the bundled client, unary gRPC, to the leader), overwriting random keys of the\n" +
        "state; 'no snapshot' is a window with no snapshot due, 'during snapshot' runs from the Put that starts the leader's snapshot\n" +
        "until every node's snapshot is durable (ClusterService.Status). Event-loop stall: nodejs_eventloop_lag_max_seconds of each node\n" +
        "over the window (prom-client's monitorEventLoopDelay, reset by each scrape; the node named is the worst); the gap between Puts is\n" +
        "the same from the client's side. Snapshot create time: raftkv_snapshot_duration_seconds{kind=created}, which counts encoding it\n" +
        "beside the loop and writing it. Restart: a follower SIGKILLed and started with the same flags, timed from the spawn. InstallSnapshot:\n" +
        "a follower stopped while the leader compacted its log past it, then started; MB/s is the installed snapshot's size over the time\n" +
        "from its /readyz 200 to having applied the leader's commit index. Peak RSS: /proc/PID/status VmHWM, across restarts.",
    );
  }
  if (sustainedResult !== undefined) write(`\nsustained\n${sustainedTable(sustainedResult.checkpoints)}`);
  for (const note of notes) write(`note: ${note}`);
  for (const failure of failures) write(`FAILED ${failure}`);
  write(`\nreproduce: ${reproduceCommand(options)}`);
  write(`took ${((Date.now() - began) / 1000).toFixed(0)} s`);
  if (options.json !== undefined) {
    mkdirSync(dirname(options.json), { recursive: true });
    writeFileSync(
      options.json,
      `${JSON.stringify(
        {
          startedAt: new Date(began).toISOString(),
          durationSeconds: (Date.now() - began) / 1000,
          machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, loadAverageAtEnd: loadavg(), node: process.version },
          nodesRun: serve.runs,
          options,
          sizes: records,
          sustained: sustainedResult ?? null,
          notes,
        },
        null,
        2,
      )}\n`,
    );
    write(`wrote ${options.json}`);
  }
  return exitCode !== 0 ? exitCode : failures.length > 0 ? 1 : 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`npm run bench:state: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
