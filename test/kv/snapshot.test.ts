import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { KvSnapshotSchema } from "../../gen/raftkv/v1/command_pb.js";
import { KeyValueSchema, RangeRequestSchema } from "../../gen/raftkv/v1/kv_pb.js";
import { createKvStore } from "../../src/kv/index.js";
import type { KvStore } from "../../src/kv/index.js";
import { createPrng } from "../../src/lib/prng.js";
import { applyAll, b, deleteCmd, dump, expectKind, opPut, putCmd, txnCmd, watchReq } from "./helpers.js";
import { randomCommands } from "./workload.js";

const small = { watchHistoryMax: 50, sessionsMax: 3, sessionIdleEntries: 40 };

function feed(store: KvStore, commands: readonly Uint8Array[]): void {
  for (const command of commands) store.apply(store.appliedIndex + 1, command);
}

describe("snapshot", () => {
  it("round-trips: a restored store re-encodes the same bytes and holds the same keys", () => {
    const store = createKvStore(small);
    feed(store, randomCommands(createPrng(7), 400));
    const bytes = store.encodeSnapshot();
    const restored = createKvStore(small);
    restored.restore(bytes);
    expect(restored.encodeSnapshot()).toEqual(bytes);
    expect(dump(restored)).toEqual(dump(store));
    expect([restored.revision, restored.appliedIndex, restored.compactRevision, restored.sessionCount]).toEqual([
      store.revision,
      store.appliedIndex,
      store.compactRevision,
      store.sessionCount,
    ]);
    expect(restored.eventsSince(watchReq("", restored.compactRevision, { prefix: true }))).toEqual(
      store.eventsSince(watchReq("", store.compactRevision, { prefix: true })),
    );
  });

  it("is deterministic: stores fed the same entries encode byte-identical snapshots, restored or not", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const commands = randomCommands(createPrng(seed), 600);
      const a = createKvStore(small);
      const b = createKvStore(small);
      const c = createKvStore(small);
      feed(a, commands.slice(0, 300));
      feed(b, commands.slice(0, 300));
      expect(a.encodeSnapshot(), `seed ${seed} at 300`).toEqual(b.encodeSnapshot());
      // c joins from a snapshot, as a lagging follower would, then applies the rest of the log.
      c.restore(a.encodeSnapshot());
      feed(a, commands.slice(300));
      feed(b, commands.slice(300));
      feed(c, commands.slice(300));
      expect(a.encodeSnapshot(), `seed ${seed} at 600`).toEqual(b.encodeSnapshot());
      expect(c.encodeSnapshot(), `seed ${seed} restored`).toEqual(a.encodeSnapshot());
      expect(a.revision).toBeGreaterThan(50);
      // The space quota's count, kept incrementally, equals the live keys' bytes counted afresh, on a
      // store that applied everything and on one that restored a snapshot midway.
      const live = a.range(create(RangeRequestSchema, { key: new Uint8Array(0), prefix: true })).kvs;
      const counted = live.reduce((sum, kv) => sum + kv.key.length + kv.value.length, 0);
      expect(a.dataBytes, `seed ${seed}`).toBe(counted);
      expect(c.dataBytes, `seed ${seed} restored`).toBe(counted);
    }
  });

  it("streams the same bytes in chunks, frozen at the moment the chunks were asked for", () => {
    const store = createKvStore({ ...small, snapshotChunkBytes: 256 });
    feed(store, randomCommands(createPrng(3), 300));
    const whole = store.encodeSnapshot();
    const chunks = store.snapshotChunks()[Symbol.iterator]();
    const first = chunks.next();
    // Entries applied while the chunks are consumed do not leak into them.
    feed(store, randomCommands(createPrng(4), 50));
    const rest = [...{ [Symbol.iterator]: () => chunks }];
    const parts = [first.value as Uint8Array, ...rest];
    expect(parts.length).toBeGreaterThan(3);
    expect(Uint8Array.from(parts.flatMap((part) => Array.from(part)))).toEqual(whole);
  });

  it("writes protobuf's canonical encoding: re-encoding the decoded message gives the same bytes", () => {
    const store = createKvStore(small);
    feed(store, randomCommands(createPrng(21), 400));
    // Keys and values at the edges: binary bytes and an empty value.
    applyAll(store, putCmd(Uint8Array.from([0, 0xff, 0x80]), ""), putCmd("empty", ""));
    const bytes = store.encodeSnapshot();
    expect(toBinary(KvSnapshotSchema, fromBinary(KvSnapshotSchema, bytes))).toEqual(bytes);
  });

  it("reads what protobuf-es writes, unknown fields and any field order included", () => {
    const store = createKvStore(small);
    feed(store, randomCommands(createPrng(5), 300));
    const message = fromBinary(KvSnapshotSchema, store.encodeSnapshot());
    const reference = dump(store);
    // The kvs last instead of first, and an unknown field (9999) inside every KeyValue.
    const { kvs, ...rest } = message;
    const unknownField = Uint8Array.from([0xf8, 0xf0, 0x04, 0x07]);
    const reordered = concat(
      toBinary(KvSnapshotSchema, create(KvSnapshotSchema, { ...rest, kvs: [] })),
      ...kvs.map((kv) => {
        const inner = concat(toBinary(KeyValueSchema, kv), unknownField);
        return concat(Uint8Array.from([0x2a, ...varint(inner.byteLength)]), inner);
      }),
    );
    const restored = createKvStore(small);
    restored.restore(reordered);
    expect(dump(restored)).toEqual(reference);
    expect(restored.encodeSnapshot()).toEqual(store.encodeSnapshot());
  });

  it("keeps sessions across a restore: a retry after it is still deduplicated", () => {
    const store = createKvStore();
    const id = { clientId: "c", sequence: 1 };
    store.apply(1, putCmd("k", "v", { id }));
    const restored = createKvStore();
    restored.restore(store.encodeSnapshot());
    const retry = expectKind(restored.apply(2, putCmd("k", "v", { id })), "put");
    expect([retry.replayed, Number(retry.response.header?.revision), restored.revision]).toEqual([true, 1, 1]);
  });

  it("restores after every entry while the bounded history evicts revisions of several events", () => {
    // A Txn of three puts and a prefix delete of three keys each write one revision of three events;
    // with room for five events, eviction cuts into such a revision at most steps. The evicted
    // revision must go whole, or the snapshot carries events older than its compact revision and no
    // node can restore it (found by review: a node could not restart from its own snapshot).
    const store = createKvStore({ watchHistoryMax: 5 });
    const txn3 = (tag: string): Uint8Array => txnCmd([], [opPut("a", tag), opPut("b", tag), opPut("c", tag)]);
    const commands = [
      putCmd("x", "1"),
      txn3("1"),
      putCmd("y", "1"),
      deleteCmd("", { prefix: true }),
      txn3("2"),
      putCmd("x", "2"),
      txn3("3"),
    ];
    for (const command of commands) {
      feed(store, [command]);
      const restored = createKvStore({ watchHistoryMax: 5 });
      restored.restore(store.encodeSnapshot());
      expect(restored.compactRevision).toBe(store.compactRevision);
      expect(dump(restored)).toEqual(dump(store));
    }
    expect(store.compactRevision).toBeGreaterThan(1);
  });

  it("refuses invalid snapshots with a typed error and keeps the previous state", () => {
    const store = createKvStore();
    applyAll(store, putCmd("keep", "me"));
    const before = store.encodeSnapshot();
    const valid = fromBinary(KvSnapshotSchema, before);
    const variants: [string, Uint8Array][] = [
      ["garbage", Uint8Array.from([0x0a, 0xff, 0xff, 0xff])],
      ["wrong version", toBinary(KvSnapshotSchema, { ...valid, formatVersion: 2 })],
      [
        "unsorted keys",
        toBinary(KvSnapshotSchema, {
          ...valid,
          kvs: [
            create(KeyValueSchema, { key: b("z"), createRevision: 1n, modRevision: 1n, version: 1n }),
            create(KeyValueSchema, { key: b("a"), createRevision: 1n, modRevision: 1n, version: 1n }),
          ],
        }),
      ],
      [
        "revision beyond the store's",
        toBinary(KvSnapshotSchema, {
          ...valid,
          kvs: [create(KeyValueSchema, { key: b("a"), createRevision: 1n, modRevision: 9n, version: 1n })],
        }),
      ],
      ["unsafe number", toBinary(KvSnapshotSchema, { ...valid, revision: 2n ** 60n })],
      [
        "unsafe number in a key's revision",
        toBinary(KvSnapshotSchema, {
          ...valid,
          revision: 2n,
          kvs: [create(KeyValueSchema, { key: b("a"), createRevision: 1n, modRevision: 2n ** 60n, version: 1n })],
        }),
      ],
      // A kvs element (field 5, length-delimited) whose KeyValue is cut inside its key's bytes.
      ["truncated key-value", concat(before, Uint8Array.from([0x2a, 0x03, 0x0a, 0x05, 0x61]))],
      // A kvs element whose length runs past the end of the snapshot.
      ["kvs length past the end", concat(before, Uint8Array.from([0x2a, 0x7f, 0x0a]))],
      // A varint of 11 bytes in a key's counter.
      ["overlong varint", concat(before, Uint8Array.from([0x2a, 0x0c, 0x18, ...new Array<number>(10).fill(0xff), 0x01]))],
    ];
    for (const [name, bytes] of variants) {
      expect(() => store.restore(bytes), name).toThrow(
        expect.objectContaining({ detail: expect.objectContaining({ kind: "invalidSnapshot" }) }),
      );
      expect(store.encodeSnapshot(), name).toEqual(before);
    }
  });

  it("cancels every watcher on restore", () => {
    const store = createKvStore();
    const start = store.watch(watchReq("k", 0));
    if (start.kind !== "watching") throw new Error("expected a watcher");
    store.restore(createKvStore().encodeSnapshot());
    expect(start.watcher.state).toEqual({ kind: "canceled", reason: { kind: "restored" } });
  });
});

describe("malformed commands", () => {
  /** The snapshot without applied_index, which a consumed entry advances even when it fails. */
  const stateOf = (store: KvStore) =>
    toBinary(KvSnapshotSchema, { ...fromBinary(KvSnapshotSchema, store.encodeSnapshot()), appliedIndex: 0n });

  it("return a typed error and leave the state untouched", () => {
    // Default options: no session is idle long enough to expire during the test, which would be a change.
    const store = createKvStore();
    feed(store, randomCommands(createPrng(11), 100));
    const before = stateOf(store);
    const valid = putCmd("key", "value");
    const prng = createPrng(99);
    const corrupt: Uint8Array[] = [
      new Uint8Array(0),
      Uint8Array.from([0xff, 0xff, 0xff]),
      valid.subarray(0, valid.length - 2),
      Uint8Array.from([0x1a, 0x00]), // a put with an empty key
      ...Array.from({ length: 200 }, () => Uint8Array.from({ length: prng.int(1, 30) }, () => prng.int(0, 255))),
    ];
    for (const bytes of corrupt) {
      const result = store.apply(store.appliedIndex + 1, bytes);
      expect(result.kind, `bytes ${Array.from(bytes).join(",")}`).toBe("error");
      if (result.kind === "error") expect(["malformedCommand", "invalidArgument", "limitExceeded"]).toContain(result.error.kind);
    }
    expect(stateOf(store)).toEqual(before);
    const empty = store.apply(store.appliedIndex + 1, new Uint8Array(0));
    expect(empty.kind === "error" && empty.error.message).toMatch(/no operation/);
  });
});

/** The parts one after the other, as a plain Uint8Array (what the store is handed). */
function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function varint(n: number): number[] {
  const bytes: number[] = [];
  while (n >= 0x80) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return bytes;
}
