/**
 * npm run bench:snapshot-codec [-- KEYS [VALUE_BYTES]] — the key-value store's snapshot path in one
 * process, without Raft or a network: fill a store with KEYS keys (default 100,000) of VALUE_BYTES
 * (default 1024), then
 *  - take a snapshot's view (snapshotChunks) and encode it chunk by chunk: the time to take the view, the
 *    slowest chunk, the whole encoding;
 *  - the driver's path (src/driver/node.ts writeSnapshot: a chunk per event-loop turn, joined a MiB a
 *    turn, written to a file) with a 1 ms timer running: the event loop's longest delay meanwhile
 *    (perf_hooks.monitorEventLoopDelay), the stall a node's clients would see;
 *  - restore the encoded snapshot into a new store, three times (install and restart do this).
 * Prints numbers and asserts nothing; run with `node --trace-gc` (NODE_OPTIONS) to see the collector's
 * pauses beside them.
 */
import { rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setImmediate as nextTurn } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { CommandSchema } from "../gen/raftkv/v1/command_pb.js";
import { createKvStore, type KvStore } from "../src/kv/index.js";

const keys = Number(process.argv[2] ?? 100_000);
const valueBytes = Number(process.argv[3] ?? 1024);
if (!Number.isSafeInteger(keys) || keys < 1 || !Number.isSafeInteger(valueBytes) || valueBytes < 0) {
  process.stderr.write("usage: npm run bench:snapshot-codec -- [KEYS [VALUE_BYTES]]\n");
  process.exit(2);
}
const ms = (n: number): string => `${n.toFixed(1)} ms`;

function filledStore(): KvStore {
  const store = createKvStore();
  const value = new Uint8Array(valueBytes).fill(7);
  const encoder = new TextEncoder();
  for (let i = 0; i < keys; i++) {
    const command = create(CommandSchema, { op: { case: "put", value: { key: encoder.encode(`key-${i}`), value } } });
    store.apply(i + 1, toBinary(CommandSchema, command));
  }
  return store;
}

function encodeTimed(store: KvStore): { bytes: Uint8Array; viewMs: number; slowestChunkMs: number; totalMs: number; chunks: number } {
  const started = performance.now();
  const chunks = store.snapshotChunks();
  const viewMs = performance.now() - started;
  const parts: Uint8Array[] = [];
  let slowestChunkMs = 0;
  const iterator = chunks[Symbol.iterator]();
  for (;;) {
    const before = performance.now();
    const next = iterator.next();
    slowestChunkMs = Math.max(slowestChunkMs, performance.now() - before);
    if (next.done === true) break;
    parts.push(next.value);
  }
  const totalMs = performance.now() - started;
  return { bytes: new Uint8Array(Buffer.concat(parts)), viewMs, slowestChunkMs, totalMs, chunks: parts.length };
}

/** The driver's snapshot path with a timer running; the event loop's longest delay meanwhile. */
async function driverPathStall(store: KvStore, file: string): Promise<{ maxMs: number; p99Ms: number; totalMs: number }> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const ticker = setInterval(() => {}, 1);
  await new Promise((resolve) => setTimeout(resolve, 200));
  delay.enable();
  const started = performance.now();
  const parts: Uint8Array[] = [];
  const chunks = store.snapshotChunks();
  try {
    for (const chunk of chunks) {
      parts.push(chunk);
      await nextTurn();
    }
  } finally {
    chunks.close();
  }
  const joined = Buffer.allocUnsafeSlow(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  let sinceTurn = 0;
  for (const part of parts.splice(0)) {
    joined.set(part, offset);
    offset += part.byteLength;
    sinceTurn += part.byteLength;
    if (sinceTurn >= 1 << 20) {
      sinceTurn = 0;
      await nextTurn();
    }
  }
  await writeFile(file, joined);
  const totalMs = performance.now() - started;
  await new Promise((resolve) => setTimeout(resolve, 500));
  delay.disable();
  clearInterval(ticker);
  return { maxMs: delay.max / 1e6, p99Ms: delay.percentile(99) / 1e6, totalMs };
}

const store = filledStore();
const encoded = encodeTimed(store);
process.stdout.write(
  `snapshot of ${keys.toLocaleString("en")} keys x ${valueBytes} B: ${(encoded.bytes.byteLength / 1e6).toFixed(0)} MB in ${encoded.chunks} chunks; ` +
    `view taken in ${ms(encoded.viewMs)}, slowest chunk ${ms(encoded.slowestChunkMs)}, whole encoding ${ms(encoded.totalMs)}\n`,
);
const file = join(tmpdir(), `raftkv-bench-snapshot-${process.pid}`);
try {
  const stall = await driverPathStall(store, file);
  process.stdout.write(
    `driver's path (chunk a turn, joined a MiB a turn, written): ${ms(stall.totalMs)}; event-loop delay max ${ms(stall.maxMs)}, p99 ${ms(stall.p99Ms)}\n`,
  );
} finally {
  rmSync(file, { force: true });
}
for (let round = 1; round <= 3; round++) {
  const target = createKvStore();
  const started = performance.now();
  target.restore(encoded.bytes);
  process.stdout.write(
    `restore ${round}: ${ms(performance.now() - started)} (${target.keyCount.toLocaleString("en")} keys), RSS ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB\n`,
  );
}
