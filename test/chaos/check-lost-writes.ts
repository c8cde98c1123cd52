import { describeChaosOp, formatMs, type ChaosOp } from "./history.js";
import type { Violation } from "./violation.js";

/**
 * No acknowledged write lost: after every fault healed, one linearizable read of every key (the final
 * state) must show, for each key, a write that nothing acknowledged came after.
 *
 * With unique values the final value names the write that produced it (a delete for an absent key; the
 * initial state counts as a delete that completed before the run). That write w must be the last write
 * of the key, so an acknowledged write x invoked after w completed (x.call > w.end) must not exist:
 * real time forces x after w, and x would have overwritten w. Writes with an unknown outcome may take
 * effect at any later time, so they can explain any final value. Of several candidates for the final
 * value (only deletes can share one), the latest is the most forgiving and is the one judged.
 *
 * This overlaps the linearizability check (which also sees the final read) on purpose: it names the
 * lost write directly, and it needs no search, so it holds even when the search runs out of budget.
 */
export interface FinalRead {
  /** key -> value, or null when the key is absent. Every key the history touched must be present. */
  readonly values: ReadonlyMap<string, string | null>;
  /** When the final read was invoked (after every acknowledged op completed). */
  readonly callUs: number;
}

function isWriteOf(op: ChaosOp, value: string | null): boolean {
  const o = op.outcome;
  if (o.status === "fail") return false;
  if (value === null) return op.kind === "delete";
  if (op.kind !== "put" && op.kind !== "cas") return false;
  if (op.value !== value) return false;
  // A CAS known not to have swapped wrote nothing.
  return !(o.status === "ok" && o.output.kind === "cas" && !o.output.swapped);
}

/** An acknowledged write: it certainly changed the key. */
function isAckedWrite(op: ChaosOp): boolean {
  const o = op.outcome;
  if (o.status !== "ok") return false;
  if (op.kind === "put") return true;
  if (op.kind === "cas") return o.output.kind === "cas" && o.output.swapped;
  // A delete of an absent key changes nothing, but it still says "absent from here on".
  return op.kind === "delete";
}

const endOf = (op: ChaosOp): number => (op.outcome.status === "unknown" ? Number.POSITIVE_INFINITY : op.endUs);

export function checkLostWrites(ops: readonly ChaosOp[], final: FinalRead): Violation[] {
  const violations: Violation[] = [];
  const byKey = new Map<string, ChaosOp[]>();
  for (const op of ops) {
    if (op.kind === "get") continue;
    const list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, [op]);
    else list.push(op);
  }
  for (const [key, writes] of [...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!final.values.has(key)) {
      violations.push({
        kind: "lost-write",
        message: `key ${key}: the final read did not cover it (harness error: every written key must be read)`,
        ops: [],
      });
      continue;
    }
    const value = final.values.get(key) ?? null;
    const candidates = writes.filter((op) => isWriteOf(op, value));
    // The initial state: absent, "written" before the run.
    const initialEnd = value === null ? Number.NEGATIVE_INFINITY : undefined;
    if (candidates.length === 0 && initialEnd === undefined) {
      const failed = writes.filter((op) => op.value === value);
      violations.push({
        kind: failed.length > 0 ? "failed-write-applied" : "phantom-value",
        message:
          failed.length > 0
            ? `key ${key}: the final value ${value} was written only by ops that were reported as not applied:\n${failed.map((op) => `  ${describeChaosOp(op)}`).join("\n")}`
            : `key ${key}: the final value ${value} was never written by any op`,
        ops: failed,
      });
      continue;
    }
    const winnerEnd = Math.max(initialEnd ?? Number.NEGATIVE_INFINITY, ...candidates.map(endOf));
    const winner = candidates.find((op) => endOf(op) === winnerEnd);
    const lost = writes.filter((op) => isAckedWrite(op) && op.callUs > winnerEnd && op !== winner);
    for (const op of lost) {
      const source = winner === undefined ? "the initial state (absent)" : `op ${winner.id}, which completed at ${formatMs(winner.endUs)}`;
      violations.push({
        kind: "lost-write",
        message:
          `key ${key}: acknowledged write op ${op.id} is lost: the final read (invoked at ${formatMs(final.callUs)}) found ` +
          `${value ?? "the key absent"}, from ${source}, before op ${op.id} was even invoked at ${formatMs(op.callUs)}\n` +
          `  lost:   ${describeChaosOp(op)}\n` +
          (winner === undefined ? "" : `  final:  ${describeChaosOp(winner)}`),
        ops: winner === undefined ? [op] : [winner, op],
      });
    }
  }
  return violations;
}
