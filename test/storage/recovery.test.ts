import { describe, expect, it } from "vitest";
import { createPrng } from "../../src/lib/prng.js";
import { CorruptLogError, openStorage, StorageFailedError, type DurableLog } from "../../src/storage/index.js";
import { readFrame } from "../../src/storage/record.js";
import { SimFileSystem } from "./sim-file-system.js";
import { makeEntries, makeEntry, memoryLogger, sameBytes, settle } from "./helpers.js";
import { silentLogger } from "../../src/lib/logger.js";

const dir = "/data";
const wal = (seq: number): string => `/data/wal/${seq.toString(16).padStart(16, "0")}.wal`;
const conf = { voters: [1], learners: [] };

async function open(fs: SimFileSystem, segmentBytes = 4096) {
  const { logger, lines } = memoryLogger();
  const log = await openStorage({ dir, fs, logger, segmentBytes, initialConf: conf });
  return { log, lines };
}

/** The records of a segment file: offset, and whether each starts a batch. */
function records(data: Uint8Array): { offset: number; batchStart: boolean }[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: { offset: number; batchStart: boolean }[] = [];
  let at = 0;
  let batchStart = true;
  while (true) {
    const read = readFrame(data, view, at);
    if (read.kind !== "record") return out;
    out.push({ offset: at, batchStart });
    batchStart = read.batchEnd;
    at = read.end;
  }
}

/** Offsets of the first record of each batch in a segment file. */
function batchOffsets(data: Uint8Array): number[] {
  return records(data)
    .filter((r) => r.batchStart)
    .map((r) => r.offset);
}

/** The offset of the record holding byte `at`. */
function recordAt(data: Uint8Array, at: number): number {
  return (
    records(data)
      .filter((r) => r.offset <= at)
      .at(-1)?.offset ?? -1
  );
}

/** A log with `batches` single-entry saves in one segment, closed. */
async function written(batches: number, segmentBytes = 64 * 1024): Promise<SimFileSystem> {
  const fs = new SimFileSystem();
  const { log } = await open(fs, segmentBytes);
  for (let i = 1; i <= batches; i++) await log.save({ term: 1, vote: 1, commit: i - 1 }, [makeEntry(i, 1, 100)]);
  await log.close();
  return fs;
}

function damage(fs: SimFileSystem, path: string, change: (data: Uint8Array) => void): void {
  const data = fs.peek(path);
  if (data === undefined) throw new Error(`no ${path}`);
  change(data);
  fs.poke(path, data);
}

async function expectCorrupt(fs: SimFileSystem, file: string, offset: number): Promise<CorruptLogError> {
  const error = await open(fs, 64 * 1024).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CorruptLogError);
  const corrupt = error as CorruptLogError;
  expect(corrupt.file).toBe(file);
  expect(corrupt.offset).toBe(offset);
  expect(corrupt.message).toContain(file);
  expect(corrupt.message).toContain(`byte ${offset}`);
  return corrupt;
}

describe("recovery", () => {
  it("repairs a torn last record, logs what it dropped, and appends after it", async () => {
    const fs = await written(6);
    const offsets = batchOffsets(fs.peek(wal(1)) ?? new Uint8Array());
    const lastBatch = offsets.at(-1) ?? 0;
    // Tear the last batch: keep its first 30 bytes, as if the crash cut the write there.
    damage(fs, wal(1), (data) => data.fill(0, lastBatch + 30));
    const { log, lines } = await open(fs, 64 * 1024);
    expect(log.lastIndex()).toBe(5);
    const warning = lines.find((l) => l.msg.startsWith("repairing the torn tail"));
    // The dropped extent ends at the last non-zero byte of the 30 that landed.
    expect(warning?.fields).toMatchObject({ file: wal(1), offset: lastBatch, reason: "record checksum mismatch" });
    const bytes = (warning?.fields as { bytes: number } | undefined)?.bytes ?? 0;
    expect(bytes).toBeGreaterThan(20);
    expect(bytes).toBeLessThanOrEqual(30);
    await log.save(undefined, [makeEntry(6, 2, 10)]);
    await log.close();
    const { log: again, lines: quiet } = await open(fs, 64 * 1024);
    expect(again.lastIndex()).toBe(6);
    expect(again.term(6)).toBe(2);
    expect(quiet.some((l) => l.level === "warn")).toBe(false);
  });

  it("treats garbage after the last record of the last segment as a torn write", async () => {
    const fs = await written(4);
    const end = (batchOffsets(fs.peek(wal(1)) ?? new Uint8Array()).at(-1) ?? 0) + 200;
    const prng = createPrng(7);
    damage(fs, wal(1), (data) => {
      for (let i = end; i < end + 300; i++) data[i] = prng.int(0, 255);
    });
    const { log, lines } = await open(fs, 64 * 1024);
    expect(log.lastIndex()).toBe(4);
    expect(lines.some((l) => l.msg.startsWith("repairing the torn tail"))).toBe(true);
  });

  it("treats a batch whose sectors landed out of order as a torn write", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs, 64 * 1024);
    await log.save(undefined, [makeEntry(1, 1, 100)]);
    // One batch of several records; damage only its first record, as if that sector never landed.
    await log.save(undefined, makeEntries(2, 9, 1, 300));
    await log.close();
    const start = batchOffsets(fs.peek(wal(1)) ?? new Uint8Array()).at(-1) ?? 0;
    damage(fs, wal(1), (data) => data.fill(0, start, start + 100));
    const { log: again, lines } = await open(fs, 64 * 1024);
    expect(again.lastIndex()).toBe(1);
    expect(lines.find((l) => l.msg.startsWith("repairing the torn tail"))?.fields).toMatchObject({ offset: start });
  });

  it("refuses to start on damage in the middle of the last segment, naming the file and offset", async () => {
    const fs = await written(6);
    const data = fs.peek(wal(1)) ?? new Uint8Array();
    const hit = (batchOffsets(data)[3] ?? 0) + 50;
    damage(fs, wal(1), (d) => void (d[hit] = (d[hit] ?? 0) ^ 4));
    const error = await expectCorrupt(fs, wal(1), recordAt(data, hit));
    expect(error.reason).toContain("later write");
    expect(error.hint).toContain("wipe its data directory");
  });

  it("refuses to start on any damage in a segment that is not the last", async () => {
    const fs = await written(12, 1024);
    expect(fs.paths().filter((p) => p.endsWith(".wal")).length).toBeGreaterThan(2);
    const data = fs.peek(wal(1)) ?? new Uint8Array();
    const hit = (batchOffsets(data)[1] ?? 0) + 25;
    damage(fs, wal(1), (d) => void (d[hit] = (d[hit] ?? 0) ^ 1));
    await expectCorrupt(fs, wal(1), recordAt(data, hit));
  });

  it("refuses to start when the last record of an older segment is damaged", async () => {
    const fs = await written(12, 1024);
    const last = batchOffsets(fs.peek(wal(2)) ?? new Uint8Array()).at(-1) ?? 0;
    damage(fs, wal(2), (data) => void (data[last + 3] = (data[last + 3] ?? 0) ^ 128));
    await expectCorrupt(fs, wal(2), last);
  });

  it("refuses to start when a segment in the middle is missing", async () => {
    const fs = await written(12, 1024);
    await fs.unlink(wal(2));
    await fs.syncDir("/data/wal");
    const error = await expectCorrupt(fs, wal(2), 0);
    expect(error.reason).toBe("segment 2 is missing");
  });

  it("refuses to start on a damaged snapshot file, naming it", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    await log.save({ term: 1, vote: 0, commit: 5 }, makeEntries(1, 5, 1, 10));
    await log.createSnapshot(5, conf, new Uint8Array(100).fill(3));
    await log.close();
    const snap = "/data/snap/0000000000000005-0000000000000001.snap";
    damage(fs, snap, (data) => void (data[60] = (data[60] ?? 0) ^ 2));
    const error = await expectCorrupt(fs, snap, 8);
    expect(error.reason).toBe("snapshot checksum mismatch");
    expect(error.hint).toContain("fall back to the previous snapshot");
  });

  it("refuses to start with snapshots but no WAL: the vote would be forgotten", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    await log.save({ term: 3, vote: 2, commit: 2 }, makeEntries(1, 2, 3, 10));
    await log.createSnapshot(2, conf, new Uint8Array(1));
    await log.close();
    await fs.unlink(wal(1));
    await fs.syncDir("/data/wal");
    await expect(open(fs)).rejects.toThrow(/term and vote this node promised are lost/);
  });

  it("removes leftovers of interrupted snapshot writes and segment preparation", async () => {
    const fs = await written(2);
    for (const path of ["/data/snap/0000000000000009-0000000000000001.snap.tmp", "/data/wal/0000000000000002.wal.tmp"]) {
      const handle = await fs.open(path, "create");
      await handle.write(new Uint8Array([1, 2, 3]), 0);
      await handle.sync();
    }
    await fs.syncDir("/data/snap");
    await fs.syncDir("/data/wal");
    const { log, lines } = await open(fs, 64 * 1024);
    expect(log.lastIndex()).toBe(2);
    expect(fs.paths().some((p) => p.endsWith(".snap.tmp"))).toBe(false);
    // Each repair is one warning that says what was done, why, and to which file.
    const repairs = lines.filter((l) => l.level === "warn").map((l) => l.fields);
    expect(repairs).toEqual([
      expect.objectContaining({
        repair: "snapshot-temp-removed",
        reason: expect.any(String),
        file: "/data/snap/0000000000000009-0000000000000001.snap.tmp",
      }),
      expect.objectContaining({
        repair: "prepared-segment-removed",
        reason: expect.any(String),
        file: "/data/wal/0000000000000002.wal.tmp",
      }),
    ]);
  });

  it("completes an initialisation whose first write never reached the disk", async () => {
    const fs = new SimFileSystem();
    fs.freezeAfter(0, ["datasync"]);
    const opening = open(fs);
    await fs.frozen;
    const crashed = fs.crash(createPrng(1), { loseAllUnsynced: true });
    void opening;
    expect(crashed.paths()).toEqual([]);
    const fs2 = new SimFileSystem();
    await fs2.mkdirp("/data/wal");
    const handle = await fs2.open(wal(1), "create");
    await handle.write(new Uint8Array(4096), 0);
    await handle.sync();
    await fs2.syncDir("/data/wal");
    const { log, lines } = await open(fs2);
    expect(lines.some((l) => l.msg.startsWith("completing an interrupted initialisation"))).toBe(true);
    expect(log.initialState().conf).toEqual(conf);
    await log.save(undefined, [makeEntry(1, 1, 1)]);
    await log.close();
    const { log: again } = await openStorage({ dir, fs: fs2, segmentBytes: 4096, logger: silentLogger }).then((l) => ({ log: l }));
    expect(again.initialState().conf).toEqual(conf);
    expect(again.lastIndex()).toBe(1);
  });

  it("keeps the log when a crash interrupts an install after the snapshot file but before the WAL reset", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    await log.save({ term: 2, vote: 1, commit: 3 }, makeEntries(1, 10, 2, 20));
    fs.hold(["datasync"]);
    const installing = log.installSnapshot({ meta: { index: 6, term: 3, conf }, data: new Uint8Array([6]) });
    await settle(20);
    // The snapshot file is durable (its sync is an fsync); the reset record waits on its fdatasync.
    expect(fs.paths()).toContain("/data/snap/0000000000000006-0000000000000003.snap");
    const crashed = fs.crash(createPrng(3), { loseAllUnsynced: true });
    void installing;
    const { log: again, lines } = await open(crashed);
    // Entry 6 has term 2, the snapshot term 3: a different history, so entries 7..10 go, loudly.
    expect(again.snapshot().meta.index).toBe(6);
    expect(again.lastIndex()).toBe(6);
    expect(lines.find((l) => l.msg.startsWith("dropping log entries"))?.fields).toMatchObject({
      repair: "entries-dropped-for-snapshot",
      entries: 4,
    });
    await again.save(undefined, makeEntries(7, 8, 3, 20));
    await again.close();
    const { log: third } = await open(crashed);
    expect(third.lastIndex()).toBe(8);
    expect(third.term(7)).toBe(3);
  });

  it("records the reset, with a warning, when the log ends before a snapshot whose install a crash interrupted", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    await log.save({ term: 2, vote: 1, commit: 3 }, makeEntries(1, 3, 2, 20));
    fs.hold(["datasync"]);
    const installing = log.installSnapshot({ meta: { index: 6, term: 3, conf }, data: new Uint8Array([6]) });
    await settle(20);
    const crashed = fs.crash(createPrng(4), { loseAllUnsynced: true });
    void installing;
    const { log: again, lines } = await open(crashed);
    expect(again.lastIndex()).toBe(6);
    expect(lines.filter((l) => l.level === "warn").map((l) => l.fields)).toEqual([
      expect.objectContaining({ repair: "reset-to-snapshot-recorded", snapshotIndex: 6, entries: 0 }),
    ]);
  });

  it("never deletes the segment that holds the last durable hard state", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs, 1024);
    for (let i = 1; i <= 12; i++) await log.save({ term: 5, vote: 2, commit: i }, [makeEntry(i, 5, 150)]);
    await log.createSnapshot(12, conf, new Uint8Array(1));
    // The next save starts a new segment; hold its fdatasync so its header is not yet durable.
    fs.hold(["datasync"]);
    const saving = log.save(undefined, [makeEntry(13, 5, 900)]);
    await settle(10);
    await log.compact(12);
    const crashed = fs.crash(createPrng(5), { loseAllUnsynced: true });
    void saving;
    const { log: again } = await open(crashed, 1024);
    expect(again.initialState().hardState).toEqual({ term: 5, vote: 2, commit: 12 });
    expect(again.lastIndex()).toBe(12);
  });

  it("deletes no segment for a snapshot whose file could not be written", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs, 1024);
    for (let i = 1; i <= 12; i++) await log.save({ term: 1, vote: 0, commit: i }, [makeEntry(i, 1, 150)]);
    fs.failAfter(0, "ENOSPC", ["sync"]);
    const installing = log.installSnapshot({ meta: { index: 50, term: 2, conf }, data: new Uint8Array(10) });
    const compacting = log.compact(50);
    await expect(installing).rejects.toBeInstanceOf(StorageFailedError);
    await compacting;
    const crashed = fs.crash(createPrng(9), { loseAllUnsynced: true });
    const { log: again } = await open(crashed, 1024);
    expect(again.lastIndex()).toBe(12);
    expect(again.snapshot().meta.index).toBe(0);
  });

  it("fails cleanly when preparing the next segment hits ENOSPC, acknowledging only what fits", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs, 2048);
    fs.failAfter(0, "ENOSPC", ["open"]);
    const acked: number[] = [];
    let failure: unknown;
    for (let i = 1; i <= 40 && failure === undefined; i++) {
      await log.save(undefined, [makeEntry(i, 1, 200)]).then(
        () => void acked.push(i),
        (e: unknown) => void (failure = e),
      );
    }
    expect(failure).toBeInstanceOf(StorageFailedError);
    expect((failure as StorageFailedError).code).toBe("ENOSPC");
    expect((failure as StorageFailedError).message).toContain(".wal.tmp");
    expect(acked.length).toBeGreaterThan(0);
    const crashed = fs.crash(createPrng(2), { loseAllUnsynced: true });
    const { log: again } = await open(crashed, 2048);
    expect(again.lastIndex()).toBe(acked.length);
  });

  it("reports EIO from fdatasync as a storage failure and keeps every acknowledged write", async () => {
    const fs = new SimFileSystem();
    const { log } = await open(fs);
    await log.save({ term: 1, vote: 1, commit: 0 }, makeEntries(1, 3, 1, 50));
    fs.failAfter(0, "EIO", ["datasync"]);
    await expect(log.save({ term: 1, vote: 1, commit: 3 }, makeEntries(4, 6, 1, 50))).rejects.toMatchObject({
      name: "StorageFailedError",
      code: "EIO",
    });
    expect(log.failure?.message).toMatch(/fdatasync .*0000000000000001\.wal failed with EIO/);
    const crashed = fs.crash(createPrng(4));
    const { log: again } = await open(crashed);
    expect(again.lastIndex()).toBeGreaterThanOrEqual(3);
    for (const e of again.entries(1, 4, Infinity)) expect(sameBytes(e.data, makeEntry(e.index, 1, 50).data)).toBe(true);
  });
});

export type { DurableLog };
