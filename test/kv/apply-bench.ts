/**
 * Throughput of the state machine alone, no Raft, no I/O. Prints numbers, asserts nothing, and is not
 * part of `npm test`. Run: npx tsx test/kv/apply-bench.ts [keys=100000]
 */
import { create } from "@bufbuild/protobuf";
import { CompareResult, CompareTarget, RangeRequestSchema } from "../../gen/raftkv/v1/kv_pb.js";
import { createKvStore, encodeCommand } from "../../src/kv/index.js";

const keys = Number(process.argv[2] ?? 100_000);
const utf8 = new TextEncoder();
const key = (i: number) => utf8.encode(`bench/${String(i).padStart(8, "0")}`);
const value = utf8.encode("x".repeat(100));

function measure(label: string, count: number, run: (i: number) => void): void {
  const start = performance.now();
  for (let i = 0; i < count; i++) run(i);
  const ms = performance.now() - start;
  console.log(
    `${label.padEnd(44)} ${count.toString().padStart(7)} ops  ${ms.toFixed(0).padStart(6)} ms  ${Math.round((count / ms) * 1000)
      .toString()
      .padStart(8)} ops/s`,
  );
}

const store = createKvStore();
const puts = Array.from({ length: keys }, (_, i) =>
  encodeCommand({
    clientId: `client-${i % 64}`,
    sequence: BigInt(Math.floor(i / 64) + 1),
    op: { case: "put", value: { key: key(i), value } },
  }),
);
measure("apply put (new key, 100 B value, session)", keys, (i) => store.apply(store.appliedIndex + 1, puts[i] as Uint8Array));

const updates = Array.from({ length: keys }, (_, i) =>
  encodeCommand({ op: { case: "put", value: { key: key((i * 7919) % keys), value } } }),
);
measure("apply put (existing key, no session)", keys, (i) => store.apply(store.appliedIndex + 1, updates[i] as Uint8Array));

const cas = Array.from({ length: keys / 10 }, (_, i) =>
  encodeCommand({
    op: {
      case: "txn",
      value: {
        compare: [{ key: key(i), target: CompareTarget.VERSION, result: CompareResult.GREATER, number: 0n }],
        success: [{ request: { case: "put", value: { key: key(i), value } } }],
      },
    },
  }),
);
measure("apply txn (1 compare, 1 put)", cas.length, (i) => store.apply(store.appliedIndex + 1, cas[i] as Uint8Array));

const page = create(RangeRequestSchema, { key: utf8.encode("bench/"), prefix: true, limit: 100n });
measure("range page of 100 keys", 2_000, () => store.range(page));
const countAll = create(RangeRequestSchema, { key: utf8.encode("bench/"), prefix: true, countOnly: true });
measure(`range count_only over ${keys} keys`, 2_000, () => store.range(countAll));

let chunks: Iterable<Uint8Array> = [];
measure(`snapshotChunks() capture, before encoding (${keys} keys)`, 3, () => (chunks = store.snapshotChunks()));
let chunkCount = 0;
measure(`encode all chunks (${keys} keys)`, 1, () => {
  for (const chunk of chunks) chunkCount += chunk.length > 0 ? 1 : 0;
});
console.log(`${chunkCount} chunks`);
let snapshot: Uint8Array = new Uint8Array(0);
measure(`encodeSnapshot (${keys} keys)`, 3, () => (snapshot = store.encodeSnapshot()));
const restored = createKvStore();
measure(`restore (${keys} keys)`, 3, () => restored.restore(snapshot));
console.log(
  `snapshot ${(snapshot.length / 1024 / 1024).toFixed(1)} MiB; heap used ${(process.memoryUsage().heapUsed / 1024 / 1024).toFixed(0)} MiB (two stores)`,
);
