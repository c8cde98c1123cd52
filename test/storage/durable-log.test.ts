import { describe, expect, it } from "vitest";
import { AssertionError } from "../../src/lib/assert.js";
import { CompactedError, UnavailableError } from "../../src/core/storage.js";
import { openStorage, StorageClosedError, StorageFailedError, StorageOverloadedError } from "../../src/storage/index.js";
import { SimFileSystem } from "./sim-file-system.js";
import { makeEntries, makeEntry, memoryLogger, sameBytes } from "./helpers.js";
import { silentLogger } from "../../src/lib/logger.js";

const dir = "/data";
const conf = { voters: [1, 2, 3], learners: [4] };

async function open(fs: SimFileSystem, extra: { segmentBytes?: number; pendingSavesMax?: number; snapshotsKept?: number } = {}) {
  const { logger, lines } = memoryLogger();
  const log = await openStorage({ dir, fs, logger, initialConf: conf, segmentBytes: extra.segmentBytes ?? 4096, ...extra });
  return { log, lines };
}

describe("durable log", () => {
  it("starts empty with the initial membership, and keeps that membership across restarts", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    expect(log.firstIndex()).toBe(1);
    expect(log.lastIndex()).toBe(0);
    expect(log.term(0)).toBe(0);
    expect(log.initialState()).toEqual({ hardState: { term: 0, vote: 0, commit: 0 }, conf });
    await log.close();
    const again = await openStorage({ dir, fs, segmentBytes: 4096, initialConf: { voters: [9], learners: [] }, logger: silentLogger });
    expect(again.initialState().conf).toEqual(conf);
  });

  it("serves saves at once and recovers them, with the hard state, after a restart", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    const saved = log.save({ term: 2, vote: 1, commit: 3 }, makeEntries(1, 5, 2, 100));
    expect(log.lastIndex()).toBe(5);
    expect(log.initialState().hardState).toEqual({ term: 2, vote: 1, commit: 3 });
    await saved;
    await log.close();
    const { log: again } = await open(fs);
    expect(again.initialState().hardState).toEqual({ term: 2, vote: 1, commit: 3 });
    expect(again.lastIndex()).toBe(5);
    const entries = again.entries(1, 6, Infinity);
    expect(entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
    for (const e of entries) expect(sameBytes(e.data, makeEntry(e.index, 2, 100).data)).toBe(true);
  });

  it("replaces a conflicting suffix, durably", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    await log.save({ term: 1, vote: 0, commit: 0 }, makeEntries(1, 10, 1, 50));
    await log.save({ term: 3, vote: 0, commit: 0 }, makeEntries(6, 7, 3, 50));
    expect(log.lastIndex()).toBe(7);
    expect(log.term(6)).toBe(3);
    await log.close();
    const { log: again } = await open(fs);
    expect(again.lastIndex()).toBe(7);
    expect([5, 6, 7].map((i) => again.term(i))).toEqual([1, 3, 3]);
  });

  it("rotates segments and replays across them", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs, { segmentBytes: 1024 });
    for (let i = 1; i <= 40; i++) await log.save(undefined, [makeEntry(i, 1, 200)]);
    const segments = fs.paths().filter((p) => p.endsWith(".wal"));
    expect(segments.length).toBeGreaterThan(5);
    await log.close();
    const { log: again } = await open(fs, { segmentBytes: 1024 });
    expect(again.lastIndex()).toBe(40);
    expect(sameBytes(again.entries(17, 18, 0)[0]?.data ?? new Uint8Array(), makeEntry(17, 1, 200).data)).toBe(true);
  });

  it("coalesces concurrent saves into far fewer fdatasyncs than saves", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs, { segmentBytes: 1 << 20 });
    const before = fs.counts.datasync;
    const saves = [];
    for (let i = 1; i <= 200; i++) saves.push(log.save({ term: 1, vote: 0, commit: i - 1 }, [makeEntry(i, 1, 64)]));
    await Promise.all(saves);
    expect(fs.counts.datasync - before).toBeLessThanOrEqual(2);
    await log.close();
    const { log: again } = await open(fs, { segmentBytes: 1 << 20 });
    expect(again.lastIndex()).toBe(200);
    expect(again.initialState().hardState.commit).toBe(199);
  });

  it("resolves saves in call order", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    const order: number[] = [];
    const saves = [];
    for (let i = 1; i <= 30; i++) {
      saves.push(log.save(undefined, [makeEntry(i, 1, 10)]).then(() => order.push(i)));
      if (i % 7 === 0) await Promise.resolve();
    }
    await Promise.all(saves);
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it("snapshots, compacts, deletes old segments, and restarts from the snapshot", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs, { segmentBytes: 1024 });
    for (let i = 1; i <= 30; i++) await log.save({ term: 1, vote: 0, commit: i }, [makeEntry(i, 1, 200)]);
    const segmentsBefore = fs.paths().filter((p) => p.endsWith(".wal")).length;
    expect(await log.createSnapshot(20, conf, new Uint8Array([1, 2, 3]))).toEqual({ index: 20, term: 1, conf });
    expect(log.firstIndex()).toBe(1);
    await log.compact(20);
    expect(log.firstIndex()).toBe(21);
    expect(log.term(20)).toBe(1);
    expect(() => log.term(19)).toThrow(CompactedError);
    expect(fs.paths().filter((p) => p.endsWith(".wal")).length).toBeLessThan(segmentsBefore);
    await log.close();
    const { log: again } = await open(fs, { segmentBytes: 1024 });
    expect(again.snapshot().meta.index).toBe(20);
    expect(sameBytes(again.snapshot().data, new Uint8Array([1, 2, 3]))).toBe(true);
    expect(again.firstIndex()).toBe(21);
    expect(again.lastIndex()).toBe(30);
  });

  it("lets go of a snapshot's data once told, reads it back from its file for a follower, and hands it out once", async () => {
    const fs = new SimFileSystem();
    const { log, lines } = await open(fs);
    for (let i = 1; i <= 10; i++) await log.save({ term: 1, vote: 0, commit: i }, [makeEntry(i, 1, 10)]);
    const data = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);
    await log.createSnapshot(8, conf, data);
    expect(log.snapshotToSend()?.data).toBe(data);
    log.releaseSnapshotData();
    expect(() => log.snapshot()).toThrow(AssertionError);
    expect(log.snapshotMeta()).toEqual({ index: 8, term: 1, conf });
    expect(log.snapshotBytes()).toBe(data.byteLength);
    // Not in memory: nothing yet; the read back runs beside the caller.
    expect(log.snapshotToSend()).toBeUndefined();
    let back = log.snapshotToSend();
    for (let i = 0; i < 100 && back === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      back = log.snapshotToSend();
    }
    expect(back?.meta).toEqual({ index: 8, term: 1, conf });
    expect(sameBytes(back?.data ?? new Uint8Array(0), data)).toBe(true);
    // Handed out once: the next follower's turn reads it again.
    expect(log.snapshotToSend()).toBeUndefined();
    expect(lines.some((l) => l.msg === "read a snapshot back from disk for a follower")).toBe(true);
    await log.close();
  });

  it("never hands out a read-back that a newer snapshot overtook, and retries a failed read", async () => {
    const fs = new SimFileSystem();
    const { log, lines } = await open(fs);
    const sendable = async (): Promise<Uint8Array | undefined> => {
      for (let i = 0; i < 20; i++) {
        const s = log.snapshotToSend();
        if (s !== undefined) return s.data;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return undefined;
    };
    for (let i = 1; i <= 10; i++) await log.save({ term: 1, vote: 0, commit: i }, [makeEntry(i, 1, 10)]);
    await log.createSnapshot(5, conf, new Uint8Array([5]));
    log.releaseSnapshotData();
    expect(log.snapshotToSend()).toBeUndefined();
    // A newer snapshot lands while the older one is read back: only the newer one is ever handed out.
    await log.createSnapshot(9, conf, new Uint8Array([9]));
    log.releaseSnapshotData();
    expect(await sendable()).toEqual(new Uint8Array([9]));
    // Its file damaged: the read fails, is logged, and nothing is handed out.
    const file = fs.paths().find((p) => p.endsWith("0000000000000009-0000000000000001.snap"));
    if (file === undefined) throw new Error("no snapshot file");
    const bytes = fs.peek(file) ?? new Uint8Array(0);
    fs.poke(
      file,
      bytes.map((b, i) => (i === bytes.length - 1 ? b ^ 1 : b)),
    );
    expect(log.snapshotToSend()).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(log.snapshotToSend()).toBeUndefined();
    expect(lines.some((l) => l.msg === "cannot read the snapshot back to send it to a follower; retrying")).toBe(true);
    await log.close();
  });

  it("installs a snapshot from the leader, resetting the log, and survives a restart", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    await log.save({ term: 1, vote: 0, commit: 2 }, makeEntries(1, 8, 1, 20));
    const snapshot = { meta: { index: 50, term: 4, conf: { voters: [1, 2], learners: [] } }, data: new Uint8Array([7]) };
    const installed = log.installSnapshot(snapshot);
    expect(log.firstIndex()).toBe(51);
    expect(log.lastIndex()).toBe(50);
    expect(log.term(50)).toBe(4);
    await installed;
    await log.save(undefined, makeEntries(51, 53, 4, 20));
    await log.close();
    const { log: again } = await open(fs);
    expect(again.snapshot().meta).toEqual(snapshot.meta);
    expect(again.initialState().conf).toEqual(snapshot.meta.conf);
    expect(again.firstIndex()).toBe(51);
    expect(again.lastIndex()).toBe(53);
  });

  it("keeps only the newest snapshotsKept snapshot files", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs, { snapshotsKept: 2 });
    await log.save(undefined, makeEntries(1, 10, 1, 10));
    for (const i of [3, 5, 7, 9]) await log.createSnapshot(i, conf, new Uint8Array([i]));
    const snaps = fs.paths().filter((p) => p.startsWith("/data/snap/"));
    expect(snaps).toEqual(["/data/snap/0000000000000007-0000000000000001.snap", "/data/snap/0000000000000009-0000000000000001.snap"]);
  });

  it("refuses contract violations loudly", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    await log.save(undefined, makeEntries(1, 3, 1, 1));
    expect(() => log.save(undefined, [makeEntry(5, 1, 1)])).toThrow(AssertionError);
    expect(() => log.save(undefined, [makeEntry(4, 1, 1), makeEntry(6, 1, 1)])).toThrow(AssertionError);
    expect(() => log.entries(2, 9, Infinity)).toThrow(UnavailableError);
    expect(() => log.compact(2)).toThrow(AssertionError);
    expect(log.lastIndex()).toBe(3);
  });

  it("stops accepting writes after ENOSPC, never acknowledging what it could not persist", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    await log.save(undefined, makeEntries(1, 3, 1, 10));
    fs.failAfter(0, "ENOSPC", ["write", "datasync"]);
    const failed = log.save(undefined, [makeEntry(4, 1, 10)]);
    await expect(failed).rejects.toBeInstanceOf(StorageFailedError);
    await expect(failed).rejects.toMatchObject({ code: "ENOSPC" });
    expect(log.failure).toBeInstanceOf(StorageFailedError);
    await expect(log.save(undefined, [makeEntry(5, 1, 10)])).rejects.toBeInstanceOf(StorageFailedError);
  });

  it("refuses saves beyond pendingSavesMax without changing the log", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs, { pendingSavesMax: 4 });
    const saves = [];
    for (let i = 1; i <= 5; i++) saves.push(log.save(undefined, [makeEntry(i, 1, 1)]));
    await expect(saves[4]).rejects.toBeInstanceOf(StorageOverloadedError);
    expect(log.lastIndex()).toBe(4);
    await Promise.all(saves.slice(0, 4));
  });

  it("refuses an install that would not fit the queue before changing the log", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs, { pendingSavesMax: 4 });
    const saves = [];
    for (let i = 1; i <= 3; i++) saves.push(log.save(undefined, [makeEntry(i, 1, 1)]));
    const snapshot = { meta: { index: 10, term: 2, conf }, data: new Uint8Array(1) };
    await expect(log.installSnapshot(snapshot)).rejects.toBeInstanceOf(StorageOverloadedError);
    expect([log.lastIndex(), log.snapshot().meta.index]).toEqual([3, 0]);
    await Promise.all(saves);
    await log.installSnapshot(snapshot);
    expect([log.firstIndex(), log.lastIndex()]).toEqual([11, 10]);
  });

  it("rejects writes after close", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    const pending = log.save(undefined, [makeEntry(1, 1, 1)]);
    await log.close();
    await pending;
    await expect(log.save(undefined, [makeEntry(2, 1, 1)])).rejects.toBeInstanceOf(StorageClosedError);
  });
});
