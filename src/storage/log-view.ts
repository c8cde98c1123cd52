import { assert } from "../lib/assert.js";
import { CompactedError, UnavailableError, entrySize } from "../core/storage.js";
import type { Entry, HardState, Snapshot } from "../core/types.js";
import { PackedEntries } from "./packed-entries.js";

/**
 * The core's synchronous view of the log: the entries since the last compaction, in memory, with the
 * semantics of MemoryStorage (src/core/memory-storage.ts), which the contract test checks side by side.
 *
 * The log after the snapshot point (offset, offsetTerm) is two runs: the entries recovered at start-up,
 * packed (no object per entry until read), then the entries saved since, as the objects the caller
 * passed in (never copied: callers must not mutate what they pass in or get back). Entries read from
 * the packed run are built on each read: equal in content, not identical, from call to call.
 */
export class LogView {
  private offset: number;
  private offsetTerm: number;
  private packed: PackedEntries;
  private ents: Entry[] = [];
  private snap: Snapshot;
  private hard: HardState;

  constructor(snapshot: Snapshot, hardState: HardState, recovered: PackedEntries) {
    this.snap = snapshot;
    this.hard = hardState;
    this.offset = snapshot.meta.index;
    this.offsetTerm = snapshot.meta.term;
    this.packed = recovered;
  }

  get hardState(): HardState {
    return this.hard;
  }

  set hardState(hardState: HardState) {
    this.hard = hardState;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.packed.length + this.ents.length;
  }

  term(i: number): number {
    if (i < this.offset) throw new CompactedError(i, this.offset + 1);
    if (i > this.lastIndex()) throw new UnavailableError(i, this.lastIndex());
    if (i === this.offset) return this.offsetTerm;
    const position = i - this.offset - 1;
    if (position < this.packed.length) return this.packed.term(position);
    return this.object(position).term;
  }

  entries(lo: number, hi: number, bytesMax: number): Entry[] {
    if (lo <= this.offset) throw new CompactedError(lo, this.offset + 1);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const position = i - this.offset - 1;
      const entry = position < this.packed.length ? this.packed.entry(position, i) : this.object(position);
      bytes += entrySize(entry);
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(entry);
    }
    return out;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * Appends contiguous entries that start at or after firstIndex() and at most one past lastIndex(),
   * replacing the existing suffix from entries[0].index (a follower overwriting a conflicting tail).
   */
  append(entries: readonly Entry[]): void {
    const head = entries[0];
    if (head === undefined) return;
    assert(head.index >= this.firstIndex() && head.index <= this.lastIndex() + 1, "log view: append out of range");
    const kept = head.index - this.offset - 1;
    if (kept < this.packed.length) {
      this.packed.truncate(kept);
      this.ents = [];
    } else {
      this.ents.length = kept - this.packed.length;
    }
    for (const entry of entries) this.ents.push(entry);
  }

  /** Replaces the whole log with an installed snapshot. */
  reset(snapshot: Snapshot): void {
    this.snap = snapshot;
    this.offset = snapshot.meta.index;
    this.offsetTerm = snapshot.meta.term;
    this.packed = new PackedEntries();
    this.ents = [];
  }

  /** Records a newer local snapshot without dropping entries (compact() does that). */
  setSnapshot(snapshot: Snapshot): void {
    assert(snapshot.meta.index >= this.snap.meta.index, "log view: snapshot older than the current one");
    this.snap = snapshot;
  }

  /** Drops the entries up to `index` (firstIndex()-1 <= index <= lastIndex()). */
  compact(index: number): void {
    assert(index >= this.offset && index <= this.lastIndex(), "log view: compaction out of range");
    const term = this.term(index);
    const dropped = index - this.offset;
    const fromPacked = Math.min(dropped, this.packed.length);
    this.packed.dropFront(fromPacked);
    if (dropped > fromPacked) this.ents = this.ents.slice(dropped - fromPacked);
    this.offset = index;
    this.offsetTerm = term;
  }

  private object(position: number): Entry {
    const entry = this.ents[position - this.packed.length];
    assert(entry !== undefined, "log view: hole in the log");
    return entry;
  }
}
