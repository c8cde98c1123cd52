import { describe, expect, it } from "vitest";
import { createKvStore, encodeCommand } from "../../src/kv/index.js";
import type { ApplyResult } from "../../src/kv/index.js";
import { applyAll, b, deleteCmd, expectKind, getReq, opPut, plain, putCmd, txnCmd } from "./helpers.js";

const errorOf = (result: ApplyResult) => (result.kind === "error" ? result.error.detail : undefined);

describe("exactly-once sessions", () => {
  it("a retry returns the first result and does not apply again", () => {
    const store = createKvStore();
    const id = { clientId: "c1", sequence: 1 };
    const first = expectKind(store.apply(1, putCmd("counter", "1", { id, prevKv: true })), "put");
    store.apply(2, putCmd("other", "x"));
    const retry = expectKind(store.apply(3, putCmd("counter", "1", { id, prevKv: true })), "put");
    expect(first.replayed).toBe(false);
    expect(retry.replayed).toBe(true);
    expect(Number(retry.response.header?.revision)).toBe(1);
    expect(store.revision).toBe(2);
    expect(plain(store.get(getReq("counter")).kv)?.version).toBe(1);
  });

  it("hands out copies: changing a returned result does not change the remembered one", () => {
    const store = createKvStore();
    const id = { clientId: "c1", sequence: 1 };
    const first = expectKind(store.apply(1, putCmd("k", "v", { id })), "put");
    if (first.response.header) first.response.header.raftTerm = 99n;
    const retry = expectKind(store.apply(2, putCmd("k", "v", { id })), "put");
    expect(retry.response.header?.raftTerm).toBe(0n);
    if (retry.response.header) retry.response.header.revision = 42n;
    expect(Number(expectKind(store.apply(3, putCmd("k", "v", { id })), "put").response.header?.revision)).toBe(1);
  });

  it("replays txn and delete results too, with the kind of the first result", () => {
    const store = createKvStore();
    store.apply(1, putCmd("a", "1"));
    const txn = txnCmd([], [opPut("b", "2")], [], { clientId: "t", sequence: 5 });
    expectKind(store.apply(2, txn), "txn");
    expect(expectKind(store.apply(3, txn), "txn").replayed).toBe(true);
    const del = deleteCmd("a", { id: { clientId: "d", sequence: 1 } });
    expect(Number(expectKind(store.apply(4, del), "delete").response.deleted)).toBe(1);
    const again = expectKind(store.apply(5, del), "delete");
    expect([again.replayed, Number(again.response.deleted)]).toEqual([true, 1]);
    expect(store.revision).toBe(3);
  });

  it("refuses a sequence reused for another kind of request, applying nothing (found by review: it was an Internal error)", () => {
    const store = createKvStore();
    const id = { clientId: "c1", sequence: 1 };
    expectKind(store.apply(1, putCmd("k", "v", { id })), "put");
    expect(errorOf(store.apply(2, deleteCmd("k", { id })))).toEqual({
      kind: "sequenceReused",
      clientId: "c1",
      sequence: 1,
      appliedAs: "put",
    });
    expect(plain(store.get(getReq("k")).kv)?.version).toBe(1);
    expect(store.revision).toBe(1);
  });

  it("rejects a sequence below the latest as stale, and accepts gaps upward", () => {
    const store = createKvStore();
    store.apply(1, putCmd("k", "a", { id: { clientId: "c", sequence: 1 } }));
    store.apply(2, putCmd("k", "b", { id: { clientId: "c", sequence: 5 } }));
    const stale = store.apply(3, putCmd("k", "c", { id: { clientId: "c", sequence: 4 } }));
    expect(errorOf(stale)).toEqual({ kind: "staleSequence", clientId: "c", sequence: 4, latest: 5 });
    expect(plain(store.get(getReq("k")).kv)?.value).toBe("b");
    expect(store.revision).toBe(2);
  });

  it("does not remember a request that failed validation: its retry fails the same way", () => {
    const store = createKvStore({ keyBytesMax: 4, valueBytesMax: 4, responseBytesMax: 8 });
    const id = { clientId: "c", sequence: 1 };
    expect(errorOf(store.apply(1, putCmd("k", "toolong", { id })))).toMatchObject({ kind: "limitExceeded" });
    expect(store.sessionCount).toBe(0);
    expect(errorOf(store.apply(2, putCmd("k", "toolong", { id })))).toMatchObject({ kind: "limitExceeded" });
  });

  it("validates the session fields", () => {
    const store = createKvStore({ clientIdBytesMax: 4 });
    const noClient = encodeCommand({ sequence: 3n, op: { case: "put", value: { key: b("k") } } });
    expect(errorOf(store.apply(1, noClient))).toMatchObject({ kind: "invalidArgument", field: "sequence" });
    const zero = encodeCommand({ clientId: "c", op: { case: "put", value: { key: b("k") } } });
    expect(errorOf(store.apply(2, zero))).toMatchObject({ kind: "invalidArgument", field: "sequence" });
    const huge = encodeCommand({ clientId: "c", sequence: 2n ** 60n, op: { case: "put", value: { key: b("k") } } });
    expect(errorOf(store.apply(3, huge))).toMatchObject({ kind: "invalidArgument", field: "sequence" });
    expect(errorOf(store.apply(4, putCmd("k", "v", { id: { clientId: "ééé", sequence: 1 } })))).toMatchObject({
      kind: "limitExceeded",
      limit: "clientIdBytesMax",
      actual: 6,
    });
  });

  it("expires a client idle for more than sessionIdleEntries log entries", () => {
    const store = createKvStore({ sessionIdleEntries: 10 });
    const id = { clientId: "idle", sequence: 1 };
    store.apply(1, putCmd("k", "v", { id }));
    // Entry 11 is 10 entries later: still remembered, and the retry refreshes it.
    expect(expectKind(store.apply(11, putCmd("k", "v", { id })), "put").replayed).toBe(true);
    expect(store.sessionCount).toBe(1);
    // 11 entries after the last sighting the session is gone: the same request applies as new.
    const late = expectKind(store.apply(22, putCmd("k", "v", { id })), "put");
    expect(late.replayed).toBe(false);
    expect(store.revision).toBe(2);
  });

  it("expiry is driven by the log index alone, also by entries without sessions or that fail", () => {
    const store = createKvStore({ sessionIdleEntries: 3 });
    store.apply(1, putCmd("k", "v", { id: { clientId: "a", sequence: 1 } }));
    store.apply(2, putCmd("k", "v", { id: { clientId: "b", sequence: 1 } }));
    store.apply(5, new Uint8Array([0xff]));
    expect(store.sessionCount).toBe(1);
    store.apply(6, new Uint8Array([0xff]));
    expect(store.sessionCount).toBe(0);
  });

  it("evicts the least recently seen session when sessionsMax is reached", () => {
    const store = createKvStore({ sessionsMax: 2 });
    store.apply(1, putCmd("k", "1", { id: { clientId: "a", sequence: 1 } }));
    store.apply(2, putCmd("k", "2", { id: { clientId: "b", sequence: 1 } }));
    // A retry counts as a sighting, so "a" becomes the most recently seen.
    store.apply(3, putCmd("k", "1", { id: { clientId: "a", sequence: 1 } }));
    store.apply(4, putCmd("k", "3", { id: { clientId: "c", sequence: 1 } }));
    expect(store.sessionCount).toBe(2);
    expect(expectKind(store.apply(5, putCmd("k", "1", { id: { clientId: "a", sequence: 1 } })), "put").replayed).toBe(true);
    expect(expectKind(store.apply(6, putCmd("k", "2", { id: { clientId: "b", sequence: 1 } })), "put").replayed).toBe(false);
  });

  it("beyond sessionsBytesMax drops the oldest results but keeps every sequence: a retry is never applied twice", () => {
    const options = { keyBytesMax: 8, valueBytesMax: 100, responseBytesMax: 108, sessionsBytesMax: 400 };
    const store = createKvStore(options);
    const big = "x".repeat(100);
    store.apply(1, putCmd("k1", big));
    store.apply(2, putCmd("k2", big));
    store.apply(3, putCmd("k3", big));
    // Each result is charged ~170 bytes (a 100-byte prev_kv plus overhead): two fit under 400, the
    // third drops the data of the least recently seen result ("a"), not its session.
    store.apply(4, putCmd("k1", big, { prevKv: true, id: { clientId: "a", sequence: 1 } }));
    store.apply(5, putCmd("k2", big, { prevKv: true, id: { clientId: "b", sequence: 1 } }));
    store.apply(6, putCmd("k3", big, { prevKv: true, id: { clientId: "c", sequence: 1 } }));
    expect(store.sessionCount).toBe(3);
    const revision = store.revision;

    const retryA = store.apply(7, putCmd("k1", big, { prevKv: true, id: { clientId: "a", sequence: 1 } }));
    expect(errorOf(retryA)).toEqual({ kind: "resultNotRetained", clientId: "a", sequence: 1, revision: 4 });
    expect(store.revision).toBe(revision);
    expect(expectKind(store.apply(8, putCmd("k2", big, { prevKv: true, id: { clientId: "b", sequence: 1 } })), "put").replayed).toBe(true);
    expect(expectKind(store.apply(9, putCmd("k3", big, { prevKv: true, id: { clientId: "c", sequence: 1 } })), "put").replayed).toBe(true);

    // A snapshot carries the dropped state: a restored replica refuses the retry the same way.
    const restored = createKvStore(options);
    restored.restore(store.encodeSnapshot());
    expect(restored.encodeSnapshot()).toEqual(store.encodeSnapshot());
    const again = restored.apply(10, putCmd("k1", big, { prevKv: true, id: { clientId: "a", sequence: 1 } }));
    expect(errorOf(again)).toEqual({ kind: "resultNotRetained", clientId: "a", sequence: 1, revision: 4 });
    expect(restored.revision).toBe(revision);
    // The client's next sequence applies normally and is remembered whole again.
    expect(expectKind(restored.apply(11, putCmd("k1", "y", { id: { clientId: "a", sequence: 2 } })), "put").replayed).toBe(false);
    expect(expectKind(restored.apply(12, putCmd("k1", "y", { id: { clientId: "a", sequence: 2 } })), "put").replayed).toBe(true);
  });

  it("with default limits, 70 clients writing 1 MiB prev_kv results do not make a retry apply twice", () => {
    // Found by review: byte eviction forgot whole sessions, so ~64 large results made any other
    // client's retry a second apply.
    const store = createKvStore();
    const mib = "v".repeat(1 << 20);
    let index = 0;
    store.apply(++index, putCmd("doc", mib));
    const a = putCmd("doc", "from A", { prevKv: true, id: { clientId: "A", sequence: 1 } });
    expectKind(store.apply(++index, a), "put");
    for (let c = 0; c < 70; c++) store.apply(++index, putCmd("doc", mib, { prevKv: true, id: { clientId: `C${c}`, sequence: 1 } }));
    const revision = store.revision;
    expect(errorOf(store.apply(index + 1, a))?.kind).toBe("resultNotRetained");
    expect(store.revision).toBe(revision);
  });

  it("refuses to apply an index twice or out of order", () => {
    const store = createKvStore();
    applyAll(store, putCmd("k", "v"));
    expect(() => store.apply(1, putCmd("k", "w"))).toThrow(/applied once each, in log order/);
  });
});
