import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CompareResult, CompareTarget, EventType, type WatchResponse } from "../../gen/raftkv/v1/kv_pb.js";
import { NotLeaderError, OverloadedError, ReadFailedError } from "../../src/driver/errors.js";
import { errorReason, leaderHeader } from "../../src/rpc/index.js";
import { encodeCommand } from "../../src/kv/index.js";
import { FakeNode } from "./fake-node.js";
import { bytes, createHarness, text } from "./harness.js";

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

describe("KvService", () => {
  it("puts, gets, ranges and deletes with headers naming the node, its term and the revision", async () => {
    const { kv, node } = createHarness();
    const put = await kv.put({ key: bytes("a"), value: bytes("1") });
    expect(put.header).toMatchObject({ revision: 1n, raftTerm: 3n, memberId: 1n });
    await kv.put({ key: bytes("b"), value: bytes("2") });
    const replaced = await kv.put({ key: bytes("a"), value: bytes("3"), prevKv: true });
    expect(text(replaced.prevKv?.value)).toBe("1");

    const got = await kv.get({ key: bytes("a") });
    expect(text(got.kv?.value)).toBe("3");
    expect(got.kv).toMatchObject({ createRevision: 1n, modRevision: 3n, version: 2n });
    expect(got.header).toMatchObject({ revision: 3n, raftTerm: 3n, memberId: 1n });

    const range = await kv.range({ key: new Uint8Array(), prefix: true, limit: 1n });
    expect(range.kvs.map((k) => text(k.key))).toEqual(["a"]);
    expect(range).toMatchObject({ count: 2n, more: true });
    expect(text(range.nextKey)).toBe("b");

    const deleted = await kv.delete({ key: bytes("a"), prevKv: true });
    expect(deleted.deleted).toBe(1n);
    expect((await kv.get({ key: bytes("a") })).kv).toBeUndefined();
    expect(node.proposals).toHaveLength(4);
  });

  it("refuses writes that add data once the store reaches its space quota, and keeps reads and deletes working", async () => {
    // 1 + 20 bytes per key: the quota is reached with the third key.
    const { kv, cluster, node } = createHarness({ quotaBytes: 60 });
    for (const key of ["a", "b", "c"]) await kv.put({ key: bytes(key), value: bytes("v".repeat(20)) });
    expect(node.store.dataBytes).toBe(63);
    const refused = await rejection(kv.put({ key: bytes("d"), value: bytes("x") }));
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(errorReason(refused)).toBe("quota-exceeded");
    const txnPut = await rejection(kv.txn({ success: [{ request: { case: "put", value: { key: bytes("e"), value: bytes("x") } } }] }));
    expect(errorReason(txnPut)).toBe("quota-exceeded");
    expect(node.proposals).toHaveLength(3);
    // Status says why.
    expect((await cluster.status({})).status?.alarms.some((a) => a.startsWith("space quota reached"))).toBe(true);
    // Reads, deletes and a Txn that only deletes still work; freeing space lets writes in again.
    expect(text((await kv.get({ key: bytes("a") })).kv?.value)).toHaveLength(20);
    await kv.txn({ success: [{ request: { case: "delete", value: { key: bytes("a") } } }] });
    await kv.delete({ key: bytes("b") });
    expect(node.store.dataBytes).toBe(21);
    await kv.put({ key: bytes("d"), value: bytes("x") });
    expect((await cluster.status({})).status?.alarms).toEqual([]);
  });

  it("reads through the barrier by default and skips it when serializable", async () => {
    const { kv, node } = createHarness();
    await kv.get({ key: bytes("k") });
    await kv.range({ key: bytes("k"), prefix: true });
    expect(node.barriers).toBe(2);
    await kv.get({ key: bytes("k"), serializable: true });
    await kv.range({ key: bytes("k"), serializable: true });
    expect(node.barriers).toBe(2);
  });

  it("answers a write on a follower with Unavailable and the leader's client URL", async () => {
    const { kv, node } = createHarness();
    node.fail = (kind) => (kind === "mutate" ? new NotLeaderError(2, "http://127.0.0.1:22379") : undefined);
    const error = await rejection(kv.put({ key: bytes("k"), value: bytes("v") }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.metadata.get(leaderHeader)).toBe("http://127.0.0.1:22379");
    // Reads are served by followers (the leader confirms the read index), so they are not redirected.
    expect((await kv.get({ key: bytes("k") })).kv).toBeUndefined();
  });

  it("admits by this node's limits, not the store's: a rolling change of a flag cannot split replicas", async () => {
    // The store (every replica) applies with its own shared limits; the flags only gate proposals.
    const admission = { keyBytesMax: 8, valueBytesMax: 4, txnOpsMax: 2, clientIdBytesMax: 256 };
    const { kv, node } = createHarness({ admission });
    const refused = await rejection(kv.put({ key: bytes("k"), value: bytes("12345") }));
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.rawMessage).toContain("5 exceeds the limit of 4");
    expect(node.proposals).toHaveLength(0);
    await kv.put({ key: bytes("k"), value: bytes("1234") });
    expect(node.proposals).toHaveLength(1);
    // An entry admitted by a member with a larger flag applies on this one all the same.
    expect(
      node.store.apply(
        node.store.appliedIndex + 1,
        encodeCommand({ op: { case: "put", value: { key: bytes("k"), value: bytes("123456789") } } }),
      ).kind,
    ).toBe("applied");
  });

  it("refuses bad input before it costs a log entry, naming the field", async () => {
    const { kv, node } = createHarness({
      node: new FakeNode(1, { keyBytesMax: 8, valueBytesMax: 16, txnOpsMax: 2, responseBytesMax: 1024 }),
    });
    const empty = await rejection(kv.put({ key: new Uint8Array(), value: bytes("v") }));
    expect(empty.code).toBe(Code.InvalidArgument);
    expect(empty.rawMessage).toContain("put.key");

    const longKey = await rejection(kv.put({ key: bytes("123456789"), value: bytes("v") }));
    expect(longKey.code).toBe(Code.ResourceExhausted);
    expect(longKey.rawMessage).toContain("9 exceeds the limit of 8");

    const bigValue = await rejection(kv.put({ key: bytes("k"), value: new Uint8Array(17) }));
    expect(bigValue.code).toBe(Code.ResourceExhausted);

    const put = (key: string) => ({ request: { case: "put" as const, value: { key: bytes(key), value: bytes("v") } } });
    const tooManyOps = await rejection(kv.txn({ success: [put("a"), put("b"), put("c")] }));
    expect(tooManyOps.code).toBe(Code.ResourceExhausted);
    expect(tooManyOps.rawMessage).toContain("txn.success");

    const twice = await rejection(kv.txn({ success: [put("a"), put("a")] }));
    expect(twice.code).toBe(Code.InvalidArgument);

    const noSequence = await rejection(kv.put({ key: bytes("k"), value: bytes("v"), clientId: "c" }));
    expect(noSequence.code).toBe(Code.InvalidArgument);
    expect(noSequence.rawMessage).toContain("sequence");

    const badRead = await rejection(kv.get({ key: new Uint8Array() }));
    expect(badRead.code).toBe(Code.InvalidArgument);
    expect(node.proposals).toHaveLength(0);
    expect(node.barriers).toBe(0);
  });

  it("applies a retried (client_id, sequence) once and refuses an older sequence", async () => {
    const { kv } = createHarness();
    const first = await kv.put({ key: bytes("k"), value: bytes("v1"), clientId: "c1", sequence: 1n });
    const retry = await kv.put({ key: bytes("k"), value: bytes("v1"), clientId: "c1", sequence: 1n });
    expect(retry.header?.revision).toBe(first.header?.revision);
    expect((await kv.get({ key: bytes("k") })).kv?.version).toBe(1n);

    await kv.put({ key: bytes("k"), value: bytes("v2"), clientId: "c1", sequence: 2n });
    const stale = await rejection(kv.put({ key: bytes("k"), value: bytes("v0"), clientId: "c1", sequence: 1n }));
    expect(stale.code).toBe(Code.FailedPrecondition);
    expect(errorReason(stale)).toBe("stale-sequence");
  });

  it("runs a compare-and-swap Txn", async () => {
    const { kv } = createHarness();
    await kv.put({ key: bytes("k"), value: bytes("v1") });
    const cas = (expected: string, next: string) =>
      kv.txn({
        compare: [{ key: bytes("k"), target: CompareTarget.VALUE, result: CompareResult.EQUAL, value: bytes(expected) }],
        success: [{ request: { case: "put", value: { key: bytes("k"), value: bytes(next) } } }],
        failure: [{ request: { case: "get", value: { key: bytes("k") } } }],
      });
    const won = await cas("v1", "v2");
    expect(won.succeeded).toBe(true);
    expect(won.header).toMatchObject({ revision: 2n, memberId: 1n });
    const lost = await cas("v1", "v3");
    expect(lost.succeeded).toBe(false);
    const current = lost.responses[0]?.response;
    expect(current?.case === "get" ? text(current.value.kv?.value) : undefined).toBe("v2");
  });

  it("maps overload and failed read barriers", async () => {
    const { kv, node } = createHarness();
    node.fail = (kind) => (kind === "mutate" ? new OverloadedError("queue full") : new ReadFailedError("no quorum"));
    expect((await rejection(kv.put({ key: bytes("k"), value: bytes("v") }))).code).toBe(Code.ResourceExhausted);
    const read = await rejection(kv.get({ key: bytes("k") }));
    expect(read.code).toBe(Code.Unavailable);
    expect(errorReason(read)).toBe("read-failed");
  });

  it("ends a write that outlives its deadline with DeadlineExceeded and an unknown outcome", async () => {
    const { kv, node } = createHarness();
    node.hold = true;
    const error = await rejection(kv.put({ key: bytes("k"), value: bytes("v") }, { timeoutMs: 50 }));
    expect(error.code).toBe(Code.DeadlineExceeded);
  });

  it("gives a request without a deadline the server's default one", async () => {
    const { kv, node } = createHarness({ requestTimeoutMs: 50 });
    node.hold = true;
    const started = Date.now();
    const error = await rejection(kv.put({ key: bytes("k"), value: bytes("v") }));
    expect(error.code).toBe(Code.DeadlineExceeded);
    expect(errorReason(error)).toBe("unknown-outcome");
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("logs internal errors for the operator and tells the client nothing more", async () => {
    const { kv, node, logger } = createHarness();
    node.fail = () => new TypeError("x is undefined in apply()");
    const error = await rejection(kv.put({ key: bytes("k"), value: bytes("v") }));
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).not.toContain("apply");
    expect(logger.lines).toMatchObject([{ level: "error", fields: { method: "Put" } }]);
  });
});

describe("KvService Watch", () => {
  async function collect(stream: AsyncIterable<WatchResponse>, count: number): Promise<WatchResponse[]> {
    const messages: WatchResponse[] = [];
    for await (const message of stream) {
      messages.push(message);
      if (messages.length === count) break;
    }
    return messages;
  }

  it("confirms the watch, then streams history from start_revision and live changes", async () => {
    const { kv } = createHarness();
    await kv.put({ key: bytes("p/a"), value: bytes("1") });
    await kv.put({ key: bytes("q"), value: bytes("x") });
    await kv.put({ key: bytes("p/b"), value: bytes("2") });
    const controller = new AbortController();
    const stream = kv.watch({ key: bytes("p/"), prefix: true, startRevision: 1n, prevKv: true }, { signal: controller.signal });
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.value?.kind.case).toBe("events");
    const events: { type: EventType; key: string; value: string; revision: bigint }[] = [];
    while (events.length < 3) {
      if (events.length === 2) await kv.delete({ key: bytes("p/a") });
      const next = await iterator.next();
      const kind = next.value?.kind;
      if (kind?.case !== "events") throw new Error("expected events");
      for (const e of kind.value.events)
        events.push({ type: e.type, key: text(e.kv?.key), value: text(e.kv?.value), revision: e.kv?.modRevision ?? 0n });
    }
    expect(events).toEqual([
      { type: EventType.PUT, key: "p/a", value: "1", revision: 1n },
      { type: EventType.PUT, key: "p/b", value: "2", revision: 3n },
      { type: EventType.DELETE, key: "p/a", value: "", revision: 4n },
    ]);
    controller.abort();
  });

  it("with start_revision 0 reports changes after the revision of its first message, after a barrier", async () => {
    const { kv, node } = createHarness();
    await kv.put({ key: bytes("k"), value: bytes("old") });
    const iterator = kv.watch({ key: bytes("k") })[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.value?.header?.revision).toBe(1n);
    expect(node.barriers).toBe(1);
    await kv.put({ key: bytes("k"), value: bytes("new") });
    const next: IteratorResult<WatchResponse, undefined> = await iterator.next();
    const kind = next.value?.kind;
    expect(kind?.case === "events" ? kind.value.events.map((e) => text(e.kv?.value)) : []).toEqual(["new"]);
    await iterator.return?.();
  });

  it("ends with compacted when the history it needs is gone", async () => {
    const { kv } = createHarness({ node: new FakeNode(1, { watchHistoryMax: 2 }) });
    for (let i = 0; i < 5; i++) await kv.put({ key: bytes("k"), value: bytes(String(i)) });
    const messages = await collect(kv.watch({ key: bytes("k"), startRevision: 1n }), 2);
    expect(messages).toHaveLength(1);
    const kind = messages[0]?.kind;
    expect(kind?.case).toBe("compacted");
    expect(kind?.case === "compacted" ? kind.value.compactRevision : 0n).toBe(4n);
  });

  it("splits a backlog into messages of at most watchBatchEventsMax events", async () => {
    const { kv } = createHarness({ watchBatchEventsMax: 3 });
    for (let i = 0; i < 7; i++) await kv.put({ key: bytes(`k${i}`), value: bytes("v") });
    const messages = await collect(kv.watch({ key: bytes("k"), prefix: true, startRevision: 1n }), 4);
    expect(messages.map((m) => (m.kind.case === "events" ? m.kind.value.events.length : -1))).toEqual([0, 3, 3, 1]);
  });

  it("ends open streams with canceled when the server shuts down", async () => {
    const { kv, shutdown } = createHarness();
    const iterator = kv.watch({ key: bytes("k"), startRevision: 1n })[Symbol.asyncIterator]();
    await iterator.next();
    shutdown.abort();
    const last = await iterator.next();
    expect(last.value?.kind.case).toBe("canceled");
    expect((await iterator.next()).done).toBe(true);
  });

  it("refuses a watch of an empty key", async () => {
    const { kv } = createHarness();
    const error = await rejection(collect(kv.watch({ key: new Uint8Array() }), 1));
    expect(error.code).toBe(Code.InvalidArgument);
  });
});
