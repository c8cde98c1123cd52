import { Code } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import { createRaftkvClient, PipelineCallError, RaftkvCallError } from "../../src/rpc/client/index.js";
import type { Cluster } from "./cluster.js";

/** The benchmark's two kinds of load: bulk Puts on a Pipeline stream, and one Put at a time. */

/** Rounds of a bulk write that may fail before it gives up (a round ends when its stream breaks). */
const roundsMax = 30;

/** The key of index i: 16 bytes, like `npm run bench`'s keys. */
export function stateKey(i: number): Uint8Array {
  return Buffer.from(`state/${String(i).padStart(10, "0")}`);
}

export interface BulkResult {
  readonly elapsedMs: number;
  /** Puts that failed and were sent again (a broken stream, a leader change, a deadline). */
  readonly retried: number;
}

/**
 * Puts keys key(0..count-1), `inflight` at a time on one Pipeline stream to the leader. A Pipeline
 * neither retries nor follows the leader, so a failed Put is sent again on a new stream to whoever
 * leads then; limits and the quota are not retried.
 */
export async function bulkPut(
  cluster: Cluster,
  count: number,
  key: (i: number) => Uint8Array,
  value: Uint8Array,
  inflight: number,
  onProgress?: (done: number, elapsedMs: number) => void,
): Promise<BulkResult> {
  const started = performance.now();
  const retry: number[] = [];
  let next = 0;
  let done = 0;
  let retried = 0;
  for (let round = 1; done < count; round++) {
    const leader = await cluster.waitForLeader();
    const client = createRaftkvClient({ endpoints: [leader.spec.clientUrl] });
    const pipeline = client.pipeline(leader.spec.clientUrl);
    let firstError: PipelineCallError | undefined;
    let fatal: Error | undefined;
    const take = (): number | undefined =>
      pipeline.ended || fatal !== undefined ? undefined : (retry.pop() ?? (next < count ? next++ : undefined));
    const worker = async (): Promise<void> => {
      for (let i = take(); i !== undefined; i = take()) {
        try {
          await pipeline.put({ key: key(i), value });
          done++;
          onProgress?.(done, performance.now() - started);
        } catch (error) {
          retry.push(i);
          retried++;
          if (!(error instanceof PipelineCallError)) throw error;
          firstError ??= error;
          const code = error.error.code;
          if (code === Code.ResourceExhausted || code === Code.InvalidArgument || code === Code.FailedPrecondition)
            fatal = new Error(`a Put was refused: ${error.message} (raise the nodes' limits or lower --sizes)`);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: inflight }, worker));
    } finally {
      await pipeline.close().catch(() => undefined);
      client.close();
    }
    if (fatal !== undefined) throw fatal;
    cluster.throwIfCrashed();
    if (done < count) {
      if (round >= roundsMax) throw new Error(`${count - done} Puts still failing after ${round} rounds: ${firstError?.message ?? "?"}`);
      process.stdout.write(`    (${retry.length} Puts to send again on a new stream: ${firstError?.message ?? "the stream ended"})\n`);
      await sleep(Math.min(2_000, 100 * round));
    }
  }
  return { elapsedMs: performance.now() - started, retried };
}

/** One Put of the one-at-a-time loop: when it started and ended (performance.now()), and whether it succeeded. */
export interface Sample {
  readonly start: number;
  readonly end: number;
  readonly ok: boolean;
}

export interface SteadyLoop {
  readonly samples: readonly Sample[];
  /** Resolves once `n` Puts have completed (successfully or not). */
  completed(n: number): Promise<void>;
  /** Stops after the Put in flight and resolves with every sample. */
  stop(): Promise<readonly Sample[]>;
  readonly errors: readonly string[];
}

/**
 * One Put in flight at a time (the bundled client's unary Put, which follows the leader), overwriting
 * random keys among `keys` so that the state keeps its size. With one request in flight, the gap
 * between two completions is the latency of the second: a stalled leader shows as one long gap.
 */
export function steadyLoop(endpoints: readonly string[], keys: number, value: Uint8Array): SteadyLoop {
  const client = createRaftkvClient({ endpoints, timeoutMs: 60_000, attemptTimeoutMs: 30_000 });
  const samples: Sample[] = [];
  const errors: string[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  let stopping = false;
  const running = (async () => {
    while (!stopping) {
      const start = performance.now();
      let ok = true;
      try {
        await client.put({ key: stateKey(Math.floor(Math.random() * keys)), value });
      } catch (error) {
        ok = false;
        if (errors.length < 5) errors.push(error instanceof RaftkvCallError ? `${Code[error.code]}: ${error.message}` : String(error));
        await sleep(10);
      }
      samples.push({ start, end: performance.now(), ok });
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i];
        if (w !== undefined && samples.length >= w.n) {
          waiters.splice(i, 1);
          w.resolve();
        }
      }
    }
  })();
  return {
    samples,
    errors,
    completed: (n) => (samples.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    async stop() {
      stopping = true;
      await running;
      client.close();
      for (const w of waiters.splice(0)) w.resolve();
      return samples;
    },
  };
}

export interface LatencyStats {
  readonly count: number;
  readonly errors: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
  /** The longest stretch inside the window with no Put completing. */
  readonly gapMaxMs: number | null;
}

/** The q-quantile (nearest rank) of sorted values. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? null;
}

/** Latency of the Puts that overlap [from, to], and the longest gap between completions inside it. */
export function latencyIn(samples: readonly Sample[], from: number, to: number): LatencyStats {
  const inside = samples.filter((s) => s.start < to && s.end > from);
  const latencies = inside
    .filter((s) => s.ok)
    .map((s) => s.end - s.start)
    .sort((a, b) => a - b);
  let gapMax: number | null = null;
  let previous = from;
  for (const s of samples) {
    if (s.end <= from || s.end > to) continue;
    gapMax = Math.max(gapMax ?? 0, s.end - previous);
    previous = s.end;
  }
  if (gapMax !== null) gapMax = Math.max(gapMax, to - previous);
  return {
    count: latencies.length,
    errors: inside.length - latencies.length,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    maxMs: latencies.at(-1) ?? null,
    gapMaxMs: gapMax,
  };
}
