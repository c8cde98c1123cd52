import { describe, expect, it } from "vitest";
import { MemoryStorage } from "../../src/core/memory-storage.js";
import { CompactedError, UnavailableError, entrySize, type LogStorage } from "../../src/core/storage.js";
import type { ConfState, Entry, HardState, Snapshot } from "../../src/core/types.js";
import { createPrng } from "../../src/lib/prng.js";
import { openStorage } from "../../src/storage/index.js";
import { SimFileSystem } from "./sim-file-system.js";
import { makeEntries, makeEntry } from "./helpers.js";
import { silentLogger } from "../../src/lib/logger.js";

/**
 * The read-view contract of LogStorage (src/core/storage.ts), run against MemoryStorage (the reference
 * the core is tested with) and against the durable log, so the two cannot drift apart.
 */
interface Subject {
  readonly log: LogStorage;
  append(entries: readonly Entry[]): Promise<void>;
  setHardState(hardState: HardState): Promise<void>;
  installSnapshot(snapshot: Snapshot): Promise<void>;
  /** Takes a local snapshot at `index` and drops the entries it covers. */
  snapshotAndCompact(index: number, conf: ConfState, data: Uint8Array): Promise<void>;
  /** Closes and reopens, where that means anything. */
  restart(): Promise<Subject>;
}

const conf: ConfState = { voters: [1, 2, 3], learners: [] };

function memorySubject(): Subject {
  const storage = new MemoryStorage(conf);
  const subject: Subject = {
    log: storage,
    append: async (entries) => storage.append(entries),
    setHardState: async (hs) => storage.setHardState(hs),
    installSnapshot: async (snap) => storage.applySnapshot(snap),
    snapshotAndCompact: async (index, c, data) => void storage.createSnapshot(index, c, data),
    restart: async () => subject,
  };
  return subject;
}

async function durableSubject(fs = new SimFileSystem()): Promise<Subject> {
  const log = await openStorage({ dir: "/d", fs, segmentBytes: 2048, initialConf: conf, logger: silentLogger });
  return {
    log,
    append: (entries) => log.save(undefined, entries),
    setHardState: (hs) => log.save(hs, []),
    installSnapshot: (snap) => log.installSnapshot(snap),
    snapshotAndCompact: async (index, c, data) => {
      await log.createSnapshot(index, c, data);
      await log.compact(index);
    },
    restart: async () => {
      await log.close();
      return durableSubject(fs);
    },
  };
}

const subjects: [string, () => Promise<Subject>][] = [
  ["MemoryStorage", async () => memorySubject()],
  ["durable log", () => durableSubject()],
];

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe.each(subjects)("LogStorage contract: %s", (_name, make) => {
  it("starts empty: firstIndex = lastIndex + 1, term(0) = 0, the initial membership", async () => {
    const { log } = await make();
    expect([log.firstIndex(), log.lastIndex(), log.term(0)]).toEqual([1, 0, 0]);
    expect(log.entries(1, 1, 100)).toEqual([]);
    expect(log.snapshot().meta).toEqual({ index: 0, term: 0, conf });
    expect(log.initialState()).toEqual({ hardState: { term: 0, vote: 0, commit: 0 }, conf });
    expect(thrown(() => log.term(1))).toBeInstanceOf(UnavailableError);
  });

  it("serves [lo, hi) up to bytesMax, always at least one entry", async () => {
    const subject = await make();
    await subject.append(makeEntries(1, 6, 1, 100));
    const { log } = subject;
    expect(log.entries(2, 5, Infinity).map((e) => e.index)).toEqual([2, 3, 4]);
    expect(log.entries(2, 5, 0).map((e) => e.index)).toEqual([2]);
    const two = entrySize(makeEntry(1, 1, 100)) * 2;
    expect(log.entries(1, 7, two).map((e) => e.index)).toEqual([1, 2]);
    expect(log.entries(1, 7, two + 1).map((e) => e.index)).toEqual([1, 2]);
  });

  it("throws UnavailableError past the end and CompactedError below the start, with the bounds", async () => {
    const subject = await make();
    await subject.append(makeEntries(1, 10, 1, 10));
    await subject.snapshotAndCompact(4, conf, new Uint8Array([1]));
    const { log } = subject;
    const unavailable = thrown(() => log.entries(5, 12, Infinity));
    expect(unavailable).toBeInstanceOf(UnavailableError);
    expect(unavailable).toMatchObject({ index: 11, lastIndex: 10 });
    const compacted = thrown(() => log.entries(4, 6, Infinity));
    expect(compacted).toBeInstanceOf(CompactedError);
    expect(compacted).toMatchObject({ index: 4, firstIndex: 5 });
    expect(thrown(() => log.term(3))).toBeInstanceOf(CompactedError);
    expect(thrown(() => log.term(11))).toMatchObject({ name: "UnavailableError", index: 11, lastIndex: 10 });
  });

  it("answers term(firstIndex - 1) after compaction (the dummy at the snapshot point)", async () => {
    const subject = await make();
    await subject.append([...makeEntries(1, 3, 1, 10), ...makeEntries(4, 8, 2, 10)]);
    await subject.snapshotAndCompact(5, conf, new Uint8Array([5]));
    expect([subject.log.firstIndex(), subject.log.lastIndex(), subject.log.term(4 + 1)]).toEqual([6, 8, 2]);
    expect(subject.log.snapshot().meta).toEqual({ index: 5, term: 2, conf });
  });

  it("replaces a conflicting suffix and ignores entries below firstIndex", async () => {
    const subject = await make();
    await subject.append(makeEntries(1, 10, 1, 10));
    await subject.append(makeEntries(7, 8, 2, 10));
    expect([subject.log.lastIndex(), subject.log.term(6), subject.log.term(7), subject.log.term(8)]).toEqual([8, 1, 2, 2]);
    await subject.snapshotAndCompact(5, conf, new Uint8Array(0));
    await subject.append(makeEntries(3, 9, 3, 10));
    expect([subject.log.firstIndex(), subject.log.lastIndex(), subject.log.term(6), subject.log.term(9)]).toEqual([6, 9, 3, 3]);
  });

  it("installs a snapshot: the log restarts after it, with its membership", async () => {
    const subject = await make();
    await subject.append(makeEntries(1, 5, 1, 10));
    const other: ConfState = { voters: [1, 2], learners: [3] };
    await subject.installSnapshot({ meta: { index: 20, term: 4, conf: other }, data: new Uint8Array([9]) });
    const { log } = subject;
    expect([log.firstIndex(), log.lastIndex(), log.term(20)]).toEqual([21, 20, 4]);
    expect(log.initialState().conf).toEqual(other);
    expect(thrown(() => log.entries(20, 21, 1))).toBeInstanceOf(CompactedError);
    await subject.append(makeEntries(21, 22, 4, 10));
    expect(log.lastIndex()).toBe(22);
  });

  it("returns the hard state it was given", async () => {
    const subject = await make();
    await subject.setHardState({ term: 3, vote: 2, commit: 0 });
    expect(subject.log.initialState().hardState).toEqual({ term: 3, vote: 2, commit: 0 });
  });
});

describe("durable log against MemoryStorage, random operations", () => {
  it("agrees on every observable answer after each of 2000 operations, and after restarts", async () => {
    const prng = createPrng(42);
    const memory = memorySubject();
    let durable = await durableSubject();
    let term = 1;
    for (let step = 0; step < 2000; step++) {
      const log = memory.log;
      const roll = prng.next();
      if (roll < 0.6) {
        const from = prng.chance(0.2) ? prng.int(log.firstIndex(), log.lastIndex() + 1) : log.lastIndex() + 1;
        if (from <= log.lastIndex()) term++;
        const entries = makeEntries(from, from + prng.int(0, 4), term, prng.int(0, 300), step);
        await Promise.all([memory.append(entries), durable.append(entries)]);
      } else if (roll < 0.7 && log.lastIndex() > log.snapshot().meta.index) {
        const index = prng.int(log.snapshot().meta.index + 1, log.lastIndex());
        const data = new Uint8Array([step & 255]);
        await Promise.all([memory.snapshotAndCompact(index, conf, data), durable.snapshotAndCompact(index, conf, data)]);
      } else if (roll < 0.73) {
        term++;
        const snap: Snapshot = { meta: { index: log.lastIndex() + prng.int(-2, 5), term, conf }, data: new Uint8Array([1]) };
        if (snap.meta.index >= log.snapshot().meta.index) {
          await Promise.all([memory.installSnapshot(snap), durable.installSnapshot(snap)]);
        }
      } else if (roll < 0.8) {
        const hs = { term, vote: prng.int(0, 3), commit: prng.int(0, log.lastIndex()) };
        await Promise.all([memory.setHardState(hs), durable.setHardState(hs)]);
      } else if (roll < 0.82) {
        durable = await durable.restart();
      }
      compare(memory.log, durable.log, prng.int(0, 2000), `step ${step}`);
    }
  });
});

function compare(want: LogStorage, got: LogStorage, bytesMax: number, context: string): void {
  expect([got.firstIndex(), got.lastIndex()], context).toEqual([want.firstIndex(), want.lastIndex()]);
  expect(got.initialState(), context).toEqual(want.initialState());
  expect(got.snapshot().meta, context).toEqual(want.snapshot().meta);
  for (let i = want.firstIndex() - 2; i <= want.lastIndex() + 1; i++) {
    const a = thrown(() => want.term(i)) ?? want.term(i);
    const b = thrown(() => got.term(i)) ?? got.term(i);
    expect(b, `${context}: term(${i})`).toEqual(a);
  }
  const lo = want.firstIndex();
  const entriesOf = (log: LogStorage): unknown =>
    thrown(() => log.entries(lo, want.lastIndex() + 1, bytesMax)) ?? log.entries(lo, want.lastIndex() + 1, bytesMax);
  expect(entriesOf(got), context).toEqual(entriesOf(want));
}
