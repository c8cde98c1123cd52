import { assert } from "../lib/assert.js";
import { CompactedError, UnavailableError, entrySize, type LogStorage } from "./storage.js";
import type { Entry, Snapshot } from "./types.js";

/**
 * The core's log: the durable part lives in LogStorage; the unstable tail holds entries (and possibly
 * an incoming snapshot) not yet persisted. The driver persists the tail from a Ready and reports it with
 * advance(), which moves it to "stable".
 *
 * Invariants:
 * - unstable.entries, when not empty, start at `offset` and are contiguous;
 * - committed <= lastIndex(), applied <= committed;
 * - entries at or below `committed` are never overwritten (Raft's Log Matching + Leader Completeness:
 *   an attempt is a bug, and asserted).
 */
export class RaftLog {
  /** First index of the unstable entries (or where the next one will go). */
  private offset: number;
  private unstableEntries: Entry[] = [];
  private unstableSnapshot: Snapshot | undefined;
  committed: number;
  /** The highest index handed out for application. */
  applied: number;

  constructor(
    readonly storage: LogStorage,
    committed: number,
    applied: number,
  ) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.offset = last + 1;
    // Everything in a snapshot is committed and applied by the state machine that restored it.
    this.committed = Math.max(committed, first - 1);
    assert(this.committed <= last, () => `raft log: commit ${committed} beyond the last index ${last}`);
    this.applied = Math.max(applied, first - 1);
    assert(this.applied <= this.committed, () => `raft log: applied ${applied} beyond commit ${this.committed}`);
  }

  firstIndex(): number {
    if (this.unstableSnapshot !== undefined) return this.unstableSnapshot.meta.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstableEntries.length > 0) return this.offset + this.unstableEntries.length - 1;
    if (this.unstableSnapshot !== undefined) return this.unstableSnapshot.meta.index;
    return this.storage.lastIndex();
  }

  /** The last index that is durable (persisted and reported through advance). */
  stableLastIndex(): number {
    if (this.unstableSnapshot !== undefined) return 0;
    return this.offset - 1;
  }

  /** The term of entry i, or undefined when i is compacted or beyond the last index. */
  term(i: number): number | undefined {
    if (i > this.lastIndex()) return undefined;
    if (i >= this.offset && this.unstableEntries.length > 0) {
      return this.unstableEntries[i - this.offset]?.term;
    }
    if (this.unstableSnapshot !== undefined) {
      return i === this.unstableSnapshot.meta.index ? this.unstableSnapshot.meta.term : undefined;
    }
    if (i < this.storage.firstIndex() - 1) return undefined;
    try {
      return this.storage.term(i);
    } catch (error) {
      if (error instanceof CompactedError || error instanceof UnavailableError) return undefined;
      throw error;
    }
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    assert(term !== undefined, "raft log: the last entry has no term");
    return term;
  }

  matchTerm(i: number, term: number): boolean {
    return this.term(i) === term;
  }

  /** Raft paper 5.4.1: is a candidate's log at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The follower side of AppendEntries. Returns the index of the last new entry when the consistency
   * check at (prevIndex, prevTerm) passes, undefined when it fails.
   */
  maybeAppend(prevIndex: number, prevTerm: number, leaderCommit: number, entries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, () => `raft log: entry ${conflict} conflicts with committed ${this.committed}`);
      const first = entries[0];
      assert(first !== undefined, "raft log: conflict without entries");
      this.append(entries.slice(conflict - first.index));
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /**
   * The index of the first entry that is new or whose term differs from ours, or 0 when every entry
   * is already in the log.
   */
  private findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The fast-backtracking hint (etcd's findConflictByTerm): the largest index <= `index` whose term is
   * <= `term`, with that term. Entries with a larger term cannot match an entry of `term` at that
   * index, so a whole divergent term is skipped per round trip. Returns term 0 at a compacted index.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = Math.min(index, this.lastIndex()); i >= 0; i--) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
    return { index: 0, term: 0 };
  }

  /** Appends to the unstable tail, replacing any entries from entries[0].index on. */
  append(entries: readonly Entry[]): number {
    const first = entries[0];
    if (first === undefined) return this.lastIndex();
    assert(first.index > this.committed, () => `raft log: append at ${first.index} below commit ${this.committed}`);
    assert(first.index <= this.lastIndex() + 1, () => `raft log: gap appending ${first.index} after ${this.lastIndex()}`);
    const end = this.offset + this.unstableEntries.length;
    if (first.index === end) {
      for (const entry of entries) this.unstableEntries.push(entry);
    } else if (first.index <= this.offset) {
      // The new entries replace part of the stable log; storage truncates its suffix when it persists them.
      this.offset = first.index;
      this.unstableEntries = entries.slice();
    } else {
      this.unstableEntries = this.unstableEntries.slice(0, first.index - this.offset).concat(entries);
    }
    return this.lastIndex();
  }

  /**
   * Entries [lo, hi) limited to about bytesMax (at least one entry). Returns undefined when lo is
   * compacted (the caller sends a snapshot instead).
   */
  slice(lo: number, hi: number, bytesMax: number): Entry[] | undefined {
    assert(lo <= hi, () => `raft log: invalid slice [${lo}, ${hi})`);
    assert(hi <= this.lastIndex() + 1, () => `raft log: slice [${lo}, ${hi}) beyond the last index ${this.lastIndex()}`);
    if (lo < this.firstIndex()) return undefined;
    const out: Entry[] = [];
    if (lo === hi) return out;
    let bytes = 0;
    if (lo < this.offset) {
      const stored = this.storage.entries(lo, Math.min(hi, this.offset), bytesMax);
      for (const entry of stored) {
        bytes += entrySize(entry);
        out.push(entry);
      }
      const last = stored[stored.length - 1];
      // Storage stopped early on the byte limit: do not read past the gap.
      if (last === undefined || last.index < Math.min(hi, this.offset) - 1) return out;
    }
    for (let i = Math.max(lo, this.offset); i < hi; i++) {
      const entry = this.unstableEntries[i - this.offset];
      assert(entry !== undefined, "raft log: hole in the unstable tail");
      bytes += entrySize(entry);
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(entry);
    }
    return out;
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), () => `raft log: commit ${index} beyond the last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Commit rule (paper Figure 8): only an entry of the leader's current term commits by counting replicas. */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  hasNextCommittedEntries(): boolean {
    return this.committed > Math.max(this.applied, this.firstIndex() - 1) && this.unstableSnapshot === undefined;
  }

  nextCommittedEntries(bytesMax: number): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    const lo = Math.max(this.applied + 1, this.firstIndex());
    return this.slice(lo, this.committed + 1, bytesMax) ?? [];
  }

  appliedTo(index: number): void {
    assert(index <= this.committed, () => `raft log: applied ${index} beyond commit ${this.committed}`);
    if (index > this.applied) this.applied = index;
  }

  unstable(): { readonly entries: readonly Entry[]; readonly snapshot: Snapshot | undefined } {
    return { entries: this.unstableEntries, snapshot: this.unstableSnapshot };
  }

  hasUnstable(): boolean {
    return this.unstableEntries.length > 0 || this.unstableSnapshot !== undefined;
  }

  /**
   * The entries up to (index, term) are durable. If the tail was replaced in the meantime (the entry at
   * `index` now has another term), the persisted entries were stale and nothing becomes stable.
   */
  stableTo(index: number, term: number): void {
    if (index < this.offset || this.term(index) !== term) return;
    if (index >= this.offset + this.unstableEntries.length) return;
    this.unstableEntries = this.unstableEntries.slice(index + 1 - this.offset);
    this.offset = index + 1;
  }

  stableSnapTo(index: number): void {
    if (this.unstableSnapshot !== undefined && this.unstableSnapshot.meta.index === index) {
      this.unstableSnapshot = undefined;
    }
  }

  /** Replaces the whole log with a snapshot from the leader (the caller checked it is newer than commit). */
  restore(snapshot: Snapshot): void {
    assert(snapshot.meta.index > this.committed, "raft log: restoring a snapshot at or below commit");
    this.unstableSnapshot = snapshot;
    this.unstableEntries = [];
    this.offset = snapshot.meta.index + 1;
    this.committed = snapshot.meta.index;
  }

  /** The snapshot to send a follower (LogStorage.snapshotToSend): one received and not yet stored first. */
  snapshotToSend(): Snapshot | undefined {
    return this.unstableSnapshot ?? this.storage.snapshotToSend();
  }

  /**
   * Asserts the invariants above that can be checked in O(unstable tail). The stable log is not walked:
   * every entry enters through the unstable tail (or a snapshot), where its term order is checked.
   * `term` is the node's current term.
   */
  checkInvariants(term: number): void {
    const last = this.lastIndex();
    // Raft commits only entries a node holds; a commit index past the log would apply entries it lacks.
    assert(this.committed <= last, () => `raft log: commit ${this.committed} beyond the last index ${last}`);
    // Only committed entries are handed out for application (State Machine Safety).
    assert(this.applied <= this.committed, () => `raft log: applied ${this.applied} beyond commit ${this.committed}`);
    // A snapshot (ours or the leader's) holds only committed state, so everything compacted is committed.
    assert(
      this.committed >= this.firstIndex() - 1,
      () => `raft log: commit ${this.committed} below the snapshot at ${this.firstIndex() - 1}`,
    );
    // Snapshot and entries are a contiguous run: the tail starts right after the snapshot (or the stable log).
    if (this.unstableSnapshot !== undefined) {
      assert(this.offset === this.unstableSnapshot.meta.index + 1, "raft log: unstable entries do not follow the incoming snapshot");
    } else {
      // The stable part is what advance() reported durable: the driver must have written it to storage.
      assert(
        this.offset - 1 <= this.storage.lastIndex(),
        () => `raft log: stable up to ${this.offset - 1} but storage ends at ${this.storage.lastIndex()}`,
      );
    }
    let prevTerm = this.term(this.offset - 1);
    for (let i = 0; i < this.unstableEntries.length; i++) {
      const entry = this.unstableEntries[i];
      assert(entry !== undefined, "raft log: hole in the unstable tail");
      // The tail is contiguous from offset: term() and slice() index it by position.
      assert(entry.index === this.offset + i, () => `raft log: unstable entry ${entry.index} at position ${i} after offset ${this.offset}`);
      // Terms never go down along a log: a leader appends only in its own term, after its earlier entries.
      assert(
        prevTerm === undefined || entry.term >= prevTerm,
        () => `raft log: term ${entry.term} at ${entry.index} after term ${prevTerm}`,
      );
      prevTerm = entry.term;
    }
    // An entry enters the log from a leader of the node's current term (or the node leading it), never of
    // a later term. Checked on the tail only: a crash that keeps a Ready's entries but not its hard state
    // (the simulator's torn writes; the Ready contract does not require one atomic write) restarts a node
    // whose durable log holds a term its durable hard state never reached.
    const newest = this.unstableEntries[this.unstableEntries.length - 1];
    assert(newest === undefined || newest.term <= term, () => `raft log: entry of term ${newest?.term} above the current term ${term}`);
  }
}
