import { describe, expect, it } from "vitest";
import { createKvStore } from "../../src/kv/index.js";
import type { ApplyResult } from "../../src/kv/index.js";
import {
  CompareResult,
  CompareTarget,
  applyAll,
  cmpNumber,
  cmpValue,
  dump,
  expectKind,
  getReq,
  opDelete,
  opGet,
  opPut,
  opRange,
  plain,
  putCmd,
  s,
  txnCmd,
} from "./helpers.js";

const errorOf = (result: ApplyResult) => (result.kind === "error" ? result.error.detail : undefined);

describe("txn", () => {
  it("compare-and-swap succeeds on the expected value and fails otherwise", () => {
    const store = createKvStore();
    applyAll(store, putCmd("lock", "free"));
    const cas = (from: string, to: string) => txnCmd([cmpValue("lock", CompareResult.EQUAL, from)], [opPut("lock", to)], [opGet("lock")]);

    const won = expectKind(applyAll(store, cas("free", "alice"))[0]!, "txn").response;
    expect(won.succeeded).toBe(true);
    expect(Number(won.header?.revision)).toBe(2);

    const lost = expectKind(applyAll(store, cas("free", "bob"))[0]!, "txn").response;
    expect(lost.succeeded).toBe(false);
    const got = lost.responses[0]?.response;
    expect(got?.case === "get" && plain(got.value.kv)?.value).toBe("alice");
    expect(Number(lost.header?.revision)).toBe(2);
    expect(store.revision).toBe(2);
  });

  it("compares version, mod_revision and create_revision, with 0 for a missing key", () => {
    const store = createKvStore();
    applyAll(store, putCmd("a", "1"), putCmd("b", "1"), putCmd("a", "2"));
    const holds = (compare: Parameters<typeof txnCmd>[0][number]) =>
      expectKind(applyAll(store, txnCmd([compare], []))[0]!, "txn").response.succeeded;
    expect(holds(cmpNumber("a", CompareTarget.VERSION, CompareResult.EQUAL, 2))).toBe(true);
    expect(holds(cmpNumber("a", CompareTarget.MOD_REVISION, CompareResult.GREATER, 2))).toBe(true);
    expect(holds(cmpNumber("a", CompareTarget.CREATE_REVISION, CompareResult.EQUAL, 1))).toBe(true);
    expect(holds(cmpNumber("b", CompareTarget.CREATE_REVISION, CompareResult.LESS, 2))).toBe(false);
    expect(holds(cmpNumber("missing", CompareTarget.VERSION, CompareResult.EQUAL, 0))).toBe(true);
    expect(holds(cmpNumber("missing", CompareTarget.CREATE_REVISION, CompareResult.NOT_EQUAL, 0))).toBe(false);
    // A VALUE compare never holds on a missing key, whatever the operator.
    expect(holds(cmpValue("missing", CompareResult.NOT_EQUAL, "x"))).toBe(false);
    expect(holds(cmpValue("missing", CompareResult.EQUAL, ""))).toBe(false);
    expect(holds(cmpValue("a", CompareResult.GREATER, "1"))).toBe(true);
    expect(holds(cmpValue("a", CompareResult.LESS, "10"))).toBe(false);
  });

  it("writes every key at one revision, and reads see earlier writes of the same list", () => {
    const store = createKvStore();
    applyAll(store, putCmd("old", "x"), putCmd("keep", "y"));
    const response = expectKind(
      applyAll(store, txnCmd([], [opPut("n1", "1"), opPut("n2", "2"), opDelete("old"), opRange("n"), opGet("old")]))[0]!,
      "txn",
    ).response;
    expect(response.succeeded).toBe(true);
    expect(store.revision).toBe(3);
    expect(dump(store)).toEqual(["keep=y@2/1", "n1=1@3/1", "n2=2@3/1"]);
    const range = response.responses[3]?.response;
    expect(range?.case === "range" && range.value.kvs.map((kv) => s(kv.key))).toEqual(["n1", "n2"]);
    const get = response.responses[4]?.response;
    expect(get?.case === "get" && get.value.kv).toBeUndefined();
    // Nested responses report the transaction's revision.
    expect(response.responses.map((op) => Number(op.response.value?.header?.revision))).toEqual([3, 3, 3, 3, 3]);
  });

  it("a read-only or no-op txn does not change the revision", () => {
    const store = createKvStore();
    applyAll(store, putCmd("a", "1"));
    applyAll(store, txnCmd([], [opGet("a"), opRange("")]), txnCmd([], [opDelete("nothing-here")]));
    expect(store.revision).toBe(1);
  });

  it("refuses two writes of one key in one list, before writing anything", () => {
    const store = createKvStore();
    applyAll(store, putCmd("a", "1"));
    const twice = applyAll(store, txnCmd([], [opPut("b", "1"), opPut("b", "2")]))[0]!;
    expect(errorOf(twice)).toMatchObject({ kind: "duplicateKeyInTxn" });
    const underDelete = applyAll(store, txnCmd([], [opDelete("x/", true), opPut("x/1", "v")]))[0]!;
    expect(errorOf(underDelete)).toMatchObject({ kind: "duplicateKeyInTxn" });
    const inFailure = applyAll(store, txnCmd([], [], [opPut("c", "1"), opDelete("c")]))[0]!;
    expect(errorOf(inFailure)).toMatchObject({ kind: "duplicateKeyInTxn" });
    // Overlapping deletes are fine: the second finds fewer keys.
    expectKind(applyAll(store, txnCmd([], [opDelete("a"), opDelete("", true)]))[0]!, "txn");
    expect(store.keyCount).toBe(0);
  });

  it("enforces txnOpsMax on compares and on each list", () => {
    const store = createKvStore({ txnOpsMax: 2 });
    const three = [opPut("a", "1"), opPut("b", "1"), opPut("c", "1")];
    expect(errorOf(applyAll(store, txnCmd([], three))[0]!)).toMatchObject({
      kind: "limitExceeded",
      limit: "txnOpsMax",
      field: "txn.success",
    });
    expect(errorOf(applyAll(store, txnCmd([], [], three))[0]!)).toMatchObject({ field: "txn.failure" });
    const compares = ["a", "b", "c"].map((k) => cmpNumber(k, CompareTarget.VERSION, CompareResult.EQUAL, 0));
    expect(errorOf(applyAll(store, txnCmd(compares, []))[0]!)).toMatchObject({ field: "txn.compare" });
    expect(store.revision).toBe(0);
  });

  it("names the failing nested field", () => {
    const store = createKvStore({ keyBytesMax: 4, valueBytesMax: 4, responseBytesMax: 8 });
    const result = applyAll(store, txnCmd([], [opPut("ok", "v"), opPut("ok2", "too long")]))[0]!;
    expect(errorOf(result)).toMatchObject({ kind: "limitExceeded", field: "txn.success[1].put.value", actual: 8, max: 4 });
    const unspecified = applyAll(store, txnCmd([{ key: new TextEncoder().encode("k") }], []))[0]!;
    expect(errorOf(unspecified)).toMatchObject({ kind: "invalidArgument", field: "txn.compare[0].target" });
    const emptyOp = applyAll(store, txnCmd([], [{}]))[0]!;
    expect(errorOf(emptyOp)).toMatchObject({ kind: "invalidArgument", field: "txn.success[0]" });
    expect(store.get(getReq("ok")).kv).toBeUndefined();
  });

  it("shares the response budget among the ranges of one txn", () => {
    const store = createKvStore({ keyBytesMax: 2, valueBytesMax: 8, responseBytesMax: 20 });
    applyAll(store, putCmd("a1", "12345678"), putCmd("a2", "12345678"), putCmd("b1", "12345678"));
    const response = expectKind(applyAll(store, txnCmd([], [opRange("a"), opRange("b")]))[0]!, "txn").response;
    const [first, second] = response.responses.map((op) => (op.response.case === "range" ? op.response.value : undefined));
    expect([first?.kvs.length, first?.more]).toEqual([2, false]);
    expect([second?.kvs.length, second?.more, s(second?.nextKey ?? new Uint8Array())]).toEqual([0, true, "b1"]);
  });
});
