import { assert } from "../../src/lib/assert.js";
import { describeOperation, type KvInput, type KvOutput, type Operation } from "./history.js";

/**
 * A linearizability checker for the simulator's key-value histories, in the style of Wing & Gong's
 * search with Lowe's memoization (the algorithm Porcupine implements):
 *
 * - Every op touches one key, and a history of independent registers is linearizable exactly when the
 *   sub-history of each key is (linearizability is local: Herlihy & Wing, Theorem 1), so each key is
 *   checked on its own.
 * - The ops of a key become a list of call and return events in time order. The search walks the list:
 *   at a call whose op the register model accepts in the current state, it linearizes that op (removes
 *   its call and return from the list, pushes it on a stack) and starts again from the head; reaching a
 *   return means the op that returns there was not linearized in time, so the search backtracks (pops the
 *   last op, puts it back, and tries the next call after it). The history is linearizable when the list
 *   becomes empty, and is not when a return is reached with nothing to pop.
 * - Lowe's memoization: the pair (set of linearized ops, register state) determines the rest of the
 *   search, so a pair seen before is never explored again. This is what makes the search practical.
 *
 * Outcomes:
 * - `fail` ops never took effect and are left out;
 * - `unknown` reads are left out (a read without an answer constrains nothing);
 * - `unknown` writes may take effect at any point after their invocation or never: their return is at
 *   infinity (after every other event) and their output is unconstrained. Taking effect "never" is the
 *   same as taking effect after every other op, since nothing observes the register after that.
 */

export interface LinearizabilityOptions {
  /** Upper bound on search iterations for one key; past it the verdict is `budgetExceeded`. */
  readonly searchStepsMax?: number;
  /**
   * Drop unknown writes that provably cannot matter before searching (see `prunableUnknownWrites`).
   * On by default; the self-tests compare the verdicts with and without it.
   */
  readonly prune?: boolean;
}

export type LinearizabilityResult =
  | { readonly kind: "linearizable"; readonly keys: number; readonly operations: number; readonly searchSteps: number }
  | {
      readonly kind: "violation";
      readonly key: string;
      /** A human-readable account: the longest linearizable prefix found and why no op can follow it. */
      readonly explanation: string;
      readonly operations: readonly Operation[];
    }
  | { readonly kind: "budgetExceeded"; readonly key: string; readonly operations: number; readonly searchSteps: number };

const SEARCH_STEPS_MAX_DEFAULT = 5_000_000;
/** How many ops of the linearized prefix a violation report shows. */
const EXPLAIN_PREFIX_OPS_MAX = 8;

export function checkLinearizability(history: readonly Operation[], options: LinearizabilityOptions = {}): LinearizabilityResult {
  const searchStepsMax = options.searchStepsMax ?? SEARCH_STEPS_MAX_DEFAULT;
  assert(searchStepsMax > 0, "linearizability: searchStepsMax must be positive");
  const prune = options.prune ?? true;
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    const list = byKey.get(op.input.key);
    if (list === undefined) byKey.set(op.input.key, [op]);
    else list.push(op);
  }
  // A fixed order (sorted keys) keeps the verdict and the reported key deterministic.
  const keys = [...byKey.keys()].sort();
  let searchSteps = 0;
  let operations = 0;
  for (const key of keys) {
    const ops = byKey.get(key) ?? [];
    const relevant = relevantOperations(ops, prune);
    operations += relevant.length;
    const verdict = checkRegister(relevant, searchStepsMax);
    searchSteps += verdict.searchSteps;
    if (verdict.kind === "budgetExceeded") {
      return { kind: "budgetExceeded", key, operations: relevant.length, searchSteps: verdict.searchSteps };
    }
    if (verdict.kind === "violation") {
      return { kind: "violation", key, explanation: verdict.explanation, operations: relevant.map((c) => c.op) };
    }
  }
  return { kind: "linearizable", keys: keys.length, operations, searchSteps };
}

/** One op as the search sees it: `output` undefined means unconstrained (unknown outcome). */
interface CheckOp {
  readonly slot: number;
  readonly op: Operation;
  readonly input: KvInput;
  readonly output: KvOutput | undefined;
  readonly call: number;
  readonly ret: number;
}

function relevantOperations(ops: readonly Operation[], prune: boolean): CheckOp[] {
  const kept = ops.filter((op) => {
    if (op.outcome.status === "fail") return false;
    if (op.outcome.status === "unknown" && op.input.kind === "get") return false;
    return true;
  });
  const pruned = prune ? prunableUnknownWrites(kept) : new Set<Operation>();
  const result: CheckOp[] = [];
  for (const op of kept) {
    if (pruned.has(op)) continue;
    const outcome = op.outcome;
    if (outcome.status === "ok") {
      assert(outcome.output.kind === op.input.kind, () => `linearizability: output kind does not match ${describeOperation(op)}`);
      assert(outcome.ret > op.call, () => `linearizability: op returns before it is called: ${describeOperation(op)}`);
      result.push({ slot: result.length, op, input: op.input, output: outcome.output, call: op.call, ret: outcome.ret });
    } else {
      result.push({ slot: result.length, op, input: op.input, output: undefined, call: op.call, ret: Number.POSITIVE_INFINITY });
    }
  }
  return result;
}

/**
 * Unknown writes whose value nobody ever observes can be dropped without changing the verdict, as long
 * as no known compare-and-swap on the key failed:
 * - linearizing such a write only ever sets the register to a value that no read returns and no CAS
 *   expects, so every later observation still needs some other write after it, and the write could as
 *   well have happened "never" (an allowed outcome);
 * - the one thing it could explain is a CAS that failed because the value was *not* what it expected,
 *   hence the exception.
 * Unique values per write (the simulator's workload guarantees it) make this prune very effective: most
 * unknown writes are never read.
 */
function prunableUnknownWrites(ops: readonly Operation[]): Set<Operation> {
  const pruned = new Set<Operation>();
  const observed = new Set<string>();
  for (const op of ops) {
    const outcome = op.outcome;
    if (op.input.kind === "cas") {
      if (op.input.expected !== null) observed.add(op.input.expected);
      if (outcome.status === "ok" && outcome.output.kind === "cas" && !outcome.output.swapped) return pruned;
    }
    if (outcome.status === "ok" && outcome.output.kind === "get" && outcome.output.value !== null) {
      observed.add(outcome.output.value);
    }
  }
  for (const op of ops) {
    if (op.outcome.status !== "unknown") continue;
    if (op.input.kind === "get") continue;
    if (!observed.has(op.input.value)) pruned.add(op);
  }
  return pruned;
}

/** The register's state: its value, or null when the key is absent. */
type RegisterState = string | null;
const REJECT: unique symbol = Symbol("reject");

/** The sequential specification of one register. */
function stepRegister(state: RegisterState, op: CheckOp): RegisterState | typeof REJECT {
  const input = op.input;
  const output = op.output;
  switch (input.kind) {
    case "put":
      return input.value;
    case "get":
      assert(output?.kind === "get", "linearizability: a kept get has a known output");
      return output.value === state ? state : REJECT;
    case "cas": {
      const swaps = state === input.expected;
      if (output !== undefined) {
        assert(output.kind === "cas", "linearizability: cas output kind");
        if (output.swapped !== swaps) return REJECT;
      }
      return swaps ? input.value : state;
    }
  }
}

interface ListEntry {
  readonly op: CheckOp;
  readonly isCall: boolean;
  readonly time: number;
  /** For a call: its return entry. */
  match: ListEntry | undefined;
  prev: ListEntry | undefined;
  next: ListEntry | undefined;
}

/** The op of the list's head sentinel; never linearized. */
const SENTINEL: CheckOp = {
  slot: -1,
  op: { id: -1, clientId: -1, input: { kind: "get", key: "" }, call: 0, callStep: 0, outcome: { status: "unknown", reason: "sentinel" } },
  input: { kind: "get", key: "" },
  output: undefined,
  call: Number.NEGATIVE_INFINITY,
  ret: Number.NEGATIVE_INFINITY,
};

/** Builds the doubly linked event list; returns its head sentinel. */
function buildEventList(ops: readonly CheckOp[]): ListEntry {
  const events: ListEntry[] = [];
  for (const op of ops) {
    const ret: ListEntry = { op, isCall: false, time: op.ret, match: undefined, prev: undefined, next: undefined };
    const call: ListEntry = { op, isCall: true, time: op.call, match: ret, prev: undefined, next: undefined };
    events.push(call, ret);
  }
  // Ties (equal times) put calls first: the two ops then overlap, the permissive reading.
  events.sort((a, b) => (a.time !== b.time ? a.time - b.time : a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: ListEntry = {
    op: SENTINEL,
    isCall: false,
    time: Number.NEGATIVE_INFINITY,
    match: undefined,
    prev: undefined,
    next: undefined,
  };
  let last = head;
  for (const event of events) {
    last.next = event;
    event.prev = last;
    last = event;
  }
  return head;
}

/** Removes a call and its return from the list (their own pointers stay, for `unlift`). */
function lift(call: ListEntry): void {
  const ret = call.match;
  assert(ret !== undefined && call.prev !== undefined, "linearizability: lift needs a linked call");
  call.prev.next = call.next;
  if (call.next !== undefined) call.next.prev = call.prev;
  assert(ret.prev !== undefined, "linearizability: a return always follows its call");
  ret.prev.next = ret.next;
  if (ret.next !== undefined) ret.next.prev = ret.prev;
}

/** Undoes `lift`; valid because lifts are undone in reverse order (a stack). */
function unlift(call: ListEntry): void {
  const ret = call.match;
  assert(ret !== undefined && call.prev !== undefined && ret.prev !== undefined, "linearizability: unlift needs a lifted call");
  ret.prev.next = ret;
  if (ret.next !== undefined) ret.next.prev = ret;
  call.prev.next = call;
  if (call.next !== undefined) call.next.prev = call;
}

class Bitset {
  readonly words: Uint32Array;
  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32) + 1);
  }
  set(i: number): void {
    this.words[i >>> 5] = (this.words[i >>> 5] ?? 0) | (1 << (i & 31));
  }
  clear(i: number): void {
    this.words[i >>> 5] = (this.words[i >>> 5] ?? 0) & ~(1 << (i & 31));
  }
  /** A compact string form, two 16-bit characters per word, used as a memo key. */
  key(state: RegisterState): string {
    let text = "";
    for (const word of this.words) text += String.fromCharCode(word & 0xffff, word >>> 16);
    return state === null ? `${text}\u0000` : `${text}\u0001${state}`;
  }
}

type RegisterVerdict =
  | { readonly kind: "linearizable"; readonly searchSteps: number }
  | { readonly kind: "violation"; readonly searchSteps: number; readonly explanation: string }
  | { readonly kind: "budgetExceeded"; readonly searchSteps: number };

function checkRegister(ops: readonly CheckOp[], searchStepsMax: number): RegisterVerdict {
  const search = searchRegister(ops, searchStepsMax, false);
  if (search.kind !== "violation") return search;
  // Only a failing history pays for recording the deepest prefix (a second, identical search).
  const traced = searchRegister(ops, searchStepsMax, true);
  assert(traced.kind === "violation", "linearizability: the traced search must reach the same verdict");
  return { kind: "violation", searchSteps: search.searchSteps, explanation: explainViolation(ops, traced.deepest) };
}

type SearchResult =
  | { readonly kind: "linearizable"; readonly searchSteps: number }
  | { readonly kind: "violation"; readonly searchSteps: number; readonly deepest: readonly CheckOp[] }
  | { readonly kind: "budgetExceeded"; readonly searchSteps: number };

function searchRegister(ops: readonly CheckOp[], searchStepsMax: number, trace: boolean): SearchResult {
  const head = buildEventList(ops);
  const linearized = new Bitset(ops.length);
  const memo = new Set<string>();
  const stack: { readonly call: ListEntry; readonly stateBefore: RegisterState }[] = [];
  let deepest: CheckOp[] = [];
  let state: RegisterState = null;
  let entry = head.next;
  let searchSteps = 0;
  while (head.next !== undefined) {
    searchSteps++;
    if (searchSteps > searchStepsMax) return { kind: "budgetExceeded", searchSteps };
    assert(entry !== undefined, "linearizability: the event list always ends with a return");
    if (entry.isCall) {
      const next = stepRegister(state, entry.op);
      if (next !== REJECT) {
        linearized.set(entry.op.slot);
        const key = linearized.key(next);
        if (!memo.has(key)) {
          memo.add(key);
          stack.push({ call: entry, stateBefore: state });
          state = next;
          lift(entry);
          if (trace && stack.length > deepest.length) deepest = stack.map((s) => s.call.op);
          entry = head.next;
          continue;
        }
        linearized.clear(entry.op.slot);
      }
      entry = entry.next;
    } else {
      const top = stack.pop();
      if (top === undefined) return { kind: "violation", searchSteps, deepest };
      state = top.stateBefore;
      linearized.clear(top.call.op.slot);
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { kind: "linearizable", searchSteps };
}

/**
 * Replays the deepest linearizable prefix and names the ops that could come next (those called before
 * the earliest pending return) with the reason the register refuses each.
 */
function explainViolation(ops: readonly CheckOp[], deepest: readonly CheckOp[]): string {
  let state: RegisterState = null;
  const done = new Set<number>();
  for (const op of deepest) {
    const next = stepRegister(state, op);
    assert(next !== REJECT, "linearizability: the recorded prefix replays");
    state = next;
    done.add(op.slot);
  }
  const pending = ops.filter((op) => !done.has(op.slot));
  const firstReturn = Math.min(...pending.map((op) => op.ret));
  const candidates = pending.filter((op) => op.call <= firstReturn);
  const lines = [
    `no linearization of ${ops.length} ops; the longest linearizable prefix has ${deepest.length} ops` +
      (deepest.length > EXPLAIN_PREFIX_OPS_MAX ? `, ending with:` : ":"),
    ...deepest.slice(-EXPLAIN_PREFIX_OPS_MAX).map((op) => `  ${describeOperation(op.op)}`),
    `value after it: ${String(state)}; none of these can come next:`,
    ...candidates.map((op) => `  ${describeOperation(op.op)}${op.ret === firstReturn ? "  (returns first)" : ""}`),
  ];
  return lines.join("\n");
}
