import { describe, expect, it } from "vitest";
import { EventType } from "../../gen/raftkv/v1/kv_pb.js";
import type { Event } from "../../gen/raftkv/v1/kv_pb.js";
import { createKvStore } from "../../src/kv/index.js";
import type { Watcher, WatchStart } from "../../src/kv/index.js";
import { applyAll, deleteCmd, opDelete, opPut, putCmd, s, txnCmd, watchReq } from "./helpers.js";

/** An event as "PUT key=value@rev" or "DELETE key@rev", with " (prev value)" when it carries one. */
const show = (event: Event): string => {
  const kv = event.kv;
  const what = event.type === EventType.PUT ? `PUT ${s(kv!.key)}=${s(kv!.value)}` : `DELETE ${s(kv!.key)}`;
  return `${what}@${kv!.modRevision}${event.prevKv ? ` (${s(event.prevKv.value)})` : ""}`;
};

const watching = (start: WatchStart): Watcher => {
  if (start.kind !== "watching") throw new Error(`expected a watcher, got ${start.kind}`);
  return start.watcher;
};

const takeAll = (watcher: Watcher): string[] => {
  const taken = watcher.take();
  if (taken.kind !== "events") throw new Error(`watcher canceled: ${taken.reason.kind}`);
  return taken.events.map(show);
};

describe("watch history", () => {
  it("returns the events of a key or prefix since a revision, with prev kvs", () => {
    const store = createKvStore();
    applyAll(store, putCmd("a/1", "x"), putCmd("b", "y"), putCmd("a/1", "z"), deleteCmd("a/", { prefix: true }));
    const since = store.eventsSince(watchReq("a/", 2, { prefix: true, prevKv: true }));
    expect(since.kind === "events" && since.events.map(show)).toEqual(["PUT a/1=z@3 (x)", "DELETE a/1@4 (z)"]);
    const exact = store.eventsSince(watchReq("b", 1));
    expect(exact.kind === "events" && exact.events.map(show)).toEqual(["PUT b=y@2"]);
  });

  it("reports a txn's events at one revision, in operation order", () => {
    const store = createKvStore();
    applyAll(store, putCmd("old", "1"), txnCmd([], [opPut("n", "2"), opDelete("old")]));
    const since = store.eventsSince(watchReq("", 2, { prefix: true }));
    expect(since.kind === "events" && since.events.map(show)).toEqual(["PUT n=2@2", "DELETE old@2"]);
  });

  it("says compacted, with the oldest revision still available, once history was dropped", () => {
    const store = createKvStore({ watchHistoryMax: 3 });
    applyAll(store, ...["1", "2", "3", "4", "5"].map((v) => putCmd("k", v)));
    expect(store.compactRevision).toBe(3);
    expect(store.eventsSince(watchReq("k", 2))).toEqual({ kind: "compacted", compactRevision: 3 });
    const kept = store.eventsSince(watchReq("k", 3));
    expect(kept.kind === "events" && kept.events.map(show)).toEqual(["PUT k=3@3", "PUT k=4@4", "PUT k=5@5"]);
    expect(store.watch(watchReq("k", 1))).toEqual({ kind: "compacted", compactRevision: 3 });
  });

  it("treats a revision whose events were only partly dropped as compacted", () => {
    const store = createKvStore({ watchHistoryMax: 2 });
    applyAll(store, txnCmd([], [opPut("a", "1"), opPut("b", "1"), opPut("c", "1")]));
    expect(store.compactRevision).toBe(2);
    expect(store.eventsSince(watchReq("", 1, { prefix: true }))).toEqual({ kind: "compacted", compactRevision: 2 });
  });

  it("bounds the history by bytes too", () => {
    const store = createKvStore({ keyBytesMax: 8, valueBytesMax: 1000, responseBytesMax: 1008, watchHistoryBytesMax: 2500 });
    applyAll(store, ...[1, 2, 3, 4].map((i) => putCmd(`k${i}`, "x".repeat(1000))));
    const since = store.eventsSince(watchReq("", store.compactRevision, { prefix: true }));
    expect(since.kind === "events" && since.events.length).toBe(2);
    expect(store.compactRevision).toBe(3);
  });
});

describe("watchers", () => {
  it("streams new events of its key span only", async () => {
    const store = createKvStore();
    const watcher = watching(store.watch(watchReq("app/", 0, { prefix: true })));
    let woke = false;
    const ready = watcher.ready().then(() => (woke = true));
    applyAll(store, putCmd("other", "1"));
    await Promise.resolve();
    expect(woke).toBe(false);
    expect(takeAll(watcher)).toEqual([]);
    applyAll(store, putCmd("app/x", "1"), putCmd("app/y", "2"));
    await ready;
    expect(takeAll(watcher)).toEqual(["PUT app/x=1@2", "PUT app/y=2@3"]);
    expect(takeAll(watcher)).toEqual([]);
  });

  it("replays from a past revision, then continues live", () => {
    const store = createKvStore();
    applyAll(store, putCmd("k", "1"), putCmd("k", "2"));
    const start = store.watch(watchReq("k", 2, { prevKv: true }));
    expect(start.kind === "watching" && start.revision).toBe(2);
    const watcher = watching(start);
    applyAll(store, putCmd("k", "3"));
    expect(takeAll(watcher)).toEqual(["PUT k=2@2 (1)", "PUT k=3@3 (2)"]);
  });

  it("starting at a future revision skips earlier events", () => {
    const store = createKvStore();
    const watcher = watching(store.watch(watchReq("k", 3)));
    applyAll(store, putCmd("k", "1"), putCmd("k", "2"), putCmd("k", "3"));
    expect(takeAll(watcher)).toEqual(["PUT k=3@3"]);
  });

  it("hands out events in batches of at most the requested size", () => {
    const store = createKvStore({ watchBatchEventsMax: 3 });
    const watcher = watching(store.watch(watchReq("k", 0)));
    applyAll(store, ...["1", "2", "3", "4", "5"].map((v) => putCmd("k", v)));
    expect(takeAll(watcher)).toHaveLength(3);
    const two = watcher.take(1);
    expect(two.kind === "events" && two.events.map(show)).toEqual(["PUT k=4@4"]);
    expect(takeAll(watcher)).toEqual(["PUT k=5@5"]);
  });

  it("cancels a slow watcher once the history drops an event it has not taken", async () => {
    const store = createKvStore({ watchHistoryMax: 4 });
    const slow = watching(store.watch(watchReq("k", 0)));
    const fast = watching(store.watch(watchReq("k", 0)));
    const rare = watching(store.watch(watchReq("rare", 0)));
    for (let i = 1; i <= 6; i++) {
      applyAll(store, putCmd("k", String(i)));
      takeAll(fast);
    }
    expect(slow.state).toEqual({ kind: "canceled", reason: { kind: "compacted", compactRevision: 2 } });
    expect(slow.take()).toEqual({ kind: "canceled", reason: { kind: "compacted", compactRevision: 2 } });
    await slow.ready();
    // A watcher that takes its events, or that has nothing pending, is not affected.
    expect(fast.state.kind).toBe("active");
    expect(rare.state.kind).toBe("active");
    expect(store.watcherCount).toBe(2);
  });

  it("limits the number of watchers, and close frees a slot", () => {
    const store = createKvStore({ watchersMax: 2 });
    const first = watching(store.watch(watchReq("a", 0)));
    watching(store.watch(watchReq("b", 0)));
    expect(() => store.watch(watchReq("c", 0))).toThrow(expect.objectContaining({ detail: { kind: "tooManyWatchers", max: 2 } }));
    first.close();
    expect(first.state).toEqual({ kind: "canceled", reason: { kind: "closed" } });
    watching(store.watch(watchReq("c", 0)));
  });

  it("a pending ready() resolves when the watcher is closed", async () => {
    const store = createKvStore();
    const watcher = watching(store.watch(watchReq("k", 0)));
    const ready = watcher.ready();
    watcher.close();
    await ready;
    expect(watcher.take().kind).toBe("canceled");
  });

  it("refuses a watch on the empty key without prefix", () => {
    const store = createKvStore();
    expect(() => store.watch(watchReq("", 0))).toThrow(expect.objectContaining({ name: "KvError" }));
  });
});
