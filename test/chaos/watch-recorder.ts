import { EventType, type WatchResponse } from "../../gen/raftkv/v1/kv_pb.js";
import { createRaftkvClient, type RaftkvClient } from "../../src/rpc/client/index.js";
import type { WatchRecord } from "./history.js";
import { describeError } from "./workload.js";

/**
 * Watch histories for the exactly-once and replica checkers.
 *
 * `WatchRecorder` follows the workload's prefix from before the first write to the end of the run
 * through the bundled client (which resumes on another node after a failure), so it sees every change
 * even when the store's bounded watch history has long dropped the early ones. `replayHistory` asks one
 * node, after healing, for its whole history from revision 1.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Most events one recorder keeps; a run that writes more is far outside what the checkers can judge. */
export const watchEventsMax = 2_000_000;

export function toRecords(message: WatchResponse): WatchRecord[] {
  if (message.kind.case !== "events") return [];
  return message.kind.value.events.map((event) => ({
    revision: Number(event.kv?.modRevision ?? 0n),
    type: event.type === EventType.DELETE ? "delete" : "put",
    key: decoder.decode(event.kv?.key ?? new Uint8Array()),
    value: event.type === EventType.DELETE ? null : decoder.decode(event.kv?.value ?? new Uint8Array()),
  }));
}

export type WatchEnd =
  | { readonly kind: "running" }
  | { readonly kind: "stopped" }
  | { readonly kind: "compacted"; readonly compactRevision: number }
  | { readonly kind: "failed"; readonly error: string };

export class WatchRecorder {
  readonly events: WatchRecord[] = [];
  end: WatchEnd = { kind: "running" };
  private readonly abort = new AbortController();
  private readonly client: RaftkvClient;
  private done: Promise<void> = Promise.resolve();

  constructor(endpoints: readonly string[], attemptsMax: number) {
    this.client = createRaftkvClient({ endpoints, attemptsMax, backoffMinMs: 50, backoffMaxMs: 500 });
  }

  /** Starts watching `prefix` from revision `startRevision` (1 on a fresh cluster). */
  start(prefix: string, startRevision: number): void {
    this.done = (async () => {
      try {
        const stream = this.client.watch(
          { key: encoder.encode(prefix), prefix: true, startRevision: BigInt(startRevision) },
          { signal: this.abort.signal },
        );
        for await (const message of stream) {
          if (message.kind.case === "compacted") {
            this.end = { kind: "compacted", compactRevision: Number(message.kind.value.compactRevision) };
            return;
          }
          for (const record of toRecords(message)) {
            if (this.events.length >= watchEventsMax) {
              this.end = { kind: "failed", error: `more than ${watchEventsMax} events` };
              return;
            }
            this.events.push(record);
          }
        }
        if (this.end.kind === "running") this.end = { kind: "stopped" };
      } catch (error) {
        this.end = this.abort.signal.aborted ? { kind: "stopped" } : { kind: "failed", error: describeError(error) };
      }
    })();
  }

  /** The highest revision seen so far (0 before any). */
  get lastRevision(): number {
    return this.events.reduce((max, e) => Math.max(max, e.revision), 0);
  }

  /** Waits (bounded) until revision `revision` was delivered, then stops. */
  async stopAfter(revision: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.lastRevision < revision && this.end.kind === "running" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.abort.abort();
    await this.done;
    this.client.close();
  }
}

export type ReplayResult =
  | { readonly kind: "ok"; readonly events: readonly WatchRecord[] }
  | { readonly kind: "compacted"; readonly compactRevision: number }
  | { readonly kind: "failed"; readonly error: string };

/** One node's history of `prefix` from revision 1 through `upToRevision`, asked of that node only. */
export async function replayHistory(endpoint: string, prefix: string, upToRevision: number, timeoutMs: number): Promise<ReplayResult> {
  if (upToRevision === 0) return { kind: "ok", events: [] };
  const client = createRaftkvClient({ endpoints: [endpoint], attemptsMax: 5 });
  const events: WatchRecord[] = [];
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    for await (const message of client.watch({ key: encoder.encode(prefix), prefix: true, startRevision: 1n }, { signal })) {
      if (message.kind.case === "compacted") return { kind: "compacted", compactRevision: Number(message.kind.value.compactRevision) };
      let reached = false;
      for (const record of toRecords(message)) {
        reached ||= record.revision >= upToRevision;
        if (record.revision > upToRevision) continue;
        if (events.length >= watchEventsMax) return { kind: "failed", error: `more than ${watchEventsMax} events` };
        events.push(record);
      }
      // Each revision of this workload holds exactly one event (no multi-key transactions), so the
      // history is whole once a message reaches the last revision.
      if (reached) return { kind: "ok", events };
    }
    return {
      kind: "failed",
      error: signal.aborted ? `timed out after ${timeoutMs} ms before revision ${upToRevision}` : "the watch ended early",
    };
  } catch (error) {
    return { kind: "failed", error: describeError(error) };
  } finally {
    client.close();
  }
}
