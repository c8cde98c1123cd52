import { describe, expect, it } from "vitest";
import { createPrng, type Prng } from "../../src/lib/prng.js";
import type { KvInput, KvOutput, Operation } from "./history.js";
import { checkLinearizability } from "./linearizability.js";

let nextId = 1;

function ok(input: KvInput, call: number, ret: number, output: KvOutput): Operation {
  return { id: nextId++, clientId: 0, input, call, callStep: call, outcome: { status: "ok", output, ret, retStep: ret } };
}
function unknown(input: KvInput, call: number): Operation {
  return { id: nextId++, clientId: 0, input, call, callStep: call, outcome: { status: "unknown", reason: "test" } };
}
function fail(input: KvInput, call: number, ret: number): Operation {
  return { id: nextId++, clientId: 0, input, call, callStep: call, outcome: { status: "fail", reason: "test", retStep: ret } };
}
const put = (key: string, value: string): KvInput => ({ kind: "put", key, value });
const get = (key: string): KvInput => ({ kind: "get", key });
const cas = (key: string, expected: string | null, value: string): KvInput => ({ kind: "cas", key, expected, value });
const PUT: KvOutput = { kind: "put" };
const read = (value: string | null): KvOutput => ({ kind: "get", value });
const swapped = (yes: boolean): KvOutput => ({ kind: "cas", swapped: yes });

function verdict(history: Operation[]): string {
  return checkLinearizability(history).kind;
}

describe("linearizability checker: known-good histories", () => {
  it("accepts an empty history and a sequential one", () => {
    expect(verdict([])).toBe("linearizable");
    expect(
      verdict([
        ok(get("x"), 1, 2, read(null)),
        ok(put("x", "a"), 3, 4, PUT),
        ok(get("x"), 5, 6, read("a")),
        ok(cas("x", "a", "b"), 7, 8, swapped(true)),
        ok(cas("x", "a", "c"), 9, 10, swapped(false)),
        ok(get("x"), 11, 12, read("b")),
      ]),
    ).toBe("linearizable");
  });

  it("accepts a read that overlaps a write returning either the old or the new value", () => {
    for (const seen of [null, "a"]) {
      expect(verdict([ok(put("x", "a"), 1, 10, PUT), ok(get("x"), 2, 3, read(seen))])).toBe("linearizable");
    }
  });

  it("accepts concurrent writes observed in an order different from their invocation order", () => {
    const history = [
      ok(put("x", "a"), 1, 10, PUT),
      ok(put("x", "b"), 2, 9, PUT),
      ok(get("x"), 11, 12, read("a")),
      ok(get("x"), 13, 14, read("a")),
    ];
    expect(verdict(history)).toBe("linearizable");
  });

  it("accepts an unknown write that took effect, and one that never did", () => {
    expect(verdict([unknown(put("x", "a"), 1), ok(get("x"), 5, 6, read("a"))])).toBe("linearizable");
    expect(verdict([unknown(put("x", "a"), 1), ok(get("x"), 5, 6, read(null))])).toBe("linearizable");
    // It may take effect long after every known op returned.
    expect(verdict([unknown(put("x", "a"), 1), ok(get("x"), 2, 3, read(null)), ok(get("x"), 50, 51, read("a"))])).toBe("linearizable");
  });

  it("accepts a failed CAS explained only by an unknown write (the case the prune must not touch)", () => {
    const history = [ok(put("x", "a"), 1, 2, PUT), unknown(put("x", "u"), 3), ok(cas("x", "a", "b"), 4, 5, swapped(false))];
    expect(checkLinearizability(history, { prune: true }).kind).toBe("linearizable");
    expect(checkLinearizability(history, { prune: false }).kind).toBe("linearizable");
    expect(verdict([ok(put("x", "a"), 1, 2, PUT), ok(cas("x", "a", "b"), 4, 5, swapped(false))])).toBe("violation");
  });

  it("ignores failed ops and unknown reads", () => {
    const history = [fail(put("x", "z"), 1, 2), unknown(get("x"), 1), ok(get("x"), 3, 4, read(null))];
    expect(verdict(history)).toBe("linearizable");
  });

  it("checks keys independently", () => {
    const history = [
      ok(put("x", "a"), 1, 4, PUT),
      ok(put("y", "b"), 2, 3, PUT),
      ok(get("y"), 5, 6, read("b")),
      ok(get("x"), 5, 6, read("a")),
    ];
    expect(verdict(history)).toBe("linearizable");
  });
});

describe("linearizability checker: known-bad histories", () => {
  it("rejects a stale read", () => {
    const history = [ok(put("x", "a"), 1, 2, PUT), ok(put("x", "b"), 3, 4, PUT), ok(get("x"), 5, 6, read("a"))];
    const result = checkLinearizability(history);
    expect(result.kind).toBe("violation");
    if (result.kind === "violation") {
      expect(result.key).toBe("x");
      expect(result.explanation).toContain("get(x) -> a");
    }
  });

  it("rejects a lost write", () => {
    expect(verdict([ok(put("x", "a"), 1, 2, PUT), ok(get("x"), 3, 4, read(null))])).toBe("violation");
  });

  it("rejects a double apply (a write that takes effect again after a later write)", () => {
    const history = [
      ok(put("x", "a"), 1, 2, PUT),
      ok(put("x", "b"), 3, 4, PUT),
      ok(get("x"), 5, 6, read("b")),
      ok(get("x"), 7, 8, read("a")),
    ];
    expect(verdict(history)).toBe("violation");
    const casTwice = [
      ok(cas("x", null, "a"), 1, 2, swapped(true)),
      ok(put("x", "b"), 3, 4, PUT),
      ok(cas("x", null, "a"), 5, 6, swapped(true)),
    ];
    expect(verdict(casTwice)).toBe("violation");
  });

  it("rejects a value that no op wrote, and one written by a failed op", () => {
    expect(verdict([ok(get("x"), 1, 2, read("ghost"))])).toBe("violation");
    expect(verdict([fail(put("x", "a"), 1, 2), ok(get("x"), 3, 4, read("a"))])).toBe("violation");
  });

  it("rejects reads that see a write before it was invoked, and an unknown write that is later undone", () => {
    expect(verdict([ok(get("x"), 1, 2, read("a")), unknown(put("x", "a"), 3)])).toBe("violation");
    expect(verdict([unknown(put("x", "a"), 1), ok(get("x"), 2, 3, read("a")), ok(get("x"), 4, 5, read(null))])).toBe("violation");
  });

  it("rejects reads that go back in time across clients", () => {
    const history = [ok(put("x", "a"), 1, 20, PUT), ok(get("x"), 2, 3, read("a")), ok(get("x"), 4, 5, read(null))];
    expect(verdict(history)).toBe("violation");
  });

  it("rejects a CAS outcome that contradicts the value", () => {
    expect(verdict([ok(put("x", "a"), 1, 2, PUT), ok(cas("x", "b", "c"), 3, 4, swapped(true))])).toBe("violation");
    expect(verdict([ok(cas("x", null, "c"), 1, 2, swapped(false))])).toBe("violation");
  });

  it("reports a budget overrun instead of running forever", () => {
    const history: Operation[] = [];
    for (let i = 0; i < 12; i++) history.push(ok(put("x", `v${i}`), 1 + i, 100 + i, PUT));
    history.push(ok(get("x"), 200, 201, read("never")));
    expect(checkLinearizability(history, { searchStepsMax: 50 }).kind).toBe("budgetExceeded");
    expect(checkLinearizability(history).kind).toBe("violation");
  });
});

/**
 * A naive checker straight from the definition: some subset of the unknown writes, plus every known op,
 * has a total order that respects real time (a before b when a returned before b was called) and that
 * the register accepts. Exponential, so only for tiny histories; the WGL search must agree with it.
 */
function bruteForce(history: readonly Operation[]): boolean {
  const byKey = new Map<string, Operation[]>();
  for (const op of history) byKey.set(op.input.key, [...(byKey.get(op.input.key) ?? []), op]);
  for (const ops of byKey.values()) {
    const known = ops.filter((op) => op.outcome.status === "ok");
    const unknownWrites = ops.filter((op) => op.outcome.status === "unknown" && op.input.kind !== "get");
    let any = false;
    for (let mask = 0; mask < 1 << unknownWrites.length && !any; mask++) {
      const chosen = [...known, ...unknownWrites.filter((_, i) => (mask & (1 << i)) !== 0)];
      any = someOrder(chosen, null);
    }
    if (!any) return false;
  }
  return true;
}

function retOf(op: Operation): number {
  return op.outcome.status === "ok" ? op.outcome.ret : Number.POSITIVE_INFINITY;
}

function someOrder(remaining: readonly Operation[], state: string | null): boolean {
  if (remaining.length === 0) return true;
  for (const op of remaining) {
    if (remaining.some((other) => other !== op && retOf(other) < op.call)) continue;
    const input = op.input;
    const outcome = op.outcome;
    const output = outcome.status === "ok" ? outcome.output : undefined;
    let next: string | null;
    if (input.kind === "put") next = input.value;
    else if (input.kind === "get") {
      if (output?.kind !== "get" || output.value !== state) continue;
      next = state;
    } else {
      const swaps = state === input.expected;
      if (output?.kind === "cas" && output.swapped !== swaps) continue;
      next = swaps ? input.value : state;
    }
    if (
      someOrder(
        remaining.filter((other) => other !== op),
        next,
      )
    )
      return true;
  }
  return false;
}

/**
 * Random small histories: ops on two keys with random overlapping intervals, outputs computed from a
 * real register at a random linearization point inside each interval (so the history starts out
 * linearizable), then sometimes one output corrupted, some ops turned unknown or failed.
 */
function randomHistory(prng: Prng): Operation[] {
  const count = prng.int(1, 7);
  const values = ["a", "b", "c"];
  type Draft = { input: KvInput; call: number; ret: number; point: number; fate: "ok" | "unknown" | "fail" };
  const drafts: Draft[] = [];
  let writes = 0;
  for (let i = 0; i < count; i++) {
    const key = prng.pick(["x", "y"]);
    const call = prng.int(1, 30);
    const ret = call + prng.int(1, 12);
    const kind = prng.pick(["put", "get", "cas"] as const);
    const value = `${prng.pick(values)}${writes++}`;
    const input: KvInput =
      kind === "put"
        ? { kind, key, value }
        : kind === "get"
          ? { kind, key }
          : { kind, key, expected: prng.chance(0.3) ? null : `${prng.pick(values)}${prng.int(0, count)}`, value };
    const fate = prng.chance(0.15) ? "unknown" : prng.chance(0.1) ? "fail" : "ok";
    drafts.push({ input, call, ret, point: call + prng.next() * (fate === "unknown" ? 40 : ret - call), fate });
  }
  const state = new Map<string, string | null>();
  const outputs = new Map<Draft, KvOutput>();
  for (const draft of [...drafts].sort((a, b) => a.point - b.point)) {
    if (draft.fate === "fail" || (draft.fate === "unknown" && prng.chance(0.5))) continue;
    const input = draft.input;
    const current = state.get(input.key) ?? null;
    if (input.kind === "put") {
      state.set(input.key, input.value);
      outputs.set(draft, { kind: "put" });
    } else if (input.kind === "get") {
      outputs.set(draft, { kind: "get", value: current });
    } else {
      const swaps = current === input.expected;
      if (swaps) state.set(input.key, input.value);
      outputs.set(draft, { kind: "cas", swapped: swaps });
    }
  }
  const history: Operation[] = [];
  // Distinct times as in the simulator: scale and break ties by position.
  drafts.forEach((draft, i) => {
    const call = draft.call * 100 + i;
    const ret = draft.ret * 100 + i + 50;
    let output = outputs.get(draft);
    if (draft.fate === "fail") history.push(fail(draft.input, call, ret));
    else if (draft.fate === "unknown" || output === undefined) history.push(unknown(draft.input, call));
    else {
      if (prng.chance(0.25)) {
        output =
          output.kind === "get"
            ? { kind: "get", value: prng.chance(0.3) ? null : `${prng.pick(values)}${prng.int(0, count)}` }
            : output.kind === "cas"
              ? { kind: "cas", swapped: !output.swapped }
              : output;
      }
      history.push(ok(draft.input, call, ret, output));
    }
  });
  return history;
}

describe("linearizability checker against a brute-force oracle", () => {
  it("agrees with the definition on 3000 random small histories, with and without the prune", () => {
    const prng = createPrng(20240601);
    let violations = 0;
    for (let i = 0; i < 3000; i++) {
      const history = randomHistory(prng);
      const expected = bruteForce(history) ? "linearizable" : "violation";
      const pruned = checkLinearizability(history, { prune: true }).kind;
      const full = checkLinearizability(history, { prune: false }).kind;
      if (pruned !== expected || full !== expected) {
        throw new Error(`history ${i}: oracle ${expected}, pruned ${pruned}, full ${full}\n${JSON.stringify(history)}`);
      }
      if (expected === "violation") violations++;
    }
    // The generator must exercise both verdicts for the comparison to mean anything.
    expect(violations).toBeGreaterThan(300);
    expect(violations).toBeLessThan(2700);
  });
});

describe("linearizability checker at simulator scale", () => {
  it("checks a long, highly concurrent linearizable history quickly", () => {
    const prng = createPrng(7);
    const history: Operation[] = [];
    let value: string | null = null;
    let time = 0;
    // Five clients, each with one op in flight; an op takes effect at a random moment while in flight.
    const inFlight: { input: KvInput; call: number; effect: number }[] = [];
    for (let step = 0; history.length < 4000; step++) {
      while (inFlight.length < 5) {
        const kind = prng.pick(["put", "get", "cas"] as const);
        const input: KvInput =
          kind === "put"
            ? { kind, key: "x", value: `v${step}-${inFlight.length}` }
            : kind === "get"
              ? { kind, key: "x" }
              : { kind, key: "x", expected: value, value: `c${step}-${inFlight.length}` };
        inFlight.push({ input, call: ++time, effect: step + prng.int(0, 3) });
      }
      for (const pending of inFlight.filter((p) => p.effect <= step)) {
        inFlight.splice(inFlight.indexOf(pending), 1);
        const input = pending.input;
        if (prng.chance(0.05) && input.kind !== "get") {
          if (prng.chance(0.5)) value = input.kind === "put" || value === input.expected ? input.value : value;
          history.push(unknown(input, pending.call));
          continue;
        }
        let output: KvOutput;
        if (input.kind === "put") {
          value = input.value;
          output = PUT;
        } else if (input.kind === "get") output = read(value);
        else {
          output = swapped(value === input.expected);
          if (value === input.expected) value = input.value;
        }
        history.push(ok(input, pending.call, ++time, output));
      }
    }
    const result = checkLinearizability(history);
    expect(result.kind).toBe("linearizable");
  });
});
