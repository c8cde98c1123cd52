import { setTimeout as sleep } from "node:timers/promises";
import type { Endpoint, KvSystem } from "./systems.js";
import { errorCode } from "./systems.js";

/** A closed-loop load of one cell, and what the servers report around its measured window. */

export type Workload = "put" | "get" | "mixed";
export const workloads: readonly Workload[] = ["put", "get", "mixed"];

/** Share of puts in the mixed workload (90% linearizable gets, 10% puts). */
const mixedPutShare = 0.1;
/** A failed call waits this long before the next: a refused connection must not become a busy loop. */
const errorPauseMs = 10;

export interface LoadSpec {
  readonly system: KvSystem;
  readonly leader: Endpoint;
  readonly workload: Workload;
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly keys: readonly Buffer[];
  readonly value: Buffer;
}

export interface LoadResult {
  /** Calls started and finished inside the measured window. */
  readonly ops: number;
  readonly elapsedMs: number;
  /** Sorted ascending. */
  readonly latenciesMs: Float64Array;
  readonly errors: number;
  /** Error count by gRPC code, with the first message of each. */
  readonly errorsByCode: Record<string, { count: number; first: string }>;
  /** Gets that found no value (the preload should have written every key). */
  readonly misses: number;
}

/**
 * Runs `concurrency` workers, each one call at a time against the leader, for warmup + measure.
 * `atWindow` is called right at the start and at the end of the measured window (for CPU and
 * metrics snapshots); only calls that start and finish inside the window count.
 */
export async function runLoad<T>(
  spec: LoadSpec,
  atWindow: (edge: "start" | "end") => Promise<T>,
): Promise<{ result: LoadResult; before: T; after: T }> {
  let phase: "warmup" | "measure" | "stopped" = "warmup";
  const latencies: number[] = [];
  const errorsByCode: Record<string, { count: number; first: string }> = {};
  let errors = 0;
  let misses = 0;
  const { system, leader, keys, value } = spec;
  const worker = async (index: number): Promise<void> => {
    const client = leader.clients[index % leader.clients.length] ?? leader.first;
    while (phase !== "stopped") {
      const put = spec.workload === "put" || (spec.workload === "mixed" && Math.random() < mixedPutShare);
      const key = keys[Math.floor(Math.random() * keys.length)] ?? keys[0];
      if (key === undefined) throw new Error("no keys");
      const counted = phase === "measure";
      const started = performance.now();
      try {
        let found = true;
        if (put) await system.put(client, key, value);
        else found = await system.get(client, key);
        if (counted && phase === "measure") {
          latencies.push(performance.now() - started);
          if (!found) misses++;
        }
      } catch (error) {
        if (counted && phase === "measure") {
          errors++;
          const code = errorCode(error);
          const entry = (errorsByCode[code] ??= { count: 0, first: error instanceof Error ? error.message : String(error) });
          entry.count++;
        }
        await sleep(errorPauseMs);
      }
    }
  };
  const running = Array.from({ length: spec.concurrency }, (_, i) => worker(i));
  await sleep(spec.warmupMs);
  const before = await atWindow("start");
  phase = "measure";
  const started = performance.now();
  await sleep(spec.measureMs);
  phase = "stopped";
  const elapsedMs = performance.now() - started;
  const after = await atWindow("end");
  await Promise.all(running);
  return {
    result: { ops: latencies.length, elapsedMs, latenciesMs: Float64Array.from(latencies).sort(), errors, errorsByCode, misses },
    before,
    after,
  };
}

/** The q-quantile of sorted values (nearest rank), or NaN when there are none. */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

/** Writes `keys` once with `concurrency` calls in flight, so that every get finds a value. */
export async function preload(
  system: KvSystem,
  leader: Endpoint,
  keys: readonly Buffer[],
  value: Buffer,
  concurrency: number,
): Promise<void> {
  let next = 0;
  const worker = async (index: number): Promise<void> => {
    const client = leader.clients[index % leader.clients.length] ?? leader.first;
    for (let i = next++; i < keys.length; i = next++) {
      const key = keys[i];
      if (key === undefined) continue;
      // One retry: a preload that loses a key only shows up as "misses" later, so try hard, then say so.
      await system.put(client, key, value).catch(() => system.put(client, key, value));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
}

/** Sums of every sample of each metric name (labels ignored) in a Prometheus text exposition. */
export function parsePrometheus(text: string): Map<string, number> {
  const sums = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match === null) continue;
    const [, name, raw] = match;
    const value = Number(raw);
    if (name !== undefined && Number.isFinite(value)) sums.set(name, (sums.get(name) ?? 0) + value);
  }
  return sums;
}

/** GET /metrics of each endpoint (HTTP/1.1 on the client port, both systems); undefined where it fails. */
export async function scrapeAll(endpoints: readonly Endpoint[]): Promise<(Map<string, number> | undefined)[]> {
  return Promise.all(
    endpoints.map(async (endpoint) => {
      try {
        const response = await fetch(new URL("/metrics", endpoint.url), { signal: AbortSignal.timeout(5_000) });
        return response.ok ? parsePrometheus(await response.text()) : undefined;
      } catch {
        return undefined;
      }
    }),
  );
}

/** Σ over nodes of after − before of one metric; undefined when any node lacks it. */
export function delta(
  before: readonly (Map<string, number> | undefined)[],
  after: readonly (Map<string, number> | undefined)[],
  name: string,
): number | undefined {
  let total = 0;
  for (let i = 0; i < before.length; i++) {
    const b = before[i]?.get(name);
    const a = after[i]?.get(name);
    if (a === undefined || b === undefined) return undefined;
    total += a - b;
  }
  return before.length === 0 ? undefined : total;
}
