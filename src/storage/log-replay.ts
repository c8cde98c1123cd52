import { assert } from "../lib/assert.js";
import { sameHardState, type ConfState, type HardState } from "../core/types.js";
import { CorruptLogError } from "./errors.js";
import { PackedEntries } from "./packed-entries.js";
import type { SegmentHeader, WalRecord } from "./wal-codec.js";

/** The log as recovered from the newest snapshot plus the WAL. */
export interface ReplayResult {
  readonly hardState: HardState;
  readonly bootstrapConf: ConfState;
  /** Entries after the snapshot, contiguous from snapshot index + 1. */
  readonly entries: PackedEntries;
  /** Index and term of the last entry the WAL's records add up to (what the next segment header says). */
  readonly walLastIndex: number;
  readonly walLastTerm: number;
  /**
   * The WAL does not continue from the snapshot (it ends before it, or holds a different history at its
   * index): a reset record must be written before new entries, or the next replay would see a gap.
   */
  readonly needsReset: boolean;
  /** Entries after the snapshot dropped because they belong to a different history than the snapshot. */
  readonly discarded: number;
}

/**
 * Replays WAL records on top of the newest snapshot (index S, term T), keeping in memory only the entries
 * after S. Semantics of the records, in write order:
 * - an entry at index i replaces every entry at or after i; i must not leave a gap;
 * - a reset (index, term) voids everything before it: the log then ends at index;
 * - a segment header starts the replay (the oldest kept segment) or must agree with the state so far.
 *
 * The WAL may disagree with the snapshot only in the ways a crash allows: a snapshot written to its file
 * but whose reset record did not reach the WAL (install interrupted), or a local snapshot covering
 * entries that were committed by the cluster but not yet synced here. Either way the snapshot wins, and
 * the entries after it are kept only when the WAL's entry at S has term T (the same history).
 */
export class LogReplay {
  private started = false;
  private lastIndex = 0;
  private lastTerm = 0;
  /** The term of the WAL's entry at S while the WAL's log reaches S, else undefined. */
  private termAtSnapshot: number | undefined;
  /** The WAL's entries after S: position k has index S + 1 + k. */
  private ents = new PackedEntries();
  /** The buffer of the segment being replayed: entries' data stay in it. */
  private buffer: Uint8Array = new Uint8Array(0);
  private bufferId = -1;
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private bootstrapConf: ConfState = { voters: [], learners: [] };

  constructor(
    private readonly snapIndex: number,
    private readonly snapTerm: number,
  ) {}

  get hasStarted(): boolean {
    return this.started;
  }

  /** Starts a segment whose checked bytes are `buffer`; the records applied next are views into it. */
  beginSegment(buffer: Uint8Array): void {
    this.buffer = buffer;
    this.bufferId = this.ents.addBuffer(buffer);
  }

  /**
   * Applies one record of segment `seq` (records come in write order, complete batches only). A segment
   * header must be the first record of its segment, and only there.
   */
  apply(file: string, seq: number, record: WalRecord, offset: number, segmentStart: boolean): void {
    if (segmentStart !== (record.type === "segmentHeader")) {
      throw new CorruptLogError(
        file,
        offset,
        segmentStart ? "the segment does not start with a segment header" : "a segment header in the middle of a segment",
      );
    }
    this.applyRecord(file, offset, seq, record);
  }

  finish(): ReplayResult {
    assert(this.started, "replay finished before any segment header");
    const base = {
      hardState: this.hardState,
      bootstrapConf: this.bootstrapConf,
      walLastIndex: this.lastIndex,
      walLastTerm: this.lastTerm,
    };
    if (this.lastIndex < this.snapIndex) return { ...base, entries: new PackedEntries(), needsReset: true, discarded: 0 };
    assert(this.termAtSnapshot !== undefined, "replay lost track of the term at the snapshot index");
    if (this.termAtSnapshot !== this.snapTerm) {
      return { ...base, entries: new PackedEntries(), needsReset: true, discarded: this.ents.length };
    }
    return { ...base, entries: this.ents, needsReset: false, discarded: 0 };
  }

  private applyRecord(file: string, offset: number, seq: number, record: WalRecord): void {
    switch (record.type) {
      case "segmentHeader":
        this.applyHeader(file, offset, seq, record.header);
        return;
      case "hardState":
        this.hardState = record.hardState;
        return;
      case "entry": {
        const { index, term, type, data } = record.entry;
        if (index > this.lastIndex + 1) {
          throw new CorruptLogError(file, offset, `entry ${index} follows entry ${this.lastIndex}: entries are missing`);
        }
        if (index <= this.snapIndex) {
          this.ents.truncate(0);
          this.termAtSnapshot = index === this.snapIndex ? term : undefined;
        } else {
          assert(data.buffer === this.buffer.buffer, "replayed entry data outside its segment buffer");
          this.ents.truncate(index - this.snapIndex - 1);
          this.ents.push(term, type, this.bufferId, data.byteOffset - this.buffer.byteOffset, data.byteLength);
        }
        this.lastIndex = index;
        this.lastTerm = term;
        return;
      }
      case "reset":
        if (record.index > this.snapIndex) {
          throw new CorruptLogError(
            file,
            offset,
            `the log was reset to a snapshot at index ${record.index}, but the newest snapshot file is at ${this.snapIndex}`,
            "The snapshot file is missing or was removed. Restore the snap/ directory from a backup, or remove " +
              "this member from the cluster, wipe its data directory and add it back",
          );
        }
        this.ents.truncate(0);
        this.termAtSnapshot = record.index === this.snapIndex ? record.term : undefined;
        this.lastIndex = record.index;
        this.lastTerm = record.term;
        return;
    }
  }

  private applyHeader(file: string, offset: number, seq: number, header: SegmentHeader): void {
    if (header.seq !== seq) {
      throw new CorruptLogError(file, offset, `the segment header says segment ${header.seq}`);
    }
    if (!this.started) {
      if (header.prevIndex > this.snapIndex) {
        throw new CorruptLogError(
          file,
          offset,
          `the oldest segment continues from entry ${header.prevIndex}, but the newest snapshot is at ${this.snapIndex}`,
          "Older segments or a newer snapshot file are missing. Restore the data directory from a backup, or " +
            "remove this member from the cluster, wipe its data directory and add it back",
        );
      }
      this.started = true;
      this.lastIndex = header.prevIndex;
      this.lastTerm = header.prevTerm;
      this.termAtSnapshot = header.prevIndex === this.snapIndex ? header.prevTerm : undefined;
      this.hardState = header.hardState;
      this.bootstrapConf = header.bootstrapConf;
      return;
    }
    const agrees =
      header.prevIndex === this.lastIndex &&
      header.prevTerm === this.lastTerm &&
      sameHardState(header.hardState, this.hardState) &&
      sameConf(header.bootstrapConf, this.bootstrapConf);
    if (!agrees) {
      throw new CorruptLogError(file, offset, "the segment header does not continue the previous segment");
    }
  }
}

function sameConf(a: ConfState, b: ConfState): boolean {
  const same = (x: readonly number[], y: readonly number[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return same(a.voters, b.voters) && same(a.learners, b.learners);
}
