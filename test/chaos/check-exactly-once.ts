import { describeChaosOp, type ChaosOp, type WatchRecord } from "./history.js";
import type { Violation } from "./violation.js";

/**
 * Exactly-once, judged from the watch history (every change of every key, with its revision). Every put
 * and CAS of a run writes a value no other op writes, so a value's put events name the op that wrote it:
 * - a value put at two different revisions was applied twice: a retry with the same client id and
 *   sequence (or a duplicated log entry) was not deduplicated;
 * - a value whose op was reported as certainly not applied (or a CAS reported as not swapped) must not
 *   appear at all;
 * - a value no op wrote must not appear;
 * - when the history is complete (no revision missing), every acknowledged put and swapped CAS must
 *   appear: the client was told it happened;
 * - deletes write no value, so they are counted: every delete event of a key must be explained by a
 *   delete op of that key that may have applied (acknowledged as deleting, or of unknown outcome), one
 *   event per op. More events than such ops is a delete applied twice (a retry not deduplicated) or one
 *   nobody issued;
 * - an acknowledged change names its revision: the event at that revision must be that change (a put
 *   or swapped CAS of its value, a delete of its key). A reply belonging to another entry (a wrong
 *   cached retry answer, say) shows up here.
 *
 * The same event delivered twice (a watch resumed on another node) has the same revision and is not a
 * double apply.
 */
export interface WatchHistory {
  readonly events: readonly WatchRecord[];
  /** True when `events` holds every revision from 1 to the final revision. */
  readonly complete: boolean;
}

export function checkExactlyOnce(ops: readonly ChaosOp[], history: WatchHistory): Violation[] {
  const violations: Violation[] = [];
  const writerOf = new Map<string, ChaosOp>();
  for (const op of ops) if ((op.kind === "put" || op.kind === "cas") && op.value !== undefined) writerOf.set(op.value, op);
  const revisionsOf = new Map<string, Set<number>>();
  for (const event of history.events) {
    if (event.type !== "put" || event.value === null) continue;
    const revisions = revisionsOf.get(event.value);
    if (revisions === undefined) revisionsOf.set(event.value, new Set([event.revision]));
    else revisions.add(event.revision);
  }
  for (const [value, revisions] of revisionsOf) {
    const op = writerOf.get(value);
    if (op === undefined) {
      violations.push({
        kind: "phantom-value",
        message: `value ${value} appears in the history (revisions ${[...revisions].join(", ")}) but no op wrote it`,
        ops: [],
      });
      continue;
    }
    if (revisions.size > 1) {
      violations.push({
        kind: "double-apply",
        message:
          `op ${op.id} (session ${op.clientId ?? "none"}#${op.sequence ?? 0}, ${op.attempts} call(s)) took effect ${revisions.size} times, ` +
          `at revisions ${[...revisions].sort((a, b) => a - b).join(", ")}\n  ${describeChaosOp(op)}`,
        ops: [op],
      });
    }
    const o = op.outcome;
    const reportedNotApplied = o.status === "fail" || (o.status === "ok" && o.output.kind === "cas" && !o.output.swapped);
    if (reportedNotApplied) {
      violations.push({
        kind: "failed-write-applied",
        message: `op ${op.id} was reported as ${o.status === "fail" ? "certainly not applied" : "not swapped"} but its value appears at revision ${[...revisions].join(", ")}\n  ${describeChaosOp(op)}`,
        ops: [op],
      });
    }
  }
  if (history.complete) {
    for (const op of ops) {
      if ((op.kind !== "put" && op.kind !== "cas") || op.value === undefined) continue;
      const o = op.outcome;
      const acked = o.status === "ok" && (o.output.kind === "put" || (o.output.kind === "cas" && o.output.swapped));
      if (acked && !revisionsOf.has(op.value)) {
        violations.push({
          kind: "unapplied-ack",
          message: `op ${op.id} was acknowledged but its value never appears in the complete history\n  ${describeChaosOp(op)}`,
          ops: [op],
        });
      }
    }
  }
  violations.push(...checkDeleteCounts(ops, history.events), ...checkAckedRevisions(ops, history));
  return violations;
}

function checkDeleteCounts(ops: readonly ChaosOp[], events: readonly WatchRecord[]): Violation[] {
  const deletedAt = new Map<string, Set<number>>();
  for (const event of events) {
    if (event.type !== "delete") continue;
    const revisions = deletedAt.get(event.key);
    if (revisions === undefined) deletedAt.set(event.key, new Set([event.revision]));
    else revisions.add(event.revision);
  }
  const mayHaveDeleted = new Map<string, ChaosOp[]>();
  for (const op of ops) {
    if (op.kind !== "delete") continue;
    const o = op.outcome;
    if (o.status === "fail" || (o.status === "ok" && o.output.kind === "delete" && o.output.deleted === 0)) continue;
    const list = mayHaveDeleted.get(op.key);
    if (list === undefined) mayHaveDeleted.set(op.key, [op]);
    else list.push(op);
  }
  const violations: Violation[] = [];
  for (const [key, revisions] of deletedAt) {
    const candidates = mayHaveDeleted.get(key) ?? [];
    if (revisions.size <= candidates.length) continue;
    violations.push({
      kind: "double-apply",
      message:
        `key ${key} was deleted at ${revisions.size} revisions (${[...revisions].sort((a, b) => a - b).join(", ")}) but only ${candidates.length} delete op(s) of it may have applied` +
        candidates.map((op) => `\n  ${describeChaosOp(op)}`).join(""),
      ops: candidates,
    });
  }
  return violations;
}

function checkAckedRevisions(ops: readonly ChaosOp[], history: WatchHistory): Violation[] {
  const atRevision = new Map<number, WatchRecord[]>();
  for (const event of history.events) {
    const list = atRevision.get(event.revision);
    if (list === undefined) atRevision.set(event.revision, [event]);
    else list.push(event);
  }
  const violations: Violation[] = [];
  for (const op of ops) {
    const o = op.outcome;
    if (o.status !== "ok" || o.output.revision <= 0) continue;
    const out = o.output;
    let matches: ((e: WatchRecord) => boolean) | undefined;
    if (out.kind === "put" || (out.kind === "cas" && out.swapped))
      matches = (e) => e.type === "put" && e.key === op.key && e.value === op.value;
    else if (out.kind === "delete" && out.deleted > 0) matches = (e) => e.type === "delete" && e.key === op.key;
    if (matches === undefined) continue;
    const there = atRevision.get(out.revision);
    if (there === undefined) {
      if (history.complete && op.kind === "delete") {
        violations.push({
          kind: "unapplied-ack",
          message: `op ${op.id} was acknowledged as deleting at revision ${out.revision}, which has no event in the complete history\n  ${describeChaosOp(op)}`,
          ops: [op],
        });
      }
      continue;
    }
    if (!there.some(matches)) {
      const seen = there.map((e) => `${e.type} ${e.key}${e.value === null ? "" : `=${e.value}`}`).join(", ");
      violations.push({
        kind: "ack-mismatch",
        message: `op ${op.id} was acknowledged at revision ${out.revision}, but that revision holds ${seen}\n  ${describeChaosOp(op)}`,
        ops: [op],
      });
    }
  }
  return violations;
}

/**
 * Revisions in 1..finalRevision with no event. Every revision is made by a mutation of the workload's
 * keys (nothing else writes to the cluster under test), so each must show up in a watch of the prefix.
 */
export function missingRevisions(
  events: readonly WatchRecord[],
  finalRevision: number,
  listedMax = 20,
): { count: number; listed: number[] } {
  const seen = new Set(events.map((e) => e.revision));
  let count = 0;
  const listed: number[] = [];
  for (let revision = 1; revision <= finalRevision; revision++) {
    if (seen.has(revision)) continue;
    count++;
    if (listed.length < listedMax) listed.push(revision);
  }
  return { count, listed };
}
