import { describe, expect, it } from "vitest";
import { createKvStore } from "../../src/kv/index.js";
import { applyAll, b, deleteCmd, dump, expectKind, getReq, plain, putCmd, rangeReq, s } from "./helpers.js";

describe("put and get", () => {
  it("creates, updates and reads keys with revisions and versions", () => {
    const store = createKvStore();
    expect(store.revision).toBe(0);
    const [first, second, third] = applyAll(store, putCmd("a", "1"), putCmd("b", "x"), putCmd("a", "2", { prevKv: true }));
    expect(Number(expectKind(first!, "put").response.header?.revision)).toBe(1);
    expect(Number(expectKind(second!, "put").response.header?.revision)).toBe(2);
    const update = expectKind(third!, "put").response;
    expect(Number(update.header?.revision)).toBe(3);
    expect(plain(update.prevKv)).toEqual({ key: "a", value: "1", create: 1, mod: 1, version: 1 });
    expect(plain(store.get(getReq("a")).kv)).toEqual({ key: "a", value: "2", create: 1, mod: 3, version: 2 });
    expect(store.get(getReq("missing")).kv).toBeUndefined();
    expect(Number(store.get(getReq("a")).header?.revision)).toBe(3);
  });

  it("bumps the revision even when the value is unchanged, and returns no prev_kv unless asked", () => {
    const store = createKvStore();
    const [, again] = applyAll(store, putCmd("k", "v"), putCmd("k", "v"));
    expect(expectKind(again!, "put").response.prevKv).toBeUndefined();
    expect(store.revision).toBe(2);
    expect(plain(store.get(getReq("k")).kv)?.version).toBe(2);
  });

  it("stores a copy of the key and value, not a view into the entry buffer", () => {
    const store = createKvStore();
    const command = putCmd("key", "value");
    store.apply(1, command);
    command.fill(0);
    expect(plain(store.get(getReq("key")).kv)?.value).toBe("value");
  });
});

describe("delete", () => {
  it("deletes one key, resets its version, and counts nothing deleted without a new revision", () => {
    const store = createKvStore();
    applyAll(store, putCmd("a", "1"), putCmd("a", "2"));
    const [gone, nothing] = applyAll(store, deleteCmd("a", { prevKv: true }), deleteCmd("a"));
    const deleted = expectKind(gone!, "delete").response;
    expect(Number(deleted.deleted)).toBe(1);
    expect(deleted.prevKvs.map(plain)).toEqual([{ key: "a", value: "2", create: 1, mod: 2, version: 2 }]);
    expect(Number(deleted.header?.revision)).toBe(3);
    const none = expectKind(nothing!, "delete").response;
    expect(Number(none.deleted)).toBe(0);
    expect(Number(none.header?.revision)).toBe(3);
    expect(store.revision).toBe(3);
    applyAll(store, putCmd("a", "again"));
    expect(plain(store.get(getReq("a")).kv)).toEqual({ key: "a", value: "again", create: 4, mod: 4, version: 1 });
  });

  it("deletes a prefix, in one revision, and only that prefix", () => {
    const store = createKvStore();
    applyAll(store, putCmd("app/a", "1"), putCmd("app/b", "2"), putCmd("apple", "3"), putCmd("b", "4"));
    const response = expectKind(applyAll(store, deleteCmd("app/", { prefix: true, prevKv: true }))[0]!, "delete").response;
    expect(Number(response.deleted)).toBe(2);
    expect(response.prevKvs.map((kv) => s(kv.key))).toEqual(["app/a", "app/b"]);
    expect(store.revision).toBe(5);
    expect(dump(store)).toEqual(["apple=3@3/1", "b=4@4/1"]);
  });

  it("deletes every key with the empty prefix", () => {
    const store = createKvStore();
    applyAll(store, putCmd("x", "1"), putCmd("y", "2"));
    expect(Number(expectKind(applyAll(store, deleteCmd("", { prefix: true }))[0]!, "delete").response.deleted)).toBe(2);
    expect(store.keyCount).toBe(0);
  });

  it("refuses a prev_kv delete whose answer would exceed responseBytesMax, deleting nothing", () => {
    const store = createKvStore({ keyBytesMax: 8, valueBytesMax: 8, responseBytesMax: 16 });
    applyAll(store, putCmd("p1", "12345678"), putCmd("p2", "12345678"));
    const result = applyAll(store, deleteCmd("p", { prefix: true, prevKv: true }))[0]!;
    expect(result.kind === "error" && result.error.detail).toMatchObject({ kind: "limitExceeded", limit: "responseBytesMax" });
    expect(store.keyCount).toBe(2);
    expect(store.revision).toBe(2);
    expect(expectKind(applyAll(store, deleteCmd("p", { prefix: true }))[0]!, "delete").response.deleted).toBe(2n);
  });
});

describe("range", () => {
  const seeded = () => {
    const store = createKvStore();
    applyAll(store, ...["k/c", "k/a", "k/e", "k/b", "k/d", "kz", "j"].map((key, i) => putCmd(key, `v${i}`)));
    return store;
  };

  it("returns a prefix in byte order with the total count", () => {
    const response = seeded().range(rangeReq({ key: b("k/"), prefix: true }));
    expect(response.kvs.map((kv) => s(kv.key))).toEqual(["k/a", "k/b", "k/c", "k/d", "k/e"]);
    expect(Number(response.count)).toBe(5);
    expect(response.more).toBe(false);
    expect(Number(response.header?.revision)).toBe(7);
  });

  it("reads a single key when prefix is not set", () => {
    const response = seeded().range(rangeReq({ key: b("k/c") }));
    expect(response.kvs.map((kv) => s(kv.value))).toEqual(["v0"]);
    expect(Number(response.count)).toBe(1);
  });

  it("pages with limit and continue_key until every key was seen once", () => {
    const store = seeded();
    const seen: string[] = [];
    let continueKey: Uint8Array = new Uint8Array(0);
    for (let page = 0; page < 10; page++) {
      const response = store.range(rangeReq({ key: b("k/"), prefix: true, limit: 2n, continueKey }));
      seen.push(...response.kvs.map((kv) => s(kv.key)));
      if (!response.more) break;
      expect(response.kvs).toHaveLength(2);
      continueKey = response.nextKey;
    }
    expect(seen).toEqual(["k/a", "k/b", "k/c", "k/d", "k/e"]);
  });

  it("counts from the continue key, and count_only returns no keys", () => {
    const store = seeded();
    expect(Number(store.range(rangeReq({ key: b("k/"), prefix: true, continueKey: b("k/c") })).count)).toBe(3);
    const countOnly = store.range(rangeReq({ key: b("k/"), prefix: true, countOnly: true }));
    expect(countOnly.kvs).toHaveLength(0);
    expect(Number(countOnly.count)).toBe(5);
  });

  it("keys_only leaves values out", () => {
    const response = seeded().range(rangeReq({ key: b("k/"), prefix: true, keysOnly: true, limit: 1n }));
    expect(response.kvs.map((kv) => [s(kv.key), kv.value.length, Number(kv.version)])).toEqual([["k/a", 0, 1]]);
  });

  it("caps a page at rangeKeysMax and at responseBytesMax", () => {
    const byKeys = createKvStore({ rangeKeysMax: 2 });
    applyAll(byKeys, putCmd("a", "1"), putCmd("b", "2"), putCmd("c", "3"));
    const capped = byKeys.range(rangeReq({ key: new Uint8Array(0), prefix: true, limit: 100n }));
    expect([capped.kvs.length, capped.more, s(capped.nextKey)]).toEqual([2, true, "c"]);

    const byBytes = createKvStore({ keyBytesMax: 4, valueBytesMax: 10, responseBytesMax: 25 });
    applyAll(byBytes, putCmd("a", "0123456789"), putCmd("b", "0123456789"), putCmd("c", "0123456789"));
    const small = byBytes.range(rangeReq({ key: new Uint8Array(0), prefix: true }));
    expect([small.kvs.length, small.more, s(small.nextKey), Number(small.count)]).toEqual([2, true, "c", 3]);
  });

  it("orders keys by unsigned bytes, including 0x00 and 0xff", () => {
    const store = createKvStore();
    const keys = [[0x61, 0xff], [0x61], [0x61, 0x00], [0x62], [0xff, 0xff]];
    keys.forEach((key, i) => store.apply(i + 1, putCmd(Uint8Array.from(key), "v")));
    const all = store.range(rangeReq({ key: new Uint8Array(0), prefix: true }));
    expect(all.kvs.map((kv) => Array.from(kv.key))).toEqual([[0x61], [0x61, 0x00], [0x61, 0xff], [0x62], [0xff, 0xff]]);
    const underFF = store.range(rangeReq({ key: Uint8Array.from([0xff]), prefix: true }));
    expect(underFF.kvs.map((kv) => Array.from(kv.key))).toEqual([[0xff, 0xff]]);
    const underA = store.range(rangeReq({ key: Uint8Array.from([0x61]), prefix: true }));
    expect(Number(underA.count)).toBe(3);
  });

  it("refuses bad reads with typed errors", () => {
    const store = seeded();
    expect(() => store.range(rangeReq({ key: new Uint8Array(0) }))).toThrow(/must not be empty/);
    expect(() => store.range(rangeReq({ key: b("k/"), prefix: true, continueKey: b("z") }))).toThrow(
      expect.objectContaining({ detail: expect.objectContaining({ kind: "invalidArgument", field: "range.continue_key" }) }),
    );
    expect(() => store.get(getReq(""))).toThrow(expect.objectContaining({ name: "KvError" }));
  });
});
