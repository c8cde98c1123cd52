import { performance } from "node:perf_hooks";
import { CompareResult, CompareTarget } from "../../gen/raftkv/v1/kv_pb.js";
import { assert } from "../../src/lib/assert.js";
import { createPrng, type Prng } from "../../src/lib/prng.js";
import { RaftkvCallError, createRaftkvClient, type RaftkvClient } from "../../src/rpc/client/index.js";
import type { ChaosOp, ChaosOutcome, ChaosOutput, OpKind } from "./history.js";

/**
 * The client side of a chaos run: `workers` concurrent logical clients, each doing one operation at a
 * time (put / linearizable get / delete / compare-and-swap) on a small set of keys, recording every
 * operation with its invocation and completion time and its outcome.
 *
 * - Every put and CAS writes a value never written before (`w<worker>.<n>`), which is what lets the
 *   checkers tell writes apart.
 * - Every mutation carries the worker's exactly-once session (client id, sequence). A call whose outcome
 *   is unknown is retried with the same session after a pause (up to `retriesMax` times), so the store's
 *   deduplication is exercised for real: if it fails, the value shows up twice in the watch history.
 * - Keys rotate: after `opsPerKeyMax` operations a key slot moves to a fresh key. Linearizability search
 *   is exponential in the ops that overlap on one key, so bounded per-key histories keep it tractable
 *   (Jepsen's "independent keys"), while at any moment only `keys` keys are hot, so ops still contend.
 * - Reads go either to the client that follows the leader or to a client pinned to the worker's home
 *   node, so that a node coming back from a pause or a partition gets reads while it may still believe
 *   it leads: exactly when a stale read would happen.
 */
export interface WorkloadOptions {
  readonly seed: number;
  readonly endpoints: readonly string[];
  readonly workers: number;
  /** Hot keys at any moment. */
  readonly keys: number;
  readonly opsPerKeyMax: number;
  /** Key prefix; the watch covers it. */
  readonly prefix: string;
  /** The budget of one call, across the client's own attempts. */
  readonly callTimeoutMs: number;
  /** One attempt on one node. */
  readonly attemptTimeoutMs: number;
  /** Retries of a mutation with an unknown outcome, with the same session. */
  readonly retriesMax: number;
  /** Pause between those retries. */
  readonly retryPauseMs: number;
  /** Most ops one worker starts, a bound on top of the time limit. */
  readonly opsPerWorkerMax: number;
  /** Share of reads sent to the worker's home node only. */
  readonly pinnedReadShare: number;
  /** Think time between a worker's ops, drawn from 0..thinkMsMax. */
  readonly thinkMsMax: number;
}

export const defaultWorkload = {
  workers: 8,
  keys: 4,
  opsPerKeyMax: 120,
  prefix: "chaos/",
  callTimeoutMs: 2500,
  attemptTimeoutMs: 1000,
  retriesMax: 2,
  retryPauseMs: 300,
  opsPerWorkerMax: 100_000,
  pinnedReadShare: 0.5,
  thinkMsMax: 10,
} as const;

/** Microseconds on one monotonic clock for the whole run. */
export class RunClock {
  private readonly origin = performance.now();

  nowUs(): number {
    return (performance.now() - this.origin) * 1000;
  }

  nowMs(): number {
    return performance.now() - this.origin;
  }
}

/** The hot key slots and their rotation. */
export class KeySpace {
  private readonly generations: number[];
  private readonly counts: number[];
  private readonly used = new Set<string>();

  constructor(
    private readonly prefix: string,
    slots: number,
    private readonly opsPerKeyMax: number,
  ) {
    assert(slots >= 1 && opsPerKeyMax >= 1, "key space: needs a slot and a positive op budget per key");
    this.generations = new Array<number>(slots).fill(0);
    this.counts = new Array<number>(slots).fill(0);
  }

  /** A hot key for the next op, counting the op against the key's budget. */
  take(prng: Prng): string {
    const slot = prng.int(0, this.generations.length - 1);
    const key = `${this.prefix}k${slot}.${this.generations[slot] ?? 0}`;
    this.used.add(key);
    const count = (this.counts[slot] ?? 0) + 1;
    if (count >= this.opsPerKeyMax) {
      this.generations[slot] = (this.generations[slot] ?? 0) + 1;
      this.counts[slot] = 0;
    } else {
      this.counts[slot] = count;
    }
    return key;
  }

  /** A key outside the rotation (the harness's probes), counted as used. */
  extra(name: string): string {
    const key = `${this.prefix}${name}`;
    this.used.add(key);
    return key;
  }

  /** Every key any op used, sorted. */
  keys(): string[] {
    return [...this.used].sort();
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Op mix: reads are the cheapest way to catch stale state; CAS exercises read-modify-write. */
const opWeights: readonly [OpKind, number][] = [
  ["get", 40],
  ["put", 25],
  ["cas", 25],
  ["delete", 10],
];

function drawKind(prng: Prng): OpKind {
  let roll = prng.int(
    1,
    opWeights.reduce((sum, [, w]) => sum + w, 0),
  );
  for (const [kind, weight] of opWeights) {
    roll -= weight;
    if (roll <= 0) return kind;
  }
  return "get";
}

export class Workload {
  readonly ops: ChaosOp[] = [];
  readonly keySpace: KeySpace;
  private nextOpId = 1;
  private stopping = false;
  private readonly clients: RaftkvClient[] = [];
  private readonly harnessClients = new Map<string, RaftkvClient>();
  private harnessSequence = 0;

  constructor(
    private readonly o: WorkloadOptions,
    private readonly clock: RunClock,
  ) {
    assert(o.endpoints.length >= 1 && o.workers >= 1, "workload: needs endpoints and workers");
    this.keySpace = new KeySpace(o.prefix, o.keys, o.opsPerKeyMax);
  }

  /** Runs every worker until `stop()` or `durationMs`; resolves when the last op has an outcome. */
  async run(durationMs: number): Promise<void> {
    const root = createPrng(this.o.seed ^ 0x776f726b);
    const endAt = this.clock.nowMs() + durationMs;
    const workers = Array.from({ length: this.o.workers }, (_, i) => this.worker(i + 1, root.fork(), endAt));
    await Promise.all(workers);
  }

  /**
   * The harness's own write (recovery probes), on a key of the prefix so that the checkers judge it like
   * any other op. Each probe starts at the given client URL (a client per URL, following redirects from
   * there), so that one hung node cannot stall every probe; the URL need not be one of the workload's
   * endpoints (a node that joined the cluster). True when it was acknowledged.
   */
  async probeWrite(worker: number, value: string, endpoint: string): Promise<boolean> {
    const key = this.keySpace.extra("probe");
    let client = this.harnessClients.get(endpoint);
    if (client === undefined) {
      client = this.client([endpoint], "chaos-harness");
      this.harnessClients.set(endpoint, client);
    }
    const probe = client;
    const session = { clientId: "chaos-harness", sequence: BigInt(++this.harnessSequence) };
    const output = await this.record(
      { worker, kind: "put", key, value, endpoint, clientId: session.clientId, sequence: Number(session.sequence) },
      (signal) =>
        probe
          .put({ key: encoder.encode(key), value: encoder.encode(value), ...session }, { signal })
          .then((r): ChaosOutput => ({ kind: "put", revision: Number(r.header?.revision ?? 0n) })),
    );
    return output !== undefined;
  }

  /** Records the final read of every key (one linearizable Range) as one get per key. */
  recordFinalReads(
    worker: number,
    values: ReadonlyMap<string, string | null>,
    callUs: number,
    endUs: number,
    revision: number,
    endpoint: string,
  ): void {
    for (const [key, value] of [...values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      this.ops.push({
        id: this.nextOpId++,
        worker,
        kind: "get",
        key,
        callUs,
        endUs,
        outcome: { status: "ok", output: { kind: "get", value, revision } },
        attempts: 1,
        endpoint,
      });
    }
  }

  /** Asks workers to finish their current op and start no more (and no more retries). */
  stop(): void {
    this.stopping = true;
  }

  close(): void {
    for (const client of this.clients) client.close();
    this.clients.length = 0;
  }

  private client(endpoints: readonly string[], clientId: string, attemptTimeoutMs = this.o.attemptTimeoutMs): RaftkvClient {
    const client = createRaftkvClient({
      endpoints,
      timeoutMs: this.o.callTimeoutMs,
      attemptTimeoutMs,
      clientId,
      backoffMinMs: 20,
      backoffMaxMs: 250,
    });
    this.clients.push(client);
    return client;
  }

  private async worker(index: number, prng: Prng, endAt: number): Promise<void> {
    const endpoints = this.o.endpoints;
    const homeIndex = (index - 1) % endpoints.length;
    const home = endpoints[homeIndex] ?? "";
    // The leader-following client starts at the home node, so load spreads before the first redirect.
    const follow = this.client([...endpoints.slice(homeIndex), ...endpoints.slice(0, homeIndex)], `chaos-w${index}`);
    // A pinned read waits the whole call budget on its one node, so that reads sent to a paused or cut
    // off node are still waiting when it wakes up, believing it leads: the moment a stale read happens.
    const pinned = this.client([home], `chaos-w${index}-pinned`, this.o.callTimeoutMs);
    const lastSeen = new Map<string, string | null>();
    let sequence = 0;
    let written = 0;
    for (let n = 0; n < this.o.opsPerWorkerMax && !this.stopping && this.clock.nowMs() < endAt; n++) {
      const kind = drawKind(prng);
      const key = this.keySpace.take(prng);
      if (kind === "get") {
        const usePinned = prng.chance(this.o.pinnedReadShare);
        const output = await this.record({ worker: index, kind, key, endpoint: usePinned ? home : follow.endpoint }, (signal) =>
          (usePinned ? pinned : follow).get({ key: encoder.encode(key) }, { signal }).then((r): ChaosOutput => ({
            kind: "get",
            value: r.kv === undefined ? null : decoder.decode(r.kv.value),
            revision: Number(r.header?.revision ?? 0n),
          })),
        );
        if (output?.kind === "get") lastSeen.set(key, output.value);
      } else {
        sequence++;
        const session = { clientId: `chaos-w${index}`, sequence: BigInt(sequence) };
        const base = { worker: index, kind, key, endpoint: follow.endpoint, clientId: session.clientId, sequence };
        if (kind === "put") {
          const value = `w${index}.${++written}`;
          const output = await this.record({ ...base, value }, (signal) =>
            follow
              .put({ key: encoder.encode(key), value: encoder.encode(value), ...session }, { signal })
              .then((r): ChaosOutput => ({ kind: "put", revision: Number(r.header?.revision ?? 0n) })),
          );
          if (output !== undefined) lastSeen.set(key, value);
        } else if (kind === "delete") {
          const output = await this.record(base, (signal) =>
            follow
              .delete({ key: encoder.encode(key), ...session }, { signal })
              .then((r): ChaosOutput => ({ kind: "delete", deleted: Number(r.deleted), revision: Number(r.header?.revision ?? 0n) })),
          );
          if (output !== undefined) lastSeen.set(key, null);
        } else {
          const value = `w${index}.${++written}`;
          const expected = lastSeen.has(key) ? (lastSeen.get(key) ?? null) : null;
          const compare =
            expected === null
              ? { key: encoder.encode(key), target: CompareTarget.VERSION, result: CompareResult.EQUAL, number: 0n }
              : { key: encoder.encode(key), target: CompareTarget.VALUE, result: CompareResult.EQUAL, value: encoder.encode(expected) };
          const output = await this.record({ ...base, value, expected }, (signal) =>
            follow
              .txn(
                {
                  compare: [compare],
                  success: [{ request: { case: "put", value: { key: encoder.encode(key), value: encoder.encode(value) } } }],
                  ...session,
                },
                { signal },
              )
              .then((r): ChaosOutput => ({ kind: "cas", swapped: r.succeeded, revision: Number(r.header?.revision ?? 0n) })),
          );
          if (output?.kind === "cas" && output.swapped) lastSeen.set(key, value);
        }
      }
      if (this.o.thinkMsMax > 0) await sleep(prng.int(0, this.o.thinkMsMax));
    }
  }

  /**
   * Runs one op to an outcome and records it. A mutation whose call ended with an unknown outcome is
   * called again with the same session (client id, sequence): exactly-once makes that safe, and the
   * first result wins. Returns the output when ok.
   */
  private async record(
    op: Omit<ChaosOp, "id" | "callUs" | "endUs" | "outcome" | "attempts">,
    call: (signal: AbortSignal) => Promise<ChaosOutput>,
  ): Promise<ChaosOutput | undefined> {
    const id = this.nextOpId++;
    const callUs = this.clock.nowUs();
    let attempts = 0;
    let unknownReason: string | undefined;
    let outcome: ChaosOutcome | undefined;
    for (let retry = 0; retry <= this.o.retriesMax; retry++) {
      if (retry > 0) {
        if (this.stopping) break;
        await sleep(this.o.retryPauseMs);
      }
      attempts++;
      try {
        outcome = { status: "ok", output: await call(AbortSignal.timeout(this.o.callTimeoutMs + 1000)) };
        break;
      } catch (error) {
        const reason = describeError(error);
        // A read has no effect, so a failed read is simply failed. A mutation is failed only when no
        // call of it may have been applied: every call must have been refused before proposing.
        const mayHaveApplied = op.kind !== "get" && (!(error instanceof RaftkvCallError) || error.outcomeUnknown);
        if (!mayHaveApplied && unknownReason === undefined) {
          outcome = { status: "fail", reason };
          break;
        }
        unknownReason = mayHaveApplied ? reason : `${unknownReason ?? ""}; then ${reason}`;
      }
    }
    outcome ??= { status: "unknown", reason: unknownReason ?? "no answer" };
    this.ops.push({ ...op, id, callUs, endUs: this.clock.nowUs(), outcome, attempts });
    return outcome.status === "ok" ? outcome.output : undefined;
  }
}

/** A short, stable description of a failed call: the server's reason or the Connect code, and the message. */
export function describeError(error: unknown): string {
  if (error instanceof RaftkvCallError) return `${error.reason ?? `code ${error.code}`}: ${error.message}`.slice(0, 200);
  return (error instanceof Error ? `${error.name}: ${error.message}` : String(error)).slice(0, 200);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
