import { dirname } from "node:path";
import { assert } from "../lib/assert.js";
import type { LogStorage } from "../core/storage.js";
import type { ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta } from "../core/types.js";
import { StorageClosedError, StorageOverloadedError, errorCode } from "./errors.js";
import type { FileSystem } from "./file-system.js";
import { snapDir, walDir } from "./layout.js";
import { LogView } from "./log-view.js";
import type { Logger } from "../lib/logger.js";
import { createNodeFileSystem } from "./node-file-system.js";
import { entryTypesInOrder } from "./packed-entries.js";
import { recordPayloadBytesMax } from "./record.js";
import { SnapshotStore } from "./snapshot-store.js";
import { confMembersMax, entryFixedBytes } from "./wal-codec.js";
import { recoverWal } from "./wal-recovery.js";
import type { WalWriter } from "./wal-writer.js";

/**
 * The durable log: the core's read view (LogStorage) plus the writes the driver makes for each Ready.
 *
 * Every mutating call changes the read view at once, synchronously, and returns a promise that resolves
 * once the change is durable. Changes become durable in call order: a snapshot file is written only
 * after the saves issued before it are durable, so a crash leaves the state after some prefix of the
 * calls (a snapshot whose install did not finish may survive on its own; recovery then starts the log
 * after it). Entries, snapshot data and hard states passed in are kept by reference: the caller must not
 * mutate them afterwards.
 */
export interface DurableLog extends LogStorage {
  /**
   * Appends entries (replacing any existing suffix from entries[0].index on; entries below firstIndex()
   * are ignored) and/or a new hard state. Saves that arrive while an fdatasync is in flight are written
   * together by the next single write + fdatasync (group commit). Rejects with StorageFailedError after a
   * disk failure, StorageClosedError after close, StorageOverloadedError (without changing anything) when
   * pendingSavesMax saves are already waiting. A save of nothing resolves once everything before it is durable.
   */
  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void>;
  /** Installs a snapshot received from the leader: the log is reset to start after it. */
  installSnapshot(snapshot: Snapshot): Promise<void>;
  /**
   * Writes a snapshot of the applied state at `index` (<= lastIndex()) to a snapshot file; snapshot()
   * returns it once the file is durable, and the promise resolves with its metadata. Does not drop
   * entries. An index at or below the current snapshot resolves with the current snapshot's metadata.
   */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Promise<SnapshotMeta>;
  /** Discards entries up to `index` (<= snapshot().meta.index) and deletes segments wholly below it. */
  compact(index: number): Promise<void>;
  /** The most recent snapshot's metadata, whether or not its data is in memory. */
  snapshotMeta(): SnapshotMeta;
  /** The size of the most recent snapshot's data. */
  snapshotBytes(): number;
  /**
   * The caller is done with the most recent snapshot's data (restored from it, or wrote it): the log
   * lets it go, and snapshot() may no longer be called until the next one. snapshotToSend() reads it
   * back from its file when a follower needs it, and hands it out once: a node then holds its state
   * once, not twice.
   */
  releaseSnapshotData(): void;
  /**
   * Why the log refuses writes after a disk failure (undefined while healthy). After a failure the read
   * view may hold entries that never became durable: the node must stop and restart from disk.
   */
  readonly failure: Error | undefined;
  /** Waits for pending saves, then closes the files. */
  close(): Promise<void>;
}

export interface StorageOptions {
  /** The data directory (created if missing). */
  readonly dir: string;
  readonly fs?: FileSystem;
  /** Size of a WAL segment file. Default 64 MiB. */
  readonly segmentBytes?: number;
  /** Snapshot files kept. Default 2. */
  readonly snapshotsKept?: number;
  /** Membership of a new directory, persisted in it; ignored when the directory already holds a log. */
  readonly initialConf?: ConfState;
  /** Bytes of saves one group commit takes. Default 4 MiB. */
  readonly writeBatchBytesMax?: number;
  /** Saves waiting for the disk before saves are refused. Default 65536. */
  readonly pendingSavesMax?: number;
  /** Where repairs and refusals are reported; required, so that no repair goes unlogged. */
  readonly logger: Logger;
}

export const segmentBytesDefault = 64 * 1024 * 1024;
/** Small segments are for tests; below this, rotation would dominate. */
export const segmentBytesMin = 1024;
const snapshotsKeptDefault = 2;
const writeBatchBytesMaxDefault = 4 * 1024 * 1024;
const pendingSavesMaxDefault = 65536;
/** Entry data beyond this cannot be framed in one WAL record. */
export const entryDataBytesMax = recordPayloadBytesMax - entryFixedBytes;
const entryTypes: ReadonlySet<EntryType> = new Set(entryTypesInOrder);

/** Opens (or creates) the data directory, recovering the log. Rejects with CorruptLogError on damage. */
export async function openStorage(options: StorageOptions): Promise<DurableLog> {
  const segmentBytes = options.segmentBytes ?? segmentBytesDefault;
  const snapshotsKept = options.snapshotsKept ?? snapshotsKeptDefault;
  const writeBatchBytesMax = options.writeBatchBytesMax ?? writeBatchBytesMaxDefault;
  const pendingSavesMax = options.pendingSavesMax ?? pendingSavesMaxDefault;
  const initialConf = options.initialConf ?? { voters: [], learners: [] };
  checkOption("segmentBytes", segmentBytes, segmentBytesMin);
  checkOption("snapshotsKept", snapshotsKept, 1);
  checkOption("writeBatchBytesMax", writeBatchBytesMax, 1);
  checkOption("pendingSavesMax", pendingSavesMax, 1);
  checkConf(initialConf);
  const fs = options.fs ?? createNodeFileSystem();
  const { logger } = options;
  const { dir } = options;

  const started = performance.now();
  await fs.mkdirp(walDir(dir));
  await fs.mkdirp(snapDir(dir));
  // Make the directories themselves durable: the WAL's promises mean nothing if wal/ can vanish.
  await fs.syncDir(dir);
  await fs.syncDir(dirname(dir));
  const store = new SnapshotStore(fs, snapDir(dir), snapshotsKept, logger);
  const snapshot = await store.open();
  const walOptions = { fs, dir: walDir(dir), segmentBytes, writeBatchBytesMax, pendingSavesMax };
  const wal = await recoverWal(walOptions, snapshot, initialConf, logger);
  const baseSnapshot = snapshot ?? { meta: { index: 0, term: 0, conf: wal.bootstrapConf }, data: new Uint8Array(0) };
  const view = new LogView(baseSnapshot, wal.hardState, wal.entries);
  wal.writer.prepareNext();
  logger.info("storage opened", {
    dir,
    snapshotIndex: baseSnapshot.meta.index,
    firstIndex: view.firstIndex(),
    lastIndex: view.lastIndex(),
    term: wal.hardState.term,
    ms: Math.round(performance.now() - started),
  });
  return new FileLog(view, wal.writer, store, pendingSavesMax, baseSnapshot.meta.index, logger);
}

/** How long after a failed read-back of the snapshot the next one may start. */
const readBackRetryMs = 1_000;
/** How long a snapshot read back for a follower waits to be handed out before it is let go. */
const readBackHoldMs = 10_000;

function sameSnapshot(a: SnapshotMeta, b: SnapshotMeta): boolean {
  return a.index === b.index && a.term === b.term;
}

type Lifecycle = { readonly kind: "open" } | { readonly kind: "closing"; readonly closed: Promise<void> } | { readonly kind: "closed" };

class FileLog implements DurableLog {
  private lifecycle: Lifecycle = { kind: "open" };
  /** Snapshot writes and segment deletions, one at a time, in call order. */
  private background: Promise<unknown> = Promise.resolve();
  /** The highest snapshot index asked for: installs must not go below it. */
  private snapshotIndexMax: number;
  /** The highest snapshot index whose file is durable: segments are deleted only below it. */
  private durableSnapshotIndex: number;
  /**
   * The most recent snapshot's data is in the view (false after releaseSnapshotData, until the next
   * snapshot). When false, the view's snapshot holds its metadata only, with empty data.
   */
  private resident = true;
  private snapshotDataBytes: number;
  /** The most recent snapshot read back from its file for a follower, not handed out yet (snapshotToSend). */
  private readBack: Snapshot | undefined;
  private reading = false;
  /** When the last read-back failed (performance.now()): the next waits readBackRetryMs. */
  private readBackFailedAt: number | undefined;

  constructor(
    private readonly view: LogView,
    private readonly writer: WalWriter,
    private readonly store: SnapshotStore,
    private readonly pendingSavesMax: number,
    snapshotIndex: number,
    private readonly logger: Logger,
  ) {
    this.snapshotIndexMax = snapshotIndex;
    this.durableSnapshotIndex = snapshotIndex;
    this.snapshotDataBytes = view.snapshot().data.byteLength;
  }

  get failure(): Error | undefined {
    return this.writer.failure;
  }

  initialState(): { hardState: HardState; conf: ConfState } {
    return { hardState: this.view.hardState, conf: this.view.snapshot().meta.conf };
  }

  entries(lo: number, hi: number, bytesMax: number): readonly Entry[] {
    return this.view.entries(lo, hi, bytesMax);
  }

  term(i: number): number {
    return this.view.term(i);
  }

  firstIndex(): number {
    return this.view.firstIndex();
  }

  lastIndex(): number {
    return this.view.lastIndex();
  }

  snapshot(): Snapshot {
    assert(this.resident, "storage: the snapshot's data was released (snapshotMeta, snapshotToSend)");
    return this.view.snapshot();
  }

  snapshotMeta(): SnapshotMeta {
    return this.view.snapshot().meta;
  }

  snapshotBytes(): number {
    return this.snapshotDataBytes;
  }

  releaseSnapshotData(): void {
    const current = this.view.snapshot();
    if (!this.resident || current.meta.index === 0) return;
    this.resident = false;
    this.view.setSnapshot({ meta: current.meta, data: new Uint8Array(0) });
  }

  /**
   * Why this is safe: the data handed out is always the file of the snapshot the view holds now, read
   * back whole and verified (its checksum, and the index and term its name and header say); a read
   * that finishes after a newer snapshot replaced it is dropped, never handed out for the newer one.
   */
  snapshotToSend(): Snapshot | undefined {
    const current = this.view.snapshot();
    if (this.resident || current.meta.index === 0) return current;
    const readBack = this.readBack;
    this.readBack = undefined;
    if (readBack !== undefined && sameSnapshot(readBack.meta, current.meta)) return readBack;
    this.startReadBack(current.meta);
    return undefined;
  }

  /** A new most recent snapshot, whose data the view holds until releaseSnapshotData. */
  private holdSnapshotData(snapshot: Snapshot): void {
    this.resident = true;
    this.snapshotDataBytes = snapshot.data.byteLength;
    this.readBack = undefined;
  }

  private startReadBack(meta: SnapshotMeta): void {
    if (this.reading || this.lifecycle.kind !== "open") return;
    if (this.readBackFailedAt !== undefined && performance.now() - this.readBackFailedAt < readBackRetryMs) return;
    this.reading = true;
    const started = performance.now();
    this.store.read(meta.index, meta.term).then(
      (snapshot) => {
        this.reading = false;
        this.readBackFailedAt = undefined;
        if (!this.resident && sameSnapshot(snapshot.meta, this.view.snapshot().meta)) {
          this.readBack = snapshot;
          // Not asked for again (the follower caught up otherwise, or went away): let it go.
          setTimeout(() => {
            if (this.readBack === snapshot) this.readBack = undefined;
          }, readBackHoldMs).unref();
        }
        this.logger.info("read a snapshot back from disk for a follower", {
          index: meta.index,
          bytes: snapshot.data.byteLength,
          ms: Math.round(performance.now() - started),
        });
      },
      (error: unknown) => {
        this.reading = false;
        this.readBackFailedAt = performance.now();
        // A newer snapshot may have replaced the file meanwhile: only the current one's failure matters.
        if (sameSnapshot(meta, this.view.snapshot().meta)) {
          this.logger.error("cannot read the snapshot back to send it to a follower; retrying", {
            index: meta.index,
            error: String(error),
            retryInMs: readBackRetryMs,
          });
        }
      },
    );
  }

  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    const refused = this.refusal();
    if (refused !== undefined) return Promise.reject(refused);
    if (hardState !== undefined) checkHardState(hardState);
    entries.forEach((entry, i) => checkEntry(entry, entries[i - 1]));
    const first = this.view.firstIndex();
    const kept = (entries[0]?.index ?? first) < first ? entries.filter((e) => e.index >= first) : entries;
    const head = kept[0];
    assert(
      head === undefined || head.index <= this.view.lastIndex() + 1,
      () => `storage: appending entry ${head?.index} after entry ${this.view.lastIndex()} leaves a gap`,
    );
    this.view.append(kept);
    if (hardState !== undefined) this.view.hardState = hardState;
    return this.writer.save(hardState, kept);
  }

  installSnapshot(snapshot: Snapshot): Promise<void> {
    // Two queued operations: a barrier for the saves before it, then the reset record.
    const refused = this.refusal(2);
    if (refused !== undefined) return Promise.reject(refused);
    const { index, term, conf } = snapshot.meta;
    checkNumbers([index, term], "snapshot index and term");
    checkConf(conf);
    assert(index >= this.snapshotIndexMax, () => `storage: installing snapshot ${index} below snapshot ${this.snapshotIndexMax}`);
    this.snapshotIndexMax = index;
    this.view.reset(snapshot);
    this.holdSnapshotData(snapshot);
    // The file is written once the saves before it are durable, the reset record once the file is.
    const earlierSaves = this.writer.save(undefined, []);
    const written = this.inBackground(async () => {
      await earlierSaves;
      await this.store.write(snapshot);
      this.durableSnapshotIndex = Math.max(this.durableSnapshotIndex, index);
    });
    return this.writer.reset(index, term, written);
  }

  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Promise<SnapshotMeta> {
    const refused = this.refusal();
    if (refused !== undefined) return Promise.reject(refused);
    // Metadata only: the current snapshot's data may have been released.
    const current = this.view.snapshot().meta;
    if (index <= current.index) return Promise.resolve(current);
    assert(index <= this.view.lastIndex(), () => `storage: snapshot at ${index} beyond the last index ${this.view.lastIndex()}`);
    checkConf(conf);
    const snapshot: Snapshot = { meta: { index, term: this.view.term(index), conf }, data };
    this.snapshotIndexMax = Math.max(this.snapshotIndexMax, index);
    // The file is written once the saves before it are durable: changes become durable in call order.
    const earlierSaves = this.writer.save(undefined, []);
    return this.inBackground(async () => {
      await earlierSaves;
      try {
        await this.store.write(snapshot);
      } catch (error) {
        throw new Error(`writing the snapshot at index ${index} failed with ${errorCode(error)}`, { cause: error });
      }
      this.durableSnapshotIndex = Math.max(this.durableSnapshotIndex, index);
      if (index > this.view.snapshot().meta.index) {
        this.view.setSnapshot(snapshot);
        this.holdSnapshotData(snapshot);
      }
      return snapshot.meta;
    });
  }

  compact(index: number): Promise<void> {
    const refused = this.refusal();
    if (refused !== undefined && !(refused instanceof StorageOverloadedError)) return Promise.reject(refused);
    const snapIndex = this.view.snapshot().meta.index;
    assert(index <= snapIndex, () => `storage: compacting through ${index} beyond the snapshot at ${snapIndex}`);
    if (index < this.view.firstIndex()) return Promise.resolve();
    this.view.compact(index);
    return this.inBackground(async () => {
      await this.writer.deleteSegmentsThrough(Math.min(index, this.durableSnapshotIndex));
    });
  }

  close(): Promise<void> {
    switch (this.lifecycle.kind) {
      case "closed":
        return Promise.resolve();
      case "closing":
        return this.lifecycle.closed;
      case "open": {
        const closed = (async () => {
          await this.writer.close();
          await this.background.catch(() => undefined);
          this.lifecycle = { kind: "closed" };
        })();
        this.lifecycle = { kind: "closing", closed };
        return closed;
      }
    }
  }

  /**
   * Why a mutating call that queues `ops` operations must be refused right now, before it changes
   * anything: once the read view has changed, queueing must not fail.
   */
  private refusal(ops = 1): Error | undefined {
    if (this.lifecycle.kind !== "open") return new StorageClosedError();
    if (this.writer.failure !== undefined) return this.writer.failure;
    if (this.writer.pendingSaves + ops > this.pendingSavesMax) {
      return new StorageOverloadedError(this.writer.pendingSaves, this.pendingSavesMax);
    }
    return undefined;
  }

  /** Runs `job` after every earlier background job; a failure is reported to its caller only. */
  private inBackground<T>(job: () => Promise<T>): Promise<T> {
    const result = this.background.then(job);
    this.background = result.catch(() => undefined);
    return result;
  }
}

function checkOption(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`storage option ${name} must be an integer >= ${min}, got ${value}`);
  }
}

function checkNumbers(values: readonly number[], what: string): void {
  assert(
    values.every((n) => Number.isSafeInteger(n) && n >= 0),
    () => `storage: ${what} must be safe non-negative integers, got ${values.join(", ")}`,
  );
}

function checkHardState(hs: HardState): void {
  checkNumbers([hs.term, hs.vote, hs.commit], "hard state fields");
}

function checkEntry(entry: Entry, prev: Entry | undefined): void {
  checkNumbers([entry.index, entry.term], "entry index and term");
  assert(entry.index >= 1, "storage: entry index 0");
  assert(entryTypes.has(entry.type), () => `storage: unknown entry type ${String(entry.type)}`);
  assert(prev === undefined || entry.index === prev.index + 1, () => `storage: entries not contiguous at ${entry.index}`);
  if (entry.data.byteLength > entryDataBytesMax) {
    throw new RangeError(`storage: entry ${entry.index} has ${entry.data.byteLength} bytes of data (limit ${entryDataBytesMax})`);
  }
}

function checkConf(conf: ConfState): void {
  const ids = [...conf.voters, ...conf.learners];
  if (ids.length > confMembersMax || !ids.every((id) => Number.isSafeInteger(id) && id > 0)) {
    throw new RangeError(`storage: a membership needs at most ${confMembersMax} positive integer ids`);
  }
}
