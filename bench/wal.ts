/**
 * npm run bench:wal — how fast the WAL is on this disk. Prints tables; asserts nothing about time.
 *
 *   1. The raw rate of the disk: write 256 B + fdatasync in a loop, for three file layouts (zero-filled
 *      ahead of time, which the WAL uses; sparse from ftruncate; growing by appends), and the same loop
 *      with the fdatasync sent to libuv's thread pool (the ceiling for anything that keeps the event loop
 *      free). Each after a warm-up second, like the WAL rows.
 *   2. The WAL with 256 B entries and 1, 16, 64 and 256 concurrent appenders (each awaits its own save):
 *      appends/s, fdatasyncs/s, entries per fdatasync, latency. Measured in steady state: after the
 *      zero-fill of the next segment that follows open, and after a warm-up second. The raw rate is
 *      measured again right before each row (the thread-pool loop: the ceiling for a writer that keeps
 *      the event loop free), because a shared disk's rate drifts from minute to minute.
 *  2b. One appender against both raw loops in alternating 200 ms slices: the comparison that survives a
 *      disk whose rate drifts.
 *   3. Replay: open a log of 1,000,000 entries of 256 B in a fresh process (as a restart does), with
 *      the files in the page cache; wall and CPU time.
 *
 * Environment: WAL_BENCH_DIR (default the OS temp dir), WAL_BENCH_SECONDS per measurement (default 3),
 * WAL_BENCH_REPLAY_ENTRIES (default 1000000).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Entry } from "../src/core/types.js";
import { createNodeFileSystem, openStorage, type FileSystem } from "../src/storage/index.js";
import { silentLogger } from "../src/lib/logger.js";

const baseDir = process.env.WAL_BENCH_DIR ?? tmpdir();
const seconds = Number(process.env.WAL_BENCH_SECONDS ?? 3);
const replayEntries = Number(process.env.WAL_BENCH_REPLAY_ENTRIES ?? 1_000_000);
const entryBytes = 256;
const warmupMs = 1000;

function table(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? "").length)));
  console.log(`\n${title}`);
  cells.forEach((r, i) => {
    console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  });
}

const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");

/** write(256 B) + fdatasync in a loop on one file layout, synchronously: the disk's own rate. */
function rawRate(dir: string, layout: "zero-filled" | "sparse (ftruncate)" | "growing (append)"): number {
  const path = join(dir, "raw.dat");
  const fd = fs.openSync(path, "w+");
  const fileBytes = 64 * 1024 * 1024;
  try {
    if (layout === "zero-filled") {
      const zeros = Buffer.alloc(1 << 20);
      for (let at = 0; at < fileBytes; at += zeros.length) fs.writeSync(fd, zeros, 0, zeros.length, at);
      fs.fsyncSync(fd);
    } else if (layout === "sparse (ftruncate)") {
      fs.ftruncateSync(fd, fileBytes);
      fs.fsyncSync(fd);
    }
    const buf = Buffer.alloc(entryBytes, 7);
    let ops = 0;
    // Warm up as the WAL measurement does: a VM's disk is slow for a while after a large write.
    const warmupEnd = performance.now() + warmupMs;
    while (performance.now() < warmupEnd) {
      fs.writeSync(fd, buf, 0, buf.length, (ops++ * entryBytes) % fileBytes);
      fs.fdatasyncSync(fd);
    }
    const started = performance.now();
    const deadline = started + seconds * 1000;
    const opsAtStart = ops;
    while (performance.now() < deadline) {
      fs.writeSync(fd, buf, 0, buf.length, (ops * entryBytes) % fileBytes);
      fs.fdatasyncSync(fd);
      ops++;
    }
    return (ops - opsAtStart) / ((performance.now() - started) / 1000);
  } finally {
    fs.closeSync(fd);
    fs.unlinkSync(path);
  }
}

/** The same loop with fdatasync on libuv's thread pool, as any non-blocking writer must do it. */
async function rawAsyncRate(dir: string): Promise<number> {
  const path = join(dir, "raw-async.dat");
  const fd = fs.openSync(path, "w+");
  const fileBytes = 64 * 1024 * 1024;
  try {
    const zeros = Buffer.alloc(1 << 20);
    for (let at = 0; at < fileBytes; at += zeros.length) fs.writeSync(fd, zeros, 0, zeros.length, at);
    fs.fsyncSync(fd);
    const buf = Buffer.alloc(entryBytes, 7);
    const datasync = (): Promise<void> => new Promise((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())));
    let ops = 0;
    const warmupEnd = performance.now() + warmupMs;
    while (performance.now() < warmupEnd) {
      fs.writeSync(fd, buf, 0, buf.length, (ops++ * entryBytes) % fileBytes);
      await datasync();
    }
    const started = performance.now();
    const deadline = started + seconds * 1000;
    const opsAtStart = ops;
    while (performance.now() < deadline) {
      fs.writeSync(fd, buf, 0, buf.length, (ops * entryBytes) % fileBytes);
      await datasync();
      ops++;
    }
    return (ops - opsAtStart) / ((performance.now() - started) / 1000);
  } finally {
    fs.closeSync(fd);
    fs.unlinkSync(path);
  }
}

/**
 * The Node file system, counting fdatasyncs and noticing when the background zero-fill of the next
 * segment (opened as *.wal.tmp, finished by an fsync) is done, so it is not mixed into a measurement.
 */
function countingFileSystem(): { fs: FileSystem; datasyncs: () => number; preparedSegments: () => number } {
  const inner = createNodeFileSystem();
  let datasyncs = 0;
  let prepared = 0;
  return {
    datasyncs: () => datasyncs,
    preparedSegments: () => prepared,
    fs: {
      ...inner,
      open: async (path, mode) => {
        const handle = await inner.open(path, mode);
        return {
          ...handle,
          datasync: async () => {
            await handle.datasync();
            datasyncs++;
          },
          sync: async () => {
            await handle.sync();
            if (path.endsWith(".wal.tmp")) prepared++;
          },
        };
      },
    },
  };
}

function entry(index: number): Entry {
  return { index, term: 1, type: "normal", data: new Uint8Array(entryBytes).fill(index & 255) };
}

interface WalResult {
  readonly appenders: number;
  readonly appendsPerSecond: number;
  readonly fsyncsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

async function walRate(dir: string, appenders: number): Promise<WalResult> {
  const counting = countingFileSystem();
  const log = await openStorage({ dir, fs: counting.fs, logger: silentLogger });
  // Steady state: wait until the next segment (zero-filled in the background after open) is ready.
  while (counting.preparedSegments() < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  let next = 1;
  let measuring = false;
  let appends = 0;
  const latencies: number[] = [];
  const warmupEnd = performance.now() + warmupMs;
  const deadline = warmupEnd + seconds * 1000;
  let fsyncsAtStart = 0;
  let startedAt = 0;
  const appender = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await log.save(undefined, [entry(next++)]);
      const now = performance.now();
      if (!measuring && now >= warmupEnd) {
        measuring = true;
        fsyncsAtStart = counting.datasyncs();
        startedAt = now;
      }
      if (measuring) {
        appends++;
        if (latencies.length < 1_000_000) latencies.push(now - t0);
      }
    }
  };
  await Promise.all(Array.from({ length: appenders }, appender));
  const elapsed = (performance.now() - startedAt) / 1000;
  const fsyncs = counting.datasyncs() - fsyncsAtStart;
  await log.close();
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  return { appenders, appendsPerSecond: appends / elapsed, fsyncsPerSecond: fsyncs / elapsed, p50Ms: pct(0.5), p99Ms: pct(0.99) };
}

/**
 * One appender against the raw loop, in alternating slices of the same length, so that a shared disk's
 * drift hits both alike: the fairest reading of "one appender vs the raw fdatasync rate".
 */
async function interleaved(dir: string): Promise<{ raw: number; wal: number; rawSync: number }> {
  const sliceMs = 200;
  const slices = Math.max(3, Math.round((seconds * 1000) / sliceMs));
  const counting = countingFileSystem();
  const log = await openStorage({ dir: join(dir, "wal"), fs: counting.fs, logger: silentLogger });
  while (counting.preparedSegments() < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  const path = join(dir, "raw.dat");
  const fileBytes = 64 * 1024 * 1024;
  const fd = fs.openSync(path, "w+");
  const zeros = Buffer.alloc(1 << 20);
  for (let at = 0; at < fileBytes; at += zeros.length) fs.writeSync(fd, zeros, 0, zeros.length, at);
  fs.fsyncSync(fd);
  const buf = Buffer.alloc(entryBytes, 7);
  const datasync = (): Promise<void> => new Promise((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())));
  let rawOps = 0;
  let rawSyncOps = 0;
  let walOps = 0;
  let next = 1;
  try {
    await new Promise((resolve) => setTimeout(resolve, warmupMs));
    for (let slice = 0; slice < slices; slice++) {
      let end = performance.now() + sliceMs;
      while (performance.now() < end) {
        fs.writeSync(fd, buf, 0, buf.length, (rawOps++ * entryBytes) % fileBytes);
        await datasync();
      }
      end = performance.now() + sliceMs;
      while (performance.now() < end) {
        fs.writeSync(fd, buf, 0, buf.length, (rawSyncOps++ * entryBytes) % fileBytes);
        fs.fdatasyncSync(fd);
      }
      end = performance.now() + sliceMs;
      while (performance.now() < end) {
        await log.save(undefined, [entry(next++)]);
        walOps++;
      }
    }
  } finally {
    fs.closeSync(fd);
    fs.unlinkSync(path);
    await log.close();
  }
  const total = (slices * sliceMs) / 1000;
  return { raw: rawOps / total, rawSync: rawSyncOps / total, wal: walOps / total };
}

async function writeReplayLog(dir: string): Promise<{ writeMs: number; walBytes: number }> {
  const log = await openStorage({ dir, logger: silentLogger });
  const batch = 1000;
  const t0 = performance.now();
  for (let from = 1; from <= replayEntries; from += batch) {
    const entries: Entry[] = [];
    for (let i = from; i < Math.min(from + batch, replayEntries + 1); i++) entries.push(entry(i));
    await log.save({ term: 1, vote: 1, commit: from - 1 }, entries);
  }
  const writeMs = performance.now() - t0;
  await log.close();
  let walBytes = 0;
  for (const name of fs.readdirSync(join(dir, "wal"))) walBytes += fs.statSync(join(dir, "wal", name)).size;
  return { writeMs, walBytes };
}

/** In the child process: open the log, print wall and CPU milliseconds as JSON. */
async function replayChild(dir: string): Promise<void> {
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const log = await openStorage({ dir, logger: silentLogger });
  const wallMs = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  if (log.lastIndex() !== replayEntries) throw new Error(`replay recovered ${log.lastIndex()} entries, not ${replayEntries}`);
  console.log(JSON.stringify({ wallMs, cpuMs: (used.user + used.system) / 1000 }));
}

function replayInChild(dir: string): { wallMs: number; cpuMs: number } {
  // Warm the page cache, as after a restart of the process (not of the machine).
  for (const name of fs.readdirSync(join(dir, "wal"))) fs.readFileSync(join(dir, "wal", name));
  const script = fileURLToPath(import.meta.url);
  const child = spawnSync(process.execPath, ["--import", "tsx", script, "--replay-child", dir], { encoding: "utf8" });
  if (child.status !== 0) throw new Error(`replay child failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split("\n").at(-1) ?? "{}") as { wallMs: number; cpuMs: number };
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(baseDir, "raftkv-bench-wal-"));
  try {
    console.log(`raftkv WAL benchmark: ${root}, ${seconds} s per measurement, ${entryBytes} B entries, node ${process.version}`);
    const layouts = ["zero-filled", "sparse (ftruncate)", "growing (append)"] as const;
    const raw = layouts.map((layout) => [layout, rawRate(root, layout)] as const);
    const rawAsync = await rawAsyncRate(root);
    table(
      "1. Raw disk: write 256 B + fdatasync in a loop",
      ["file layout", "fdatasyncs/s", "µs each"],
      [
        ...raw.map(([layout, rate]) => [layout, fmt(rate), (1e6 / rate).toFixed(0)]),
        ["zero-filled, fdatasync via thread pool", fmt(rawAsync), (1e6 / rawAsync).toFixed(0)],
      ],
    );

    const results: (WalResult & { raw: number })[] = [];
    for (const appenders of [1, 16, 64, 256]) {
      const raw = await rawAsyncRate(root);
      const dir = join(root, `wal-${appenders}`);
      results.push({ ...(await walRate(dir, appenders)), raw });
      await rm(dir, { recursive: true, force: true });
    }
    const single = results[0]?.appendsPerSecond ?? 1;
    table(
      "2. WAL, 256 B entries, each appender awaits its own save",
      [
        "appenders",
        "appends/s",
        "fdatasyncs/s",
        "entries/fdatasync",
        "x 1 appender",
        "raw (pool) just before",
        "appends % raw",
        "p50 ms",
        "p99 ms",
      ],
      results.map((r) => [
        r.appenders,
        fmt(r.appendsPerSecond),
        fmt(r.fsyncsPerSecond),
        (r.appendsPerSecond / r.fsyncsPerSecond).toFixed(1),
        (r.appendsPerSecond / single).toFixed(1),
        fmt(r.raw),
        ((100 * r.appendsPerSecond) / r.raw).toFixed(0),
        r.p50Ms.toFixed(3),
        r.p99Ms.toFixed(3),
      ]),
    );

    const ab = await interleaved(join(root, "interleaved"));
    table(
      "2b. One appender against the raw loop, in alternating 200 ms slices (same disk conditions for all three)",
      ["raw, fdatasync via thread pool", "raw, fdatasync blocking the loop", "WAL, 1 appender", "WAL % raw (pool)", "WAL % raw (blocking)"],
      [[fmt(ab.raw), fmt(ab.rawSync), fmt(ab.wal), ((100 * ab.wal) / ab.raw).toFixed(0), ((100 * ab.wal) / ab.rawSync).toFixed(0)]],
    );

    const dir = join(root, "replay");
    const written = await writeReplayLog(dir);
    const replays = [replayInChild(dir), replayInChild(dir), replayInChild(dir)];
    table(
      `3. Replay: open a log of ${fmt(replayEntries)} entries of ${entryBytes} B in a fresh process (3 runs)`,
      ["WAL on disk", "write (batches of 1000)", "open wall ms", "open CPU ms", "entries/s (wall)"],
      replays.map((r) => [
        `${(written.walBytes / 2 ** 20).toFixed(0)} MiB`,
        `${fmt(written.writeMs)} ms`,
        fmt(r.wallMs),
        fmt(r.cpuMs),
        fmt(replayEntries / (r.wallMs / 1000)),
      ]),
    );
    console.log(
      "\nGoals (issue 3): 1 appender >= 90% of raw; 64 appenders >= 30 entries/fdatasync and >= 20x 1 appender; replay of 1M < 2 s.",
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--replay-child") await replayChild(process.argv[3] ?? "");
else await main();
