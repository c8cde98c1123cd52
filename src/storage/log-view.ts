import { assert } from "../lib/assert.js";
import { CompactedError, UnavailableError, entrySize } from "../core/storage.js";
import type { Entry, HardState, Snapshot } from "../core/types.js";

/**
 * The core's synchronous view of the log: the entries since the last compaction, in memory, with the
 * semantics of MemoryStorage (src/core/memory-storage.ts), which the contract test checks side by side.
 *
 * `ents[0]` is a dummy holding the index and term of the last compacted entry, so term(firstIndex()-1)
 * answers. Entries are shared, never copied: callers must not mutate what they pass in or get back.
 */
export class LogView {
  private ents: Entry[];
  private snap: Snapshot;
  private hard: HardState;

  constructor(snapshot: Snapshot, hardState: HardState, entries: Entry[]) {
    assert(
      entries.every((e, i) => e.index === snapshot.meta.index + 1 + i),
      "log view: entries must follow the snapshot contiguously",
    );
    this.snap = snapshot;
    this.hard = hardState;
    entries.unshift(dummy(snapshot.meta.index, snapshot.meta.term));
    this.ents = entries;
  }

  get hardState(): HardState {
    return this.hard;
  }

  set hardState(hardState: HardState) {
    this.hard = hardState;
  }

  firstIndex(): number {
    return this.head().index + 1;
  }

  lastIndex(): number {
    return this.head().index + this.ents.length - 1;
  }

  term(i: number): number {
    const offset = this.head().index;
    if (i < offset) throw new CompactedError(i, offset + 1);
    const entry = this.ents[i - offset];
    if (entry === undefined) throw new UnavailableError(i, this.lastIndex());
    return entry.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.head().index;
    if (lo <= offset) throw new CompactedError(lo, offset + 1);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const entry = this.ents[i - offset];
      assert(entry !== undefined, "log view: hole in the log");
      bytes += entrySize(entry);
      if (out.length > 0 && bytes > maxBytes) break;
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
    this.ents.length = head.index - this.head().index;
    for (const entry of entries) this.ents.push(entry);
  }

  /** Replaces the whole log with an installed snapshot. */
  reset(snapshot: Snapshot): void {
    this.snap = snapshot;
    this.ents = [dummy(snapshot.meta.index, snapshot.meta.term)];
  }

  /** Records a newer local snapshot without dropping entries (compact() does that). */
  setSnapshot(snapshot: Snapshot): void {
    assert(snapshot.meta.index >= this.snap.meta.index, "log view: snapshot older than the current one");
    this.snap = snapshot;
  }

  /** Drops the entries up to `index` (firstIndex()-1 <= index <= lastIndex()). */
  compact(index: number): void {
    const offset = this.head().index;
    assert(index >= offset && index <= this.lastIndex(), "log view: compaction out of range");
    const kept = this.ents.slice(index - offset + 1);
    kept.unshift(dummy(index, this.term(index)));
    this.ents = kept;
  }

  private head(): Entry {
    const head = this.ents[0];
    assert(head !== undefined, "log view: missing dummy entry");
    return head;
  }
}

function dummy(index: number, term: number): Entry {
  return { index, term, type: "noop", data: new Uint8Array(0) };
}
