import type { ConfState, Entry, HardState, Snapshot, SnapshotMeta } from "../../../src/core/index.js";
import type { DriverStorage } from "../../../src/driver/node.js";
import { assert } from "../../../src/lib/assert.js";
import type { Prng } from "../../../src/lib/prng.js";
import { LogView } from "../../../src/storage/log-view.js";
import { PackedEntries } from "../../../src/storage/packed-entries.js";
import type { Scheduler, Timer } from "./virtual-clock.js";

/**
 * The disks of the driver simulator, with the semantics of src/storage/durable-log.ts (the WAL and the
 * snapshot files), in memory and in virtual time:
 *
 * - Every mutating call changes the read view the core sees (production's `LogView`, used here as is)
 *   at once, and becomes durable later, after a seed-chosen fsync delay, in call order; its promise
 *   resolves only then. The one exception is also production's: a snapshot the node creates itself
 *   shows in `snapshot()` only once it is durable.
 * - What survives a crash is the `SimDisk`: the durable log, which only completed writes reach. A crash
 *   keeps the state after some prefix of the calls: every call that resolved, plus possibly some whose
 *   fsync finished but whose promise had not been delivered yet, and (torn writes) a prefix of the next
 *   write's records in WAL order (entries, then the hard state only if every entry before it made it).
 * - A restart builds its read view from the durable log only (`SimDisk.recover`), as recovery does:
 *   the latest snapshot, then the entries after it.
 *
 * Not modelled: disk failures (EIO, ENOSPC) and the corruption paths of recovery, which test/storage
 * covers on a simulated faulty file system; an install whose snapshot file survived without its reset
 * record (recovery starts after that snapshot, as here, since an install is one atomic write here).
 */
export interface SimStorageOptions {
  /** A write becomes durable 0..fsyncMsMax ms (virtual) after the previous one did, or after its call. */
  readonly fsyncMsMax: number;
  /**
   * A deliberately broken disk whose save() resolves at once, before the write is durable (it becomes
   * durable later, or is lost by a crash). Only the simulator's self-test turns it on.
   */
  readonly unsafeResolveBeforeDurable: boolean;
}

/** Bound on writes waiting for their fsync; the Driver has one at a time, a broken one more. */
const PENDING_WRITES_MAX = 4096;

const EMPTY = new Uint8Array(0);

/** What survives a crash of one node: its durable log (snapshot, entries after it, hard state). */
export class SimDisk {
  readonly durable: LogView;

  constructor(conf: ConfState) {
    this.durable = new LogView({ meta: { index: 0, term: 0, conf }, data: EMPTY }, { term: 0, vote: 0, commit: 0 }, new PackedEntries());
  }

  /** The read view a restarted process starts from: the durable snapshot and the entries after it. */
  recover(): LogView {
    const d = this.durable;
    const snapshot = d.snapshot();
    const view = new LogView(snapshot, d.hardState, new PackedEntries());
    const from = snapshot.meta.index + 1;
    if (d.lastIndex() >= from) view.append(d.entries(from, d.lastIndex() + 1, Number.POSITIVE_INFINITY));
    return view;
  }

  /** The term of entry i in the durable log, or undefined when it holds no such entry. */
  termAt(i: number): number | undefined {
    const d = this.durable;
    if (i < d.firstIndex() - 1 || i > d.lastIndex()) return undefined;
    return d.term(i);
  }
}

interface PendingWrite {
  readonly what: string;
  /** Makes the whole write durable. */
  readonly write: (durable: LogView) => void;
  /** Makes a torn prefix of it durable and says what was kept; undefined when the write is atomic. */
  readonly tear: ((durable: LogView, prng: Prng) => string) | undefined;
  readonly timer: Timer;
}

/** The DriverStorage of one process: a read view in memory over a SimDisk that survives it. */
export class SimStorage implements DriverStorage {
  readonly failure: Error | undefined = undefined;
  private readonly view: LogView;
  private readonly pending: PendingWrite[] = [];
  /** When the last queued write becomes durable: writes complete in call order. */
  private lastDurableAt: number;
  private crashed = false;

  constructor(
    readonly disk: SimDisk,
    private readonly scheduler: Scheduler,
    private readonly prng: Prng,
    private readonly options: SimStorageOptions,
  ) {
    this.view = disk.recover();
    this.lastDurableAt = scheduler.now;
  }

  /** Writes not durable yet. */
  get writesInFlight(): number {
    return this.pending.length;
  }

  initialState(): { hardState: HardState; conf: ConfState } {
    return { hardState: this.view.hardState, conf: this.view.snapshot().meta.conf };
  }

  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    return this.view.entries(lo, hi, maxBytes);
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
    return this.view.snapshot();
  }

  /** The simulated disk keeps the data in memory: it is always there to send (FileLog reads it back). */
  snapshotToSend(): Snapshot {
    return this.view.snapshot();
  }

  snapshotMeta(): SnapshotMeta {
    return this.view.snapshot().meta;
  }

  snapshotBytes(): number {
    return this.view.snapshot().data.byteLength;
  }

  /** Nothing to let go: the simulated disk is memory (FileLog drops the data and reads it back). */
  releaseSnapshotData(): void {}

  /** The term of entry i in the read view, or undefined when it holds no such entry. */
  viewTermAt(i: number): number | undefined {
    if (i < this.view.firstIndex() - 1 || i > this.view.lastIndex()) return undefined;
    return this.view.term(i);
  }

  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    // As the real log: entries below the first index (covered by a snapshot) are not written.
    const first = this.view.firstIndex();
    const kept = (entries[0]?.index ?? first) < first ? entries.filter((e) => e.index >= first) : [...entries];
    this.view.append(kept);
    if (hardState !== undefined) this.view.hardState = hardState;
    const write = (d: LogView, upTo: number, withHardState: boolean): void => {
      d.append(kept.slice(0, upTo));
      if (withHardState && hardState !== undefined) d.hardState = hardState;
    };
    const range = kept.length === 0 ? "no entries" : `entries ${kept[0]?.index}..${kept[kept.length - 1]?.index}`;
    const what = `save ${range}${hardState === undefined ? "" : ` hs t${hardState.term}/v${hardState.vote}/c${hardState.commit}`}`;
    const durable = this.enqueue<void>(
      what,
      (d) => write(d, kept.length, true),
      (d, prng) => {
        const upTo = prng.int(0, kept.length);
        const withHardState = upTo === kept.length && prng.chance(0.5);
        write(d, upTo, withHardState);
        return `${upTo} of ${kept.length} entries${withHardState ? " and the hard state" : ""}`;
      },
      () => undefined,
    );
    return this.options.unsafeResolveBeforeDurable ? Promise.resolve() : durable;
  }

  installSnapshot(snapshot: Snapshot): Promise<void> {
    this.view.reset(snapshot);
    return this.enqueue<void>(
      `install snapshot ${snapshot.meta.index}/t${snapshot.meta.term}`,
      (d) => d.reset(snapshot),
      undefined,
      () => undefined,
    );
  }

  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Promise<SnapshotMeta> {
    const current = this.view.snapshot().meta;
    if (index <= current.index) return Promise.resolve(current);
    assert(index <= this.view.lastIndex(), () => `sim storage: snapshot at ${index} beyond the last index ${this.view.lastIndex()}`);
    const snapshot: Snapshot = { meta: { index, term: this.view.term(index), conf }, data };
    return this.enqueue(
      `create snapshot ${index}`,
      (d) => {
        if (index > d.snapshot().meta.index) d.setSnapshot(snapshot);
      },
      undefined,
      () => {
        // As the real log: the snapshot shows in the read view once its file is durable.
        if (index > this.view.snapshot().meta.index) this.view.setSnapshot(snapshot);
        return snapshot.meta;
      },
    );
  }

  compact(index: number): Promise<void> {
    const snapIndex = this.view.snapshot().meta.index;
    assert(index <= snapIndex, () => `sim storage: compacting through ${index} beyond the snapshot at ${snapIndex}`);
    if (index < this.view.firstIndex()) return Promise.resolve();
    this.view.compact(index);
    return this.enqueue<void>(
      `compact ${index}`,
      (d) => {
        // Segments go only below a durable snapshot, as deleteSegmentsThrough(min(index, durable snapshot)).
        const to = Math.min(index, d.snapshot().meta.index, d.lastIndex());
        if (to >= d.firstIndex()) d.compact(to);
      },
      undefined,
      () => undefined,
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * The process died. Writes whose fsync had finished may have reached the disk although their promise
   * was not delivered: a seed-chosen number of the writes in flight are kept, in order, then (torn
   * writes) a prefix of the next one. Everything else is lost, and no promise of this storage resolves.
   */
  crash(tornWrites: boolean): string {
    assert(!this.crashed, "sim storage: crashed twice");
    this.crashed = true;
    for (const w of this.pending) w.timer.cancel();
    const inFlight = this.pending.splice(0);
    if (inFlight.length === 0) return "nothing in flight";
    const kept = this.prng.int(0, inFlight.length);
    const parts: string[] = [];
    for (const w of inFlight.slice(0, kept)) {
      w.write(this.disk.durable);
      parts.push(`kept ${w.what}`);
    }
    const next = inFlight[kept];
    if (next !== undefined && tornWrites && next.tear !== undefined && this.prng.chance(0.5)) {
      parts.push(`torn ${next.what}: kept ${next.tear(this.disk.durable, this.prng)}`);
    } else if (next !== undefined) {
      parts.push(`lost ${inFlight.length - kept} write(s) from ${next.what}`);
    }
    return parts.join("; ");
  }

  private enqueue<T>(what: string, write: (durable: LogView) => void, tear: PendingWrite["tear"], done: () => T): Promise<T> {
    assert(!this.crashed, "sim storage: a write after the crash");
    assert(this.pending.length < PENDING_WRITES_MAX, "sim storage: too many writes in flight");
    const at = Math.max(this.lastDurableAt, this.scheduler.now + this.prng.int(0, this.options.fsyncMsMax));
    this.lastDurableAt = at;
    return new Promise<T>((resolve) => {
      const timer = this.scheduler.after(at - this.scheduler.now, () => {
        const head = this.pending.shift();
        assert(head !== undefined && head.timer === timer, "sim storage: writes complete in call order");
        write(this.disk.durable);
        resolve(done());
      });
      this.pending.push({ what, write, tear, timer });
    });
  }
}
