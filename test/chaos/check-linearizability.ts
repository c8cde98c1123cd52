import { assert } from "../../src/lib/assert.js";
import { checkLinearizability, type KvInput, type KvOutput, type Operation, type Outcome } from "../sim/index.js";
import { describeChaosOp, type ChaosOp } from "./history.js";
import type { Violation } from "./violation.js";

/**
 * Per-key linearizability of a chaos history, judged by the simulator's WGL checker (with Lowe's
 * memoization) in test/sim/linearizability.ts.
 *
 * That checker models each key as a register of strings with put, get and compare-and-swap, where
 * `null` is "absent" and nothing can make a key absent again. raftkv also deletes, so the history is
 * translated into an equivalent register in which "absent" is an ordinary value, ABSENT:
 * - every key starts with a synthetic put(key, ABSENT) that completes before any op is invoked;
 * - delete(key) is put(key, ABSENT);
 * - a get that found no key returned ABSENT; a CAS expecting absence expects ABSENT.
 * The register's states and transitions are then exactly raftkv's, so the verdict is the same. The one
 * thing lost is the delete's own answer (how many keys it deleted), which the checker cannot judge: it
 * has no delete op whose output depends on the state.
 *
 * Times are the ops' microseconds; ops with an unknown outcome may take effect at any later time or
 * never, and failed ops are left out, which is what the checker's outcomes mean.
 */
export const ABSENT = "(absent)";

export interface LinearizabilityVerdict {
  readonly kind: "linearizable" | "violation" | "budgetExceeded";
  readonly keys: number;
  /** Ops the search had to place (after leaving out failures and provably irrelevant unknown writes). */
  readonly operations: number;
  readonly searchSteps: number;
  readonly violation?: Violation;
  /** For budgetExceeded: the key the search gave up on. */
  readonly key?: string;
}

/** The per-key search budget; past it the key is reported as not checked, never as passing. */
export const SEARCH_STEPS_MAX = 20_000_000;

export function toSimHistory(ops: readonly ChaosOp[]): Operation[] {
  const history: Operation[] = [];
  let nextId = Math.max(0, ...ops.map((op) => op.id)) + 1;
  const keys = [...new Set(ops.map((op) => op.key))].sort();
  for (const key of keys) {
    // Completes before every real op (real ops are invoked at time >= 0).
    history.push({
      id: nextId++,
      clientId: -1,
      input: { kind: "put", key, value: ABSENT },
      call: -2,
      callStep: 0,
      outcome: { status: "ok", output: { kind: "put" }, ret: -1, retStep: 0 },
    });
  }
  for (const op of ops) history.push(toSimOperation(op));
  return history;
}

function toSimOperation(op: ChaosOp): Operation {
  assert(op.callUs >= 0, () => `chaos history: op ${op.id} invoked before the clock started`);
  let input: KvInput;
  switch (op.kind) {
    case "put":
      input = { kind: "put", key: op.key, value: required(op.value, op) };
      break;
    case "delete":
      input = { kind: "put", key: op.key, value: ABSENT };
      break;
    case "get":
      input = { kind: "get", key: op.key };
      break;
    case "cas":
      assert(op.expected !== undefined, () => `chaos history: cas op ${op.id} without an expected value`);
      input = { kind: "cas", key: op.key, expected: op.expected ?? ABSENT, value: required(op.value, op) };
      break;
  }
  const stepMs = (us: number): number => Math.round(us / 1000);
  let outcome: Outcome;
  const o = op.outcome;
  if (o.status === "ok") {
    let output: KvOutput;
    const out = o.output;
    assert(out.kind === op.kind, () => `chaos history: op ${op.id} is a ${op.kind} with a ${out.kind} result`);
    if (out.kind === "get") output = { kind: "get", value: out.value ?? ABSENT };
    else if (out.kind === "cas") output = { kind: "cas", swapped: out.swapped };
    else output = { kind: "put" };
    // The checker needs ret > call; an op timed within the clock's resolution is widened, which only
    // ever allows more linearizations.
    const ret = op.endUs > op.callUs ? op.endUs : op.callUs + 0.001;
    outcome = { status: "ok", output, ret, retStep: stepMs(op.endUs) };
  } else if (o.status === "fail") {
    outcome = { status: "fail", reason: o.reason, retStep: stepMs(op.endUs) };
  } else {
    outcome = { status: "unknown", reason: o.reason };
  }
  return { id: op.id, clientId: op.worker, input, call: op.callUs, callStep: stepMs(op.callUs), outcome };
}

function required(value: string | undefined, op: ChaosOp): string {
  assert(value !== undefined && value !== ABSENT, () => `chaos history: op ${op.id} (${op.kind}) needs a value other than ${ABSENT}`);
  return value;
}

/** Most ops of a violating key shown in a report (the whole key history is in history.jsonl). */
const EXCERPT_OPS_MAX = 40;

export function checkChaosLinearizability(ops: readonly ChaosOp[], searchStepsMax = SEARCH_STEPS_MAX): LinearizabilityVerdict {
  const result = checkLinearizability(toSimHistory(ops), { searchStepsMax });
  switch (result.kind) {
    case "linearizable":
      return { kind: "linearizable", keys: result.keys, operations: result.operations, searchSteps: result.searchSteps };
    case "budgetExceeded":
      return { kind: "budgetExceeded", keys: 0, operations: result.operations, searchSteps: result.searchSteps, key: result.key };
    case "violation": {
      const byId = new Map(ops.map((op) => [op.id, op]));
      const involved = result.operations.map((s) => byId.get(s.id)).filter((op): op is ChaosOp => op !== undefined);
      const excerpt = excerptAroundViolation(involved, result.explanation);
      const message = [
        `key ${result.key} has no linearization (checker times t are microseconds since the run started, "steps" milliseconds):`,
        result.explanation,
        `history of the key (${involved.length} ops${involved.length > excerpt.length ? `, ${excerpt.length} shown around the failure` : ""}):`,
        ...excerpt.map((op) => `  ${describeChaosOp(op)}`),
      ].join("\n");
      return {
        kind: "violation",
        keys: 0,
        operations: result.operations.length,
        searchSteps: 0,
        key: result.key,
        violation: { kind: "linearizability", message, ops: excerpt },
      };
    }
  }
}

/** The ops around the last op the explanation names, plus every named op, in time order. */
function excerptAroundViolation(ops: readonly ChaosOp[], explanation: string): ChaosOp[] {
  const sorted = [...ops].sort((a, b) => a.callUs - b.callUs);
  if (sorted.length <= EXCERPT_OPS_MAX) return sorted;
  const named = new Set([...explanation.matchAll(/op (\d+) /g)].map((m) => Number(m[1])));
  const positions = sorted.map((op, i) => (named.has(op.id) ? i : -1)).filter((i) => i >= 0);
  const centre = positions.length === 0 ? sorted.length - 1 : Math.max(...positions);
  const end = Math.min(sorted.length, centre + Math.floor(EXCERPT_OPS_MAX / 4));
  const start = Math.max(0, end - EXCERPT_OPS_MAX);
  // Ops the explanation names stay in the excerpt even when they lie before the window.
  return sorted.filter((op, i) => (i >= start && i < end) || named.has(op.id));
}
