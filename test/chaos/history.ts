/**
 * The client history of a chaos run: one record per operation, with when it was invoked and when its
 * outcome became known (microseconds on one monotonic clock shared by every client of the run), what it
 * asked and what it saw. Written to history.jsonl and judged by the checkers.
 */
export type OpKind = "put" | "get" | "delete" | "cas";

export type ChaosOutput =
  | { readonly kind: "put"; readonly revision: number }
  | { readonly kind: "get"; readonly value: string | null; readonly revision: number }
  | { readonly kind: "delete"; readonly deleted: number; readonly revision: number }
  | { readonly kind: "cas"; readonly swapped: boolean; readonly revision: number };

/**
 * - `ok`: took effect (a read: observed `output`) between invocation and completion;
 * - `fail`: certainly never took effect (the server said so, or it was a read);
 * - `unknown`: may take effect at any time after invocation, or never (timeout, connection lost).
 */
export type ChaosOutcome =
  | { readonly status: "ok"; readonly output: ChaosOutput }
  | { readonly status: "fail"; readonly reason: string }
  | { readonly status: "unknown"; readonly reason: string };

export interface ChaosOp {
  /** Unique in a run, in invocation order per worker. */
  readonly id: number;
  /** The worker (logical client) that ran it; -1 for the harness's own final reads and probes. */
  readonly worker: number;
  readonly kind: OpKind;
  readonly key: string;
  /** put and cas: the value written, never written by any other op of the run. */
  readonly value?: string;
  /** cas: the value it expects, or null for "the key is absent". */
  readonly expected?: string | null;
  /** Mutations: the exactly-once session, the same on every retry of this op. */
  readonly clientId?: string;
  readonly sequence?: number;
  /** Microseconds since the run's clock started. */
  readonly callUs: number;
  /** When the outcome became known (ok, fail) or the client gave up (unknown). */
  readonly endUs: number;
  readonly outcome: ChaosOutcome;
  /** Calls made for this op: 1, plus retries with the same session after an unknown outcome. */
  readonly attempts: number;
  /** The endpoint the first call went to (pinned reads go to one node). */
  readonly endpoint: string;
}

/** What happened to the ops of a history, for reports. */
export interface HistoryStats {
  readonly started: number;
  readonly ok: number;
  readonly fail: number;
  readonly unknown: number;
  /** Extra calls with the same session after an unknown outcome. */
  readonly retries: number;
}

export function historyStats(history: readonly ChaosOp[]): HistoryStats {
  let ok = 0;
  let fail = 0;
  let unknown = 0;
  let retries = 0;
  for (const op of history) {
    if (op.outcome.status === "ok") ok++;
    else if (op.outcome.status === "fail") fail++;
    else unknown++;
    retries += op.attempts - 1;
  }
  return { started: history.length, ok, fail, unknown, retries };
}

export function describeChaosOp(op: ChaosOp): string {
  const what =
    op.kind === "put"
      ? `put(${op.key}, ${op.value ?? "?"})`
      : op.kind === "get"
        ? `get(${op.key})`
        : op.kind === "delete"
          ? `delete(${op.key})`
          : `cas(${op.key}, ${op.expected === null ? "absent" : (op.expected ?? "?")} -> ${op.value ?? "?"})`;
  const outcome = op.outcome;
  let result: string;
  if (outcome.status === "ok") {
    const o = outcome.output;
    const shown =
      o.kind === "put"
        ? "ok"
        : o.kind === "get"
          ? (o.value ?? "absent")
          : o.kind === "delete"
            ? `deleted ${o.deleted}`
            : o.swapped
              ? "swapped"
              : "not swapped";
    result = `-> ${shown} @rev ${o.revision}`;
  } else {
    result = `-> ${outcome.status} (${outcome.reason})`;
  }
  const session = op.clientId === undefined ? "" : ` [${op.clientId}#${op.sequence ?? 0}]`;
  const times = `${formatMs(op.callUs)}..${formatMs(op.endUs)}`;
  return `op ${op.id} w${op.worker} ${what} ${result} ${times} via ${op.endpoint}${session}${op.attempts > 1 ? ` attempts=${op.attempts}` : ""}`;
}

export function formatMs(us: number): string {
  return `${(us / 1000).toFixed(1)}ms`;
}

/** One event of the watch history: a key changed at a revision. */
export interface WatchRecord {
  readonly revision: number;
  readonly type: "put" | "delete";
  readonly key: string;
  /** The value after a put; null for a delete. */
  readonly value: string | null;
}
