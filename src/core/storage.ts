import type { ConfState, Entry, HardState, Snapshot } from "./types.js";

/**
 * Asked for entries that a snapshot has compacted away. The leader answers by sending a snapshot.
 */
export class CompactedError extends Error {
  override readonly name = "CompactedError";
  constructor(
    readonly index: number,
    readonly firstIndex: number,
  ) {
    super(`log index ${index} is compacted (first available index is ${firstIndex})`);
  }
}

/** Asked for entries beyond the last index. Always a bug in the caller. */
export class UnavailableError extends Error {
  override readonly name = "UnavailableError";
  constructor(
    readonly index: number,
    readonly lastIndex: number,
  ) {
    super(`log index ${index} is unavailable (last index is ${lastIndex})`);
  }
}

/**
 * The core's synchronous, read-only view of the durable log. The storage module implements it over WAL
 * segment files (entries since the last snapshot kept in memory); `MemoryStorage` implements it for tests.
 *
 * The log is the entries firstIndex()..lastIndex(); the entry at firstIndex()-1 is the snapshot's last
 * entry, whose term term() still answers. An empty log has firstIndex() = lastIndex() + 1.
 */
export interface LogStorage {
  /** The persisted hard state and membership, read once when the core starts. */
  initialState(): { readonly hardState: HardState; readonly conf: ConfState };
  /**
   * Entries [lo, hi), stopping early once their total `data` size exceeds bytesMax but always returning
   * at least one entry when lo < hi. Throws CompactedError if lo < firstIndex(), UnavailableError if
   * hi > lastIndex() + 1. The returned array and entries must not be mutated by the caller.
   */
  entries(lo: number, hi: number, bytesMax: number): readonly Entry[];
  /**
   * The term of entry i, for firstIndex()-1 <= i <= lastIndex(). Throws CompactedError below that range,
   * UnavailableError above it.
   */
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /** The most recent snapshot (index 0 and empty data when there is none). */
  snapshot(): Snapshot;
  /**
   * The most recent snapshot with its data, for a follower that needs it; undefined while its data is
   * not in memory (a durable log lets it go once written and restored): the storage starts reading it
   * back, and a later call returns it (etcd-io/raft's ErrSnapshotTemporarilyUnavailable). The core then
   * sends nothing and tries again when the follower next answers.
   */
  snapshotToSend(): Snapshot | undefined;
}

/**
 * What an entry costs beyond its data in every size limit: its index and term (8 bytes each) and about
 * as much again for its type and framing. An estimate, but the same one for proposals, append batches,
 * the inflight window and apply batches, so an entry accepted by one limit fits the others.
 */
export const entryOverheadBytes = 24;

/** An approximate size of an entry for message-size and inflight-byte limits. */
export function entrySize(entry: Entry): number {
  return entry.data.byteLength + entryOverheadBytes;
}
