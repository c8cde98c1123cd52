import { assert } from "../lib/assert.js";
import { CompactedError, UnavailableError, entrySize, type LogStorage } from "./storage.js";
import type { ConfState, Entry, HardState, Snapshot } from "./types.js";

const emptyConf: ConfState = { voters: [], learners: [] };

/**
 * An in-memory LogStorage: the deterministic twin of the WAL for scenario tests and the simulator.
 * Everything written here counts as durable; the simulator models lost unsynced writes by choosing when
 * (and whether) a Ready's contents reach this object.
 *
 * Layout: `ents[0]` is a dummy entry holding the index and term of the last compacted entry (the
 * snapshot point), so term(firstIndex()-1) always answers.
 */
export class MemoryStorage implements LogStorage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot;
  private ents: Entry[];

  constructor(conf: ConfState = emptyConf) {
    this.snap = { meta: { index: 0, term: 0, conf }, data: new Uint8Array(0) };
    this.ents = [{ index: 0, term: 0, type: "noop", data: new Uint8Array(0) }];
  }

  initialState(): { hardState: HardState; conf: ConfState } {
    return { hardState: this.hardState, conf: this.snap.meta.conf };
  }

  firstIndex(): number {
    return this.dummy().index + 1;
  }

  lastIndex(): number {
    return this.dummy().index + this.ents.length - 1;
  }

  term(i: number): number {
    const offset = this.dummy().index;
    if (i < offset) throw new CompactedError(i, offset + 1);
    const entry = this.ents[i - offset];
    if (entry === undefined) throw new UnavailableError(i, this.lastIndex());
    return entry.term;
  }

  entries(lo: number, hi: number, bytesMax: number): Entry[] {
    const offset = this.dummy().index;
    if (lo <= offset) throw new CompactedError(lo, offset + 1);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const entry = this.ents[i - offset];
      assert(entry !== undefined, "memory storage: hole in the log");
      bytes += entrySize(entry);
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(entry);
    }
    return out;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  snapshotToSend(): Snapshot {
    return this.snap;
  }

  setHardState(hardState: HardState): void {
    this.hardState = hardState;
  }

  /**
   * Appends entries, replacing any existing suffix that starts at entries[0].index (a follower
   * overwriting a conflicting, uncommitted tail). Entries at or below the snapshot are ignored.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const kept = entries.filter((e) => e.index >= first);
    const head = kept[0];
    if (head === undefined) return;
    assert(head.index <= this.lastIndex() + 1, () => `memory storage: gap appending ${head.index} after ${this.lastIndex()}`);
    const keep = head.index - this.dummy().index;
    // Appending at the end is the common case: push in place rather than copy the whole log.
    if (keep < this.ents.length) this.ents.length = keep;
    for (const entry of kept) this.ents.push(entry);
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  applySnapshot(snapshot: Snapshot): void {
    assert(snapshot.meta.index >= this.snap.meta.index, "memory storage: snapshot older than the current one");
    this.snap = snapshot;
    this.ents = [{ index: snapshot.meta.index, term: snapshot.meta.term, type: "noop", data: new Uint8Array(0) }];
  }

  /**
   * Records a snapshot of the local state machine at `index` (which must be applied) and discards the
   * entries up to it. Later entries stay.
   */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    assert(index <= this.lastIndex(), "memory storage: snapshot beyond the last index");
    if (index <= this.snap.meta.index) return this.snap;
    const term = this.term(index);
    this.snap = { meta: { index, term, conf }, data };
    const offset = this.dummy().index;
    this.ents = [{ index, term, type: "noop", data: new Uint8Array(0) }, ...this.ents.slice(index - offset + 1)];
    return this.snap;
  }

  private dummy(): Entry {
    const dummy = this.ents[0];
    assert(dummy !== undefined, "memory storage: missing dummy entry");
    return dummy;
  }
}
