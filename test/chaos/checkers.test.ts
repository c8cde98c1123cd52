import { describe, expect, it } from "vitest";
import { checkExactlyOnce, missingRevisions } from "./check-exactly-once.js";
import { ABSENT, checkChaosLinearizability, toSimHistory } from "./check-linearizability.js";
import { checkLostWrites } from "./check-lost-writes.js";
import { checkReplicas } from "./check-replicas.js";
import type { ChaosOp, ChaosOutcome, WatchRecord } from "./history.js";
import { checkOneLeaderPerTerm, type StatusSample } from "./status-sampler.js";

/**
 * Checker self-test: every checker must reject the known-bad histories (a stale read, a lost write, a
 * double apply, a failed write that took effect, a phantom value, diverging replicas) and accept the
 * known-good ones, including the permissive cases (unknown outcomes, overlapping writes). Times are in
 * milliseconds here and converted to the history's microseconds.
 */
let nextId = 1;

interface Spec {
  readonly kind: ChaosOp["kind"];
  readonly key?: string;
  readonly value?: string;
  readonly expected?: string | null;
  readonly worker?: number;
  readonly sequence?: number;
  readonly attempts?: number;
  /** [invoked, completed] in ms. */
  readonly at: readonly [number, number];
}

function op(spec: Spec, outcome: ChaosOutcome): ChaosOp {
  return {
    id: nextId++,
    worker: spec.worker ?? 1,
    kind: spec.kind,
    key: spec.key ?? "k",
    ...(spec.value === undefined ? {} : { value: spec.value }),
    ...(spec.expected === undefined ? {} : { expected: spec.expected }),
    ...(spec.kind === "get" ? {} : { clientId: `c${spec.worker ?? 1}`, sequence: spec.sequence ?? nextId }),
    callUs: spec.at[0] * 1000,
    endUs: spec.at[1] * 1000,
    outcome,
    attempts: spec.attempts ?? 1,
    endpoint: "http://127.0.0.1:1",
  };
}

const put = (value: string, at: readonly [number, number], key = "k"): ChaosOp =>
  op({ kind: "put", key, value, at }, { status: "ok", output: { kind: "put", revision: 0 } });
const get = (value: string | null, at: readonly [number, number], key = "k"): ChaosOp =>
  op({ kind: "get", key, at }, { status: "ok", output: { kind: "get", value, revision: 0 } });
const del = (at: readonly [number, number], key = "k"): ChaosOp =>
  op({ kind: "delete", key, at }, { status: "ok", output: { kind: "delete", deleted: 1, revision: 0 } });
const cas = (expected: string | null, value: string, swapped: boolean, at: readonly [number, number], key = "k"): ChaosOp =>
  op({ kind: "cas", key, expected, value, at }, { status: "ok", output: { kind: "cas", swapped, revision: 0 } });
const unknownPut = (value: string, at: readonly [number, number], key = "k"): ChaosOp =>
  op({ kind: "put", key, value, at }, { status: "unknown", reason: "timeout" });
const failedPut = (value: string, at: readonly [number, number], key = "k"): ChaosOp =>
  op({ kind: "put", key, value, at }, { status: "fail", reason: "not-leader" });
const unknownDelete = (at: readonly [number, number], key = "k"): ChaosOp =>
  op({ kind: "delete", key, at }, { status: "unknown", reason: "timeout" });

const finalOf = (entries: [string, string | null][], callMs: number): { values: Map<string, string | null>; callUs: number } => ({
  values: new Map(entries),
  callUs: callMs * 1000,
});

describe("linearizability (WGL through the simulator's checker, deletes as writes of ABSENT)", () => {
  it("accepts a sequential history of every op kind", () => {
    const history = [
      get(null, [0, 1]),
      put("a", [2, 3]),
      get("a", [4, 5]),
      cas("a", "b", true, [6, 7]),
      cas("a", "c", false, [8, 9]),
      get("b", [10, 11]),
      del([12, 13]),
      get(null, [14, 15]),
      cas(null, "d", true, [16, 17]),
      get("d", [18, 19]),
    ];
    const verdict = checkChaosLinearizability(history);
    expect(verdict.kind).toBe("linearizable");
    expect(verdict.keys).toBe(1);
    expect(verdict.violation).toBeUndefined();
  });

  it("accepts concurrent ops in either order, and reads of a write still in flight", () => {
    const history = [put("a", [0, 10]), put("b", [1, 12]), get("a", [11, 13]), get("a", [2, 3]), get(null, [0, 1])];
    expect(checkChaosLinearizability(history).kind).toBe("linearizable");
  });

  it("rejects a stale read: a value overwritten before the read began", () => {
    const stale = get("a", [40, 50]);
    const verdict = checkChaosLinearizability([put("a", [0, 10]), put("b", [20, 30]), stale]);
    expect(verdict.kind).toBe("violation");
    expect(verdict.key).toBe("k");
    expect(verdict.violation?.kind).toBe("linearizability");
    expect(verdict.violation?.message).toContain(`op ${stale.id}`);
    expect(verdict.violation?.ops.map((o) => o.id)).toContain(stale.id);
  });

  it("rejects a read that resurrects a deleted value", () => {
    expect(checkChaosLinearizability([put("a", [0, 10]), del([20, 30]), get("a", [40, 50])]).kind).toBe("violation");
  });

  it("rejects reading absent after a write completed (a lost write seen by a read)", () => {
    expect(checkChaosLinearizability([put("a", [0, 10]), get(null, [20, 30])]).kind).toBe("violation");
  });

  it("lets an unknown write take effect at any later time, or never", () => {
    expect(checkChaosLinearizability([unknownPut("a", [0, 5]), get(null, [10, 11]), get("a", [100, 110])]).kind).toBe("linearizable");
    expect(checkChaosLinearizability([unknownPut("a", [0, 5]), get(null, [100, 110])]).kind).toBe("linearizable");
    // ...but never before it was invoked.
    expect(checkChaosLinearizability([get("a", [0, 5]), unknownPut("a", [10, 20])]).kind).toBe("violation");
  });

  it("treats a failed write as never applied: reading its value is a violation", () => {
    expect(checkChaosLinearizability([failedPut("a", [0, 5]), get("a", [10, 20])]).kind).toBe("violation");
  });

  it("rejects a CAS that swapped although the value differed, and one that failed although it matched", () => {
    expect(checkChaosLinearizability([put("a", [0, 1]), cas(null, "b", true, [2, 3])]).kind).toBe("violation");
    expect(checkChaosLinearizability([put("a", [0, 1]), cas("a", "b", false, [2, 3])]).kind).toBe("violation");
  });

  it("judges keys independently and reports the violating key", () => {
    const verdict = checkChaosLinearizability([
      put("a", [0, 1], "x"),
      get("a", [2, 3], "x"),
      put("b", [0, 1], "y"),
      get(null, [2, 3], "y"),
    ]);
    expect(verdict.kind).toBe("violation");
    expect(verdict.key).toBe("y");
  });

  it("translates deletes and absent values into the register's ABSENT value, with one initial write per key", () => {
    const history = toSimHistory([del([0, 1], "x"), get(null, [2, 3], "x"), cas(null, "v", true, [4, 5], "y")]);
    expect(history.filter((o) => o.call < 0).map((o) => o.input)).toEqual([
      { kind: "put", key: "x", value: ABSENT },
      { kind: "put", key: "y", value: ABSENT },
    ]);
    expect(
      history
        .map((o) => (o.input.kind === "put" || o.input.kind === "cas" ? o.input : undefined))
        .filter((i) => i !== undefined && i.key === "y"),
    ).toContainEqual({
      kind: "cas",
      key: "y",
      expected: ABSENT,
      value: "v",
    });
  });
});

describe("no acknowledged write lost (final read after healing)", () => {
  it("accepts a final value from the last acknowledged write", () => {
    const history = [put("a", [0, 10]), put("b", [20, 30])];
    expect(checkLostWrites(history, finalOf([["k", "b"]], 100))).toEqual([]);
  });

  it("rejects a final value older than an acknowledged write invoked after it completed", () => {
    const a = put("a", [0, 10]);
    const b = put("b", [20, 30]);
    const violations = checkLostWrites([a, b], finalOf([["k", "a"]], 100));
    expect(violations).toHaveLength(1);
    expect(violations[0]?.kind).toBe("lost-write");
    expect(violations[0]?.ops.map((o) => o.id)).toEqual([a.id, b.id]);
    expect(violations[0]?.message).toContain(`acknowledged write op ${b.id} is lost`);
  });

  it("rejects an absent key after an acknowledged put, and accepts it after a delete", () => {
    expect(checkLostWrites([put("a", [0, 10])], finalOf([["k", null]], 100))[0]?.kind).toBe("lost-write");
    expect(checkLostWrites([put("a", [0, 10]), del([20, 30])], finalOf([["k", null]], 100))).toEqual([]);
  });

  it("accepts either of two overlapping writes, and any value of an unknown write", () => {
    expect(checkLostWrites([put("a", [0, 20]), put("b", [10, 30])], finalOf([["k", "a"]], 100))).toEqual([]);
    expect(checkLostWrites([put("a", [0, 10]), unknownPut("b", [20, 30])], finalOf([["k", "b"]], 100))).toEqual([]);
    expect(checkLostWrites([put("a", [0, 10]), unknownDelete([20, 30])], finalOf([["k", null]], 100))).toEqual([]);
  });

  it("names a final value nobody wrote, and one written only by a failed op", () => {
    expect(checkLostWrites([put("a", [0, 10])], finalOf([["k", "zzz"]], 100))[0]?.kind).toBe("phantom-value");
    expect(checkLostWrites([failedPut("a", [0, 10])], finalOf([["k", "a"]], 100))[0]?.kind).toBe("failed-write-applied");
    expect(checkLostWrites([cas(null, "a", false, [0, 10])], finalOf([["k", "a"]], 100))[0]?.kind).toBe("failed-write-applied");
  });

  it("complains when the final read missed a written key", () => {
    expect(checkLostWrites([put("a", [0, 10], "other")], finalOf([], 100))[0]?.message).toContain("did not cover it");
  });
});

describe("exactly-once (unique values in the watch history)", () => {
  const event = (revision: number, value: string | null, key = "k"): WatchRecord => ({
    revision,
    type: value === null ? "delete" : "put",
    key,
    value,
  });

  it("accepts a history where every write appears once", () => {
    const a = put("a", [0, 10]);
    const b = put("b", [20, 30]);
    const d = del([40, 50]);
    expect(checkExactlyOnce([a, b, d], { events: [event(1, "a"), event(2, "b"), event(3, null)], complete: true })).toEqual([]);
  });

  it("rejects a double apply: one value at two revisions, naming the op's session", () => {
    const retried = op(
      { kind: "put", value: "a", at: [0, 10], worker: 3, sequence: 17, attempts: 2 },
      { status: "ok", output: { kind: "put", revision: 1 } },
    );
    const b = put("b", [20, 30]);
    const violations = checkExactlyOnce([retried, b], { events: [event(1, "a"), event(2, "b"), event(3, "a")], complete: true });
    expect(violations).toHaveLength(1);
    expect(violations[0]?.kind).toBe("double-apply");
    expect(violations[0]?.message).toContain("c3#17");
    expect(violations[0]?.message).toContain("revisions 1, 3");
  });

  it("does not mistake the same event delivered twice (a resumed watch) for a double apply", () => {
    expect(checkExactlyOnce([put("a", [0, 10])], { events: [event(1, "a"), event(1, "a")], complete: true })).toEqual([]);
  });

  it("rejects a write reported as not applied that took effect, and a value nobody wrote", () => {
    expect(checkExactlyOnce([failedPut("a", [0, 10])], { events: [event(1, "a")], complete: true }).map((v) => v.kind)).toEqual([
      "failed-write-applied",
    ]);
    expect(checkExactlyOnce([cas(null, "a", false, [0, 10])], { events: [event(1, "a")], complete: true }).map((v) => v.kind)).toEqual([
      "failed-write-applied",
    ]);
    expect(checkExactlyOnce([], { events: [event(1, "zzz")], complete: true }).map((v) => v.kind)).toEqual(["phantom-value"]);
  });

  it("requires acknowledged writes in a complete history only", () => {
    const a = put("a", [0, 10]);
    expect(checkExactlyOnce([a], { events: [], complete: true }).map((v) => v.kind)).toEqual(["unapplied-ack"]);
    expect(checkExactlyOnce([a], { events: [], complete: false })).toEqual([]);
    expect(checkExactlyOnce([unknownPut("u", [0, 10])], { events: [], complete: true })).toEqual([]);
  });

  it("counts deletes: a retried delete applied twice, a delete nobody issued, a failed delete applied (found by review: deletes were not judged)", () => {
    const a = put("a", [0, 10]);
    const b = put("b", [30, 40]);
    const retriedDelete = op(
      { kind: "delete", at: [20, 60], attempts: 2 },
      { status: "ok", output: { kind: "delete", deleted: 1, revision: 4 } },
    );
    const doubled = checkExactlyOnce([a, retriedDelete, b], {
      events: [event(1, "a"), event(2, null), event(3, "b"), event(4, null)],
      complete: true,
    });
    expect(doubled.map((v) => v.kind)).toEqual(["double-apply"]);
    expect(doubled[0]?.message).toContain("deleted at 2 revisions (2, 4) but only 1 delete op(s)");

    expect(checkExactlyOnce([a], { events: [event(1, "a"), event(2, null)], complete: true }).map((v) => v.kind)).toEqual(["double-apply"]);
    const failedDelete = op({ kind: "delete", at: [20, 30] }, { status: "fail", reason: "not-leader" });
    expect(checkExactlyOnce([a, failedDelete], { events: [event(1, "a"), event(2, null)], complete: true }).map((v) => v.kind)).toEqual([
      "double-apply",
    ]);
    // An unknown delete may explain one event; a delete that found nothing explains none.
    const nothingDeleted = op({ kind: "delete", at: [12, 14] }, { status: "ok", output: { kind: "delete", deleted: 0, revision: 1 } });
    expect(
      checkExactlyOnce([a, nothingDeleted, unknownDelete([20, 30])], { events: [event(1, "a"), event(2, null)], complete: true }),
    ).toEqual([]);
  });

  it("rejects an acknowledgement that names a revision holding another change", () => {
    const a = op({ kind: "put", value: "a", at: [0, 10] }, { status: "ok", output: { kind: "put", revision: 2 } });
    const b = op({ kind: "put", value: "b", at: [0, 10] }, { status: "ok", output: { kind: "put", revision: 1 } });
    expect(checkExactlyOnce([a, b], { events: [event(1, "a"), event(2, "b")], complete: true }).map((v) => v.kind)).toEqual([
      "ack-mismatch",
      "ack-mismatch",
    ]);
    const a1 = op({ kind: "put", value: "a", at: [0, 10] }, { status: "ok", output: { kind: "put", revision: 1 } });
    const gone = op({ kind: "delete", at: [20, 30] }, { status: "ok", output: { kind: "delete", deleted: 1, revision: 2 } });
    expect(checkExactlyOnce([a1, gone], { events: [event(1, "a"), event(2, null)], complete: true })).toEqual([]);
    expect(checkExactlyOnce([a1, gone], { events: [event(1, "a")], complete: true }).map((v) => v.kind)).toEqual(["unapplied-ack"]);
  });

  it("finds revisions a watch skipped", () => {
    expect(missingRevisions([event(1, "a"), event(3, "b")], 4)).toEqual({ count: 2, listed: [2, 4] });
    expect(missingRevisions([event(1, "a"), event(2, "b")], 2)).toEqual({ count: 0, listed: [] });
  });
});

describe("replica agreement", () => {
  const e = (revision: number, value: string): WatchRecord => ({ revision, type: "put", key: "k", value });

  it("accepts identical histories, duplicates included", () => {
    expect(
      checkReplicas(
        new Map([
          [1, [e(1, "a"), e(2, "b")]],
          [2, [e(1, "a"), e(2, "b"), e(2, "b")]],
        ]),
        2,
      ),
    ).toEqual([]);
  });

  it("rejects two nodes with different changes at one revision", () => {
    const violations = checkReplicas(
      new Map([
        [1, [e(1, "a"), e(2, "b")]],
        [3, [e(1, "a"), e(2, "c")]],
      ]),
      2,
    );
    expect(violations).toHaveLength(1);
    expect(violations[0]?.kind).toBe("replica-divergence");
    expect(violations[0]?.message).toContain("node 1 and node 3 disagree at revision 2: node 1 has put k=b, node 3 has put k=c");
  });
});

describe("one leader per term (from sampled Status)", () => {
  const sample = (atMs: number, node: number, role: string, term: number): StatusSample => ({
    atMs,
    node,
    role,
    term,
    leader: role === "LEADER" ? node : 0,
    commit: 0,
    applied: 0,
  });

  it("accepts a leader per term, re-elections and silent nodes", () => {
    const samples = [
      sample(0, 1, "LEADER", 2),
      sample(0, 2, "FOLLOWER", 2),
      { atMs: 0, node: 3 },
      sample(500, 2, "LEADER", 3),
      sample(500, 1, "LEADER", 2),
    ];
    expect(checkOneLeaderPerTerm(samples)).toEqual([]);
  });

  it("rejects two nodes leading one term, once per term", () => {
    const samples = [sample(0, 1, "LEADER", 4), sample(500, 3, "LEADER", 4), sample(1000, 3, "LEADER", 4)];
    const violations = checkOneLeaderPerTerm(samples);
    expect(violations).toHaveLength(1);
    expect(violations[0]?.kind).toBe("two-leaders");
    expect(violations[0]?.message).toContain("node 1 (at 0 ms) and node 3 (at 500 ms) both reported being leader of term 4");
  });

  it("tells members apart, not nodes: a node that rejoined under a new id is another member", () => {
    // Node 3 led term 4 as member 3; removed and started again with --join, it is member 4. Had the new
    // member led term 4 too, two voters would have won one term.
    const samples = [
      { ...sample(0, 3, "LEADER", 4), member: 3 },
      { ...sample(9000, 3, "LEADER", 4), member: 4 },
    ];
    expect(checkOneLeaderPerTerm(samples)[0]?.message).toContain("node 3 (at 0 ms) and node 3 (member 4) (at 9000 ms)");
    expect(
      checkOneLeaderPerTerm([
        { ...sample(0, 3, "LEADER", 4), member: 4 },
        { ...sample(500, 3, "LEADER", 4), member: 4 },
      ]),
    ).toEqual([]);
  });
});
