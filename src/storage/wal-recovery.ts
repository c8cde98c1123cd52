import { join } from "node:path";
import { assert } from "../lib/assert.js";
import type { ConfState, HardState, Snapshot } from "../core/types.js";
import { CorruptLogError } from "./errors.js";
import type { FileHandle } from "./file-system.js";
import { tmpSuffix, parseSegmentName, segmentName } from "./layout.js";
import { LogReplay, type ReplayResult } from "./log-replay.js";
import { PackedEntries } from "./packed-entries.js";
import type { Logger } from "../lib/logger.js";
import { forEachRecord, scanSegment, type SegmentScan, type SegmentTail } from "./segment-scan.js";
import type { WalRecord } from "./wal-codec.js";
import { WalWriter, type WalSegment, type WalWriterOptions } from "./wal-writer.js";

export interface RecoveredWal {
  readonly writer: WalWriter;
  readonly hardState: HardState;
  readonly bootstrapConf: ConfState;
  /** The entries after the snapshot, contiguous from its index + 1. */
  readonly entries: PackedEntries;
}

/** Zeroing a torn tail writes this much per call. */
const repairChunkBytes = 1 << 20;

/**
 * Opens the WAL in `options.dir`: removes unfinished segment preparations, replays every segment on top
 * of `snapshot`, zeroes a torn tail of the last segment (logging what was dropped), and returns a writer
 * positioned after the last complete write. A new directory gets its first segment, whose header
 * records `initialConf`. Throws CorruptLogError for damage a crash cannot explain.
 */
export async function recoverWal(
  options: WalWriterOptions,
  snapshot: Snapshot | undefined,
  initialConf: ConfState,
  logger: Logger,
): Promise<RecoveredWal> {
  const { dir } = options;
  const seqs = await listSegments(options, logger);
  if (seqs.length === 0) {
    if (snapshot !== undefined) throw lostHardState(dir);
    logger.info("creating a new write-ahead log", { dir });
    const writer = await WalWriter.create(options, initialConf);
    return { writer, hardState: { term: 0, vote: 0, commit: 0 }, bootstrapConf: initialConf, entries: new PackedEntries() };
  }

  // The newest segment's handle, then the writer that owns it: closed if start-up fails part-way.
  let activeHandle: FileHandle | undefined;
  let writer: WalWriter | undefined;
  try {
    const replay = new LogReplay(snapshot?.meta.index ?? 0, snapshot?.meta.term ?? 0);
    const { segments, last, nextBatchId } = await replaySegments(options, seqs, replay, (handle) => (activeHandle = handle));
    const active = segments.at(-1);
    assert(active !== undefined && activeHandle !== undefined, "recovery: no segment after listing some");
    if (last.tail.kind === "torn") await repairTornTail(activeHandle, active.path, last.tail, logger);

    if (!replay.hasStarted) {
      // Only one segment, and its first write (the header) never completed: initialisation was interrupted.
      if (snapshot !== undefined) throw lostHardState(dir);
      logger.warn("completing an interrupted initialisation of the write-ahead log", {
        repair: "initialisation-completed",
        reason: "the only segment lacks its header: the process stopped while creating the log",
        dir,
      });
      writer = new WalWriter(options, {
        segments,
        activeHandle,
        writeOffset: 0,
        needsHeader: true,
        nextBatchId: 1,
        lastIndex: 0,
        lastTerm: 0,
        hardState: { term: 0, vote: 0, commit: 0 },
        bootstrapConf: initialConf,
      });
      await writer.save(undefined, []);
      return { writer, hardState: { term: 0, vote: 0, commit: 0 }, bootstrapConf: initialConf, entries: new PackedEntries() };
    }

    const result = replay.finish();
    writer = new WalWriter(options, {
      segments,
      activeHandle,
      writeOffset: last.dataEnd,
      needsHeader: last.batches === 0,
      nextBatchId: nextBatchId ?? 1,
      lastIndex: result.walLastIndex,
      lastTerm: result.walLastTerm,
      hardState: result.hardState,
      bootstrapConf: result.bootstrapConf,
    });
    if (result.needsReset && snapshot !== undefined) await resetToSnapshot(writer, snapshot, result, dir, logger);
    return { writer, hardState: result.hardState, bootstrapConf: result.bootstrapConf, entries: result.entries };
  } catch (error) {
    if (writer !== undefined) await writer.close();
    else await activeHandle?.close();
    throw error;
  }
}

interface ReplayedSegments {
  readonly segments: WalSegment[];
  /** The scan of the newest segment. */
  readonly last: SegmentScan;
  /** The id the next write batch gets, when any segment holds one. */
  readonly nextBatchId: number | undefined;
}

/**
 * Checks and replays every segment, oldest first, into `replay`. The older segments' files are closed
 * once read; the newest one's handle is handed to `keepActive` as soon as it is open (the writer goes on
 * writing into it, and the caller closes it if start-up fails).
 */
async function replaySegments(
  options: WalWriterOptions,
  seqs: readonly number[],
  replay: LogReplay,
  keepActive: (handle: FileHandle) => void,
): Promise<ReplayedSegments> {
  const segments: WalSegment[] = [];
  let expectedBatchId: number | undefined;
  let last: SegmentScan | undefined;
  for (const [i, seq] of seqs.entries()) {
    const path = join(options.dir, segmentName(seq));
    const isLast = i === seqs.length - 1;
    const handle = await options.fs.open(path, "existing");
    if (isLast) keepActive(handle);
    let buf: Uint8Array;
    let read: number;
    try {
      // Read with one call into a buffer of its own: replayed entries keep their data in it.
      buf = new Uint8Array(await handle.size());
      read = await handle.read(buf, 0);
    } finally {
      if (!isLast) await handle.close();
    }
    const scan = scanSegment(path, buf.subarray(0, read), { isLast, expectedBatchId });
    if (scan.batches === 0 && !isLast) {
      throw new CorruptLogError(path, 0, "a segment that is not the newest holds no complete write");
    }
    // The newest segment is mostly zeros: keep only its data, not the whole preallocated file.
    const data = scan.dataEnd < buf.byteLength / 2 ? buf.slice(0, scan.dataEnd) : buf.subarray(0, scan.dataEnd);
    replay.beginSegment(data);
    let maxIndex = 0;
    forEachRecord(path, data, (record, offset, segmentStart) => {
      replay.apply(path, seq, record, offset, segmentStart);
      maxIndex = Math.max(maxIndex, indexNamedBy(record));
    });
    if (scan.lastBatchId !== undefined) expectedBatchId = scan.lastBatchId + 1;
    segments.push({ seq, path, maxIndex, durable: scan.batches > 0 });
    last = scan;
  }
  assert(last !== undefined, "recovery: no segment after listing some");
  return { segments, last, nextBatchId: expectedBatchId };
}

/** Zeroes and syncs the torn tail of the newest segment, saying what it dropped. */
async function repairTornTail(
  handle: FileHandle,
  file: string,
  tail: Extract<SegmentTail, { kind: "torn" }>,
  logger: Logger,
): Promise<void> {
  const { offset, bytes, records, reason } = tail;
  logger.warn("repairing the torn tail of the write-ahead log: dropping an unfinished write", {
    repair: "torn-tail-zeroed",
    // What the scan found; damage only at the end of the newest segment is a write a crash cut short.
    reason,
    file,
    offset,
    bytes,
    records,
  });
  for (let at = offset; at < offset + bytes; at += repairChunkBytes) {
    await handle.write(new Uint8Array(Math.min(repairChunkBytes, offset + bytes - at)), at);
  }
  await handle.datasync();
}

/**
 * Writes the reset record the log lacks after `snapshot`. Only a crash separates a snapshot from the log
 * this way (see LogReplay); the snapshot holds committed state, so it wins.
 */
async function resetToSnapshot(writer: WalWriter, snapshot: Snapshot, result: ReplayResult, dir: string, logger: Logger): Promise<void> {
  const behind = result.walLastIndex < snapshot.meta.index;
  logger.warn(
    behind
      ? "recording that the log continues from the newest snapshot"
      : "dropping log entries that follow a different history than the newest snapshot",
    {
      repair: behind ? "reset-to-snapshot-recorded" : "entries-dropped-for-snapshot",
      reason: behind
        ? "the log ends before the snapshot index: an install stopped before its reset record, or the snapshot covered entries not yet on this disk"
        : "the log's entry at the snapshot index has another term: an install from the leader stopped before its reset record",
      dir,
      snapshotIndex: snapshot.meta.index,
      snapshotTerm: snapshot.meta.term,
      entries: result.discarded,
    },
  );
  // Record in the WAL that the log now starts after the snapshot, before anything is appended to it.
  await writer.reset(snapshot.meta.index, snapshot.meta.term, Promise.resolve());
}

/** Segment sequence numbers, ascending and contiguous; removes leftovers of segment preparation. */
async function listSegments(options: WalWriterOptions, logger: Logger): Promise<number[]> {
  const { fs, dir } = options;
  const seqs: number[] = [];
  let removed = 0;
  for (const name of await fs.readdir(dir)) {
    const seq = parseSegmentName(name);
    if (seq !== undefined) seqs.push(seq);
    else if (name.endsWith(tmpSuffix)) {
      logger.warn("removing a prepared segment left behind", {
        repair: "prepared-segment-removed",
        reason: "a clean close removes it, so the previous process stopped without closing the log",
        file: join(dir, name),
      });
      await fs.unlink(join(dir, name));
      removed++;
    } else {
      logger.warn("ignoring an unexpected file in the WAL directory", { file: join(dir, name) });
    }
  }
  if (removed > 0) await fs.syncDir(dir);
  seqs.sort((a, b) => a - b);
  for (let i = 1; i < seqs.length; i++) {
    const prev = seqs[i - 1] ?? 0;
    if (seqs[i] !== prev + 1) {
      throw new CorruptLogError(join(dir, segmentName(prev + 1)), 0, `segment ${prev + 1} is missing`);
    }
  }
  return seqs;
}

/** The index a record names, for a segment's maxIndex: its header's previous index, entries, resets. */
function indexNamedBy(record: WalRecord): number {
  switch (record.type) {
    case "segmentHeader":
      return record.header.prevIndex;
    case "entry":
      return record.entry.index;
    case "reset":
      return record.index;
    case "hardState":
      return 0;
  }
}

function lostHardState(dir: string): CorruptLogError {
  return new CorruptLogError(
    dir,
    0,
    "snapshot files exist but the WAL has no readable segment, so the term and vote this node promised are lost",
    "Do not start this node with an empty WAL: it could vote twice in a term. Restore the wal/ directory from " +
      "a backup, or remove this member from the cluster, wipe its data directory and add it back",
  );
}
