import { join } from "node:path";
import { assert } from "../lib/assert.js";
import { sameHardState, type ConfState, type Entry, type HardState } from "../core/types.js";
import { StorageClosedError, StorageFailedError, StorageOverloadedError, errorCode } from "./errors.js";
import type { FileHandle, FileSystem } from "./file-system.js";
import { tmpSuffix, segmentName } from "./layout.js";
import { recordHeaderBytes } from "./record.js";
import { entryFixedBytes, walFormatVersion, encodeBatch, recordBytes, type WalRecord } from "./wal-codec.js";

/** A segment file the writer knows about, oldest first. */
export interface WalSegment {
  readonly seq: number;
  readonly path: string;
  /** The largest index any record in it names: compaction through that index makes it deletable. */
  maxIndex: number;
  /** A batch in it has been synced, so its header (and the hard state in it) is on disk. */
  durable: boolean;
}

/** Where writing resumes: the state replay ended in, or a new directory's first segment. */
export interface WalPosition {
  /** Non-empty; the last is the active segment. */
  readonly segments: WalSegment[];
  readonly activeHandle: FileHandle;
  readonly writeOffset: number;
  /** The active segment has no header yet (it is new, or its first write was torn). */
  readonly needsHeader: boolean;
  readonly nextBatchId: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly hardState: HardState;
  readonly bootstrapConf: ConfState;
}

export interface WalWriterOptions {
  readonly fs: FileSystem;
  /** The wal/ directory. */
  readonly dir: string;
  readonly segmentBytes: number;
  /** A group commit takes queued saves up to this many bytes (always at least one save). */
  readonly writeBatchBytesMax: number;
  /** Saves waiting for the disk beyond this are refused with StorageOverloadedError. */
  readonly pendingSavesMax: number;
}

interface Deferred {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

type WalOp =
  | {
      readonly kind: "save";
      readonly hardState: HardState | undefined;
      readonly entries: readonly Entry[];
      readonly bytes: number;
      readonly done: Deferred;
    }
  | {
      readonly kind: "reset";
      readonly index: number;
      readonly term: number;
      /** Settles once the snapshot the reset points to is durable: the record must not precede it. */
      readonly ready: Promise<void>;
      readonly done: Deferred;
    };

type WriterState =
  | { readonly kind: "idle" }
  | { readonly kind: "flushing"; readonly drained: Promise<void> }
  | { readonly kind: "failed"; readonly error: StorageFailedError }
  | { readonly kind: "closed" };

type Prepared =
  | { readonly kind: "ok"; readonly seq: number; readonly tmpPath: string; readonly handle: FileHandle }
  | { readonly kind: "error"; readonly operation: string; readonly error: unknown };

type Preparation = { readonly kind: "none" } | { readonly kind: "preparing"; readonly seq: number; readonly result: Promise<Prepared> };

/** Zero-fill writes this much per call: bounded memory, and no single huge write. */
const zeroFillChunkBytes = 1 << 20;
const zeroFillChunk = new Uint8Array(zeroFillChunkBytes);

/**
 * Appends records to segment files with group commit: while one write + fdatasync is in flight, new
 * saves queue up, and the next flush writes all of them (up to writeBatchBytesMax) with one write and
 * one fdatasync. A save's promise resolves only after the fdatasync that covers it, in order.
 *
 * Segments are zero-filled to their full size before use (by a background preparation of the next one),
 * for two reasons: an fdatasync of an overwrite in already-allocated blocks flushes only data, not the
 * allocation metadata a sparse or growing file would need (a journal commit on ext4/xfs); and a full disk
 * shows up while preparing, ahead of time, rather than in the middle of an append. Zeros are also what
 * replay reads as "end of data". `npm run bench:wal` prints the raw fdatasync rate of all three layouts.
 *
 * After a write or sync fails (ENOSPC, EIO), the writer stops for good: what it wrote may or may not be
 * on disk, so it acknowledges nothing more; the next start-up repairs the tail.
 */
export class WalWriter {
  private readonly queue: WalOp[] = [];
  private state: WriterState = { kind: "idle" };
  private preparation: Preparation = { kind: "none" };
  private readonly segments: WalSegment[];
  private handle: FileHandle;
  private writeOffset: number;
  private needsHeader: boolean;
  /** A segment was renamed into place and the directory not yet synced. */
  private dirSyncPending = false;
  private nextBatchId: number;
  private lastIndex: number;
  private lastTerm: number;
  private hardState: HardState;
  private readonly bootstrapConf: ConfState;

  constructor(
    private readonly options: WalWriterOptions,
    position: WalPosition,
  ) {
    assert(position.segments.length > 0, "wal writer needs a segment");
    this.segments = position.segments;
    this.handle = position.activeHandle;
    this.writeOffset = position.writeOffset;
    this.needsHeader = position.needsHeader;
    this.nextBatchId = position.nextBatchId;
    this.lastIndex = position.lastIndex;
    this.lastTerm = position.lastTerm;
    this.hardState = position.hardState;
    this.bootstrapConf = position.bootstrapConf;
  }

  /** Creates the first segment of a new WAL and writes its header durably. */
  static async create(options: WalWriterOptions, bootstrapConf: ConfState): Promise<WalWriter> {
    const prepared = await prepareSegment(options, 1);
    if (prepared.kind === "error") throw failure(prepared.operation, prepared.error);
    const path = join(options.dir, segmentName(1));
    await options.fs.rename(prepared.tmpPath, path);
    const writer = new WalWriter(options, {
      segments: [{ seq: 1, path, maxIndex: 0, durable: false }],
      activeHandle: prepared.handle,
      writeOffset: 0,
      needsHeader: true,
      nextBatchId: 1,
      lastIndex: 0,
      lastTerm: 0,
      hardState: { term: 0, vote: 0, commit: 0 },
      bootstrapConf,
    });
    writer.dirSyncPending = true;
    // An empty save on a segment without a header writes just the header (and syncs the directory).
    await writer.save(undefined, []);
    return writer;
  }

  get failure(): StorageFailedError | undefined {
    return this.state.kind === "failed" ? this.state.error : undefined;
  }

  /** Saves queued and not yet taken by a flush. */
  get pendingSaves(): number {
    return this.queue.length;
  }

  /** Starts zero-filling the segment after the active one, so rotation does not wait for it. */
  prepareNext(): void {
    if (this.preparation.kind !== "none" || this.state.kind === "closed" || this.state.kind === "failed") return;
    const seq = this.active().seq + 1;
    const result = prepareSegment(this.options, seq);
    this.preparation = { kind: "preparing", seq, result };
  }

  /** Queues entries and/or a hard state; resolves once they are durable. An empty save is a barrier. */
  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    let bytes = 0;
    for (const entry of entries) bytes += recordHeaderBytes + entryFixedBytes + entry.data.byteLength;
    return this.enqueue((done) => ({ kind: "save", hardState, entries, bytes, done }));
  }

  /** Queues a reset to an installed snapshot; it is written only after `ready` (the snapshot file) settles. */
  reset(index: number, term: number, ready: Promise<void>): Promise<void> {
    return this.enqueue((done) => ({ kind: "reset", index, term, ready, done }));
  }

  /**
   * Deletes the oldest segments whose records all name indexes <= `index`, oldest first, syncing the
   * directory after each so that a crash can only leave a contiguous run of segments. The segment after a
   * deleted one must have a durable header, since that header then carries the hard state.
   */
  async deleteSegmentsThrough(index: number): Promise<void> {
    while (true) {
      const [oldest, next] = this.segments;
      if (oldest === undefined || next === undefined || !next.durable || oldest.maxIndex > index) return;
      this.segments.shift();
      try {
        await this.options.fs.unlink(oldest.path);
        await this.options.fs.syncDir(this.options.dir);
      } catch (error) {
        this.segments.unshift(oldest);
        throw error;
      }
    }
  }

  /** Waits for queued saves to be written, then closes the files. */
  async close(): Promise<void> {
    if (this.state.kind === "flushing") await this.state.drained;
    this.state = this.state.kind === "failed" ? this.state : { kind: "closed" };
    await this.handle.close();
    const preparation = this.preparation;
    this.preparation = { kind: "none" };
    if (preparation.kind === "preparing") {
      const prepared = await preparation.result;
      if (prepared.kind === "ok") {
        await prepared.handle.close();
        await this.options.fs.unlink(prepared.tmpPath);
      }
    }
  }

  private enqueue(make: (done: Deferred) => WalOp): Promise<void> {
    switch (this.state.kind) {
      case "failed":
        return Promise.reject(this.state.error);
      case "closed":
        return Promise.reject(new StorageClosedError());
      case "idle":
      case "flushing":
        break;
    }
    if (this.queue.length >= this.options.pendingSavesMax) {
      return Promise.reject(new StorageOverloadedError(this.queue.length, this.options.pendingSavesMax));
    }
    const done = deferred();
    this.queue.push(make(done));
    if (this.state.kind === "idle") this.state = { kind: "flushing", drained: this.flushLoop() };
    return done.promise;
  }

  private async flushLoop(): Promise<void> {
    while (true) {
      // Yield first: the caller sets the "flushing" state after this returns its promise, and every save
      // made in the current tick joins this write.
      await Promise.resolve();
      if (this.queue.length === 0 || this.state.kind !== "flushing") break;
      await this.writeBatch(this.takeBatch());
    }
    if (this.state.kind === "flushing") this.state = { kind: "idle" };
  }

  /** The next ops to write together: a reset only at the head (it waits for its snapshot file). */
  private takeBatch(): WalOp[] {
    let count = 0;
    let bytes = 0;
    for (const op of this.queue) {
      const opBytes = op.kind === "save" ? op.bytes : recordHeaderBytes;
      if (count > 0 && (op.kind === "reset" || bytes + opBytes > this.options.writeBatchBytesMax)) break;
      count++;
      bytes += opBytes;
    }
    return this.queue.splice(0, count);
  }

  private async writeBatch(ops: readonly WalOp[]): Promise<void> {
    const head = ops[0];
    if (head?.kind === "reset") {
      try {
        await head.ready;
      } catch (error) {
        this.fail(ops, failure("write the snapshot file", error));
        return;
      }
    }
    const records = this.recordsOf(ops);
    if (records.length === 0 && !this.needsHeader) {
      for (const op of ops) op.done.resolve();
      return;
    }
    let operation = "";
    try {
      let bytes = 0;
      for (const record of records) bytes += recordBytes(record);
      if (this.writeOffset > 0 && this.writeOffset + bytes + (this.needsHeader ? this.headerBytes() : 0) > this.options.segmentBytes) {
        operation = "rotate to a new segment";
        await this.rotate();
      }
      if (this.needsHeader) records.unshift(this.header());
      const buf = encodeBatch(this.nextBatchId, records);
      this.advance(records);
      const path = this.active().path;
      operation = `write ${path}`;
      await this.handle.write(buf, this.writeOffset);
      operation = `fdatasync ${path}`;
      await this.handle.datasync();
      if (this.dirSyncPending) {
        operation = `fsync ${this.options.dir}`;
        await this.options.fs.syncDir(this.options.dir);
        this.dirSyncPending = false;
      }
      this.writeOffset += buf.byteLength;
      this.nextBatchId++;
      this.needsHeader = false;
      this.active().durable = true;
    } catch (error) {
      this.fail(ops, failure(operation, error));
      return;
    }
    for (const op of ops) op.done.resolve();
  }

  /** The records for a batch: the newest hard state (if it changed), then entries and resets in order. */
  private recordsOf(ops: readonly WalOp[]): WalRecord[] {
    const records: WalRecord[] = [];
    let hardState: HardState | undefined;
    for (const op of ops) {
      if (op.kind === "save" && op.hardState !== undefined) hardState = op.hardState;
    }
    if (hardState !== undefined && !sameHardState(hardState, this.hardState)) {
      records.push({ type: "hardState", hardState });
    }
    for (const op of ops) {
      if (op.kind === "reset") records.push({ type: "reset", index: op.index, term: op.term });
      else for (const entry of op.entries) records.push({ type: "entry", entry });
    }
    return records;
  }

  /** Tracks what the written records add up to; the next segment's header states it. */
  private advance(records: readonly WalRecord[]): void {
    const active = this.active();
    for (const record of records) {
      if (record.type === "hardState") this.hardState = record.hardState;
      else if (record.type === "entry" || record.type === "reset") {
        const [index, term] = record.type === "entry" ? [record.entry.index, record.entry.term] : [record.index, record.term];
        this.lastIndex = index;
        this.lastTerm = term;
        active.maxIndex = Math.max(active.maxIndex, index);
      }
    }
  }

  private header(): WalRecord {
    return {
      type: "segmentHeader",
      header: {
        formatVersion: walFormatVersion,
        seq: this.active().seq,
        prevIndex: this.lastIndex,
        prevTerm: this.lastTerm,
        hardState: this.hardState,
        bootstrapConf: this.bootstrapConf,
      },
    };
  }

  private headerBytes(): number {
    return recordBytes(this.header());
  }

  /** Switches to the prepared next segment. The old one is fully synced: rotation happens between batches. */
  private async rotate(): Promise<void> {
    if (this.preparation.kind === "none") this.prepareNext();
    assert(this.preparation.kind === "preparing", "no segment preparation");
    const prepared = await this.preparation.result;
    this.preparation = { kind: "none" };
    if (prepared.kind === "error") throw failure(prepared.operation, prepared.error);
    const path = join(this.options.dir, segmentName(prepared.seq));
    await this.options.fs.rename(prepared.tmpPath, path);
    await this.handle.close();
    this.segments.push({ seq: prepared.seq, path, maxIndex: this.lastIndex, durable: false });
    this.handle = prepared.handle;
    this.writeOffset = 0;
    this.needsHeader = true;
    this.dirSyncPending = true;
    this.prepareNext();
  }

  private active(): WalSegment {
    const active = this.segments.at(-1);
    assert(active !== undefined, "wal writer has no active segment");
    return active;
  }

  private fail(ops: readonly WalOp[], error: StorageFailedError): void {
    this.state = { kind: "failed", error };
    for (const op of ops) op.done.reject(error);
    for (const op of this.queue.splice(0)) op.done.reject(error);
  }
}

/** Creates `<seq>.wal.tmp` and fills it with zeros, synced. Never rejects: an error is a result. */
async function prepareSegment(options: WalWriterOptions, seq: number): Promise<Prepared> {
  const tmpPath = join(options.dir, segmentName(seq) + tmpSuffix);
  let operation = `create ${tmpPath}`;
  let handle: FileHandle | undefined;
  try {
    handle = await options.fs.open(tmpPath, "create");
    operation = `zero-fill ${tmpPath}`;
    for (let at = 0; at < options.segmentBytes; at += zeroFillChunkBytes) {
      await handle.write(zeroFillChunk.subarray(0, Math.min(zeroFillChunkBytes, options.segmentBytes - at)), at);
    }
    operation = `fsync ${tmpPath}`;
    await handle.sync();
    return { kind: "ok", seq, tmpPath, handle };
  } catch (error) {
    // The preparation's error is what matters; the file is removed on the next start.
    await handle?.close().catch(() => undefined);
    return { kind: "error", operation, error };
  }
}

function failure(operation: string, error: unknown): StorageFailedError {
  if (error instanceof StorageFailedError) return error;
  return new StorageFailedError(operation, errorCode(error), { cause: error });
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // The caller may drop the promise of a save it does not wait for; a failure is also reported by
  // `failure` and by every later save, so an unobserved rejection must not crash the process.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}
