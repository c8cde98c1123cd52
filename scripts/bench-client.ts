/**
 * `npm run bench:client`: write and read throughput and latency through the bundled client against a
 * running cluster (start one with `npm start`). Prints numbers; asserts nothing.
 *
 *   RAFTKV_ENDPOINTS   client URLs (default: the npm start cluster)
 *   BENCH_SECONDS      duration of each phase (default 5)
 *   BENCH_CONCURRENCY  requests in flight (default 32)
 *   BENCH_VALUE_BYTES  value size (default 256)
 *   BENCH_PROTOCOL     grpc | connect | grpc-web (default grpc)
 */
import { createRaftkvClient, type ClientProtocol } from "../src/rpc/client/index.js";
import { defaultEndpoints } from "../src/cli/index.js";

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const valueBytes = Number(process.env.BENCH_VALUE_BYTES ?? 256);
const protocol = (process.env.BENCH_PROTOCOL ?? "grpc") as ClientProtocol;
const endpoints = process.env.RAFTKV_ENDPOINTS?.split(",") ?? defaultEndpoints;
/** Distinct keys written; reads pick among them. */
const keysMax = 10_000;

const client = createRaftkvClient({ endpoints, protocol, sessionsMax: concurrency });
const value = new Uint8Array(valueBytes).fill(120);
const key = (i: number): Uint8Array => new TextEncoder().encode(`bench/${String(i % keysMax).padStart(5, "0")}`);

async function phase(name: string, op: (i: number) => Promise<unknown>): Promise<void> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const i = next++;
        const started = performance.now();
        try {
          await op(i);
          latencies.push(performance.now() - started);
        } catch {
          errors++;
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number): string => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0).toFixed(1);
  console.log(
    `${name.padEnd(22)} ${(latencies.length / seconds).toFixed(0).padStart(7)} ops/s   p50 ${at(0.5)} ms   p99 ${at(0.99)} ms   max ${at(1)} ms   errors ${errors}`,
  );
}

console.log(
  `raftkv client bench: ${endpoints.join(",")} ${protocol}, ${concurrency} in flight, ${valueBytes}-byte values, ${seconds} s per phase`,
);
await phase("put", (i) => client.put({ key: key(i), value }));
await phase("get (linearizable)", (i) => client.get({ key: key(i) }));
await phase("get (serializable)", (i) => client.get({ key: key(i), serializable: true }));
client.close();
