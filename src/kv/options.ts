/**
 * Limits of the state machine. Every one bounds memory or work; all are counts or bytes.
 *
 * Determinism: the limits marked "cluster-wide" decide the outcome of applying an entry (accept or
 * reject, which session is evicted, how a Txn's Range is paged). Every member must use the same values,
 * or replicas that applied the same log would diverge. The others only bound local resources.
 */
export interface KvOptions {
  /**
   * Cluster-wide. The longest key, in bytes, checked when an entry is applied. In production these
   * apply-time limits (keys, values, client ids, Txn sizes) are the defaults below, constants of the
   * code and never flags: a limit that differed between members (a rolling change of a flag) would make
   * replicas that applied the same log diverge. The flags --key-bytes-max, --value-bytes-max and
   * --txn-ops-max are admission limits, checked only before proposing (src/rpc), at most these.
   */
  readonly keyBytesMax: number;
  /** Cluster-wide. The longest value, in bytes. */
  readonly valueBytesMax: number;
  /** Cluster-wide. The longest client id of an exactly-once session, in bytes of UTF-8. */
  readonly clientIdBytesMax: number;
  /** Cluster-wide. The most compares, and the most operations in each of a Txn's two lists. */
  readonly txnOpsMax: number;
  /** Cluster-wide. The most keys in one Range page. */
  readonly rangeKeysMax: number;
  /**
   * Cluster-wide. The most key and value bytes one response may carry: Range pages stop there (the
   * Ranges of one Txn share it), and a Delete asking for prev_kvs beyond it is refused. Must hold at
   * least one largest key-value pair, so a page always makes progress.
   */
  readonly responseBytesMax: number;
  /** Cluster-wide. The most exactly-once client sessions; the least recently seen is evicted beyond it. */
  readonly sessionsMax: number;
  /** Cluster-wide. The most bytes of remembered results over all sessions; least recently seen evicted beyond it. */
  readonly sessionsBytesMax: number;
  /** Cluster-wide. A session not seen for more than this many log entries expires. */
  readonly sessionIdleEntries: number;
  /** The most watch events retained for watchers that start in the past or fall behind. */
  readonly watchHistoryMax: number;
  /** The most bytes of retained watch events (keys, values and previous values). */
  readonly watchHistoryBytesMax: number;
  /** The most concurrent watchers. */
  readonly watchersMax: number;
  /** The most events one `take()` returns. */
  readonly watchBatchEventsMax: number;
  /**
   * The size `snapshotChunks` aims for per chunk (a chunk ends after the item that reaches it). The
   * driver encodes one chunk per turn of the event loop while it takes a snapshot, so this bounds how
   * long a snapshot holds up requests: about a millisecond per 64 KiB here (an 8.7 MB state took
   * 20-50 ms per 1 MiB chunk, 85-140 ms in all).
   */
  readonly snapshotChunkBytes: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

export const defaultKvOptions: KvOptions = {
  keyBytesMax: 64 * KiB,
  valueBytesMax: 3 * MiB,
  clientIdBytesMax: 256,
  txnOpsMax: 10_000,
  rangeKeysMax: 10_000,
  responseBytesMax: 4 * MiB,
  sessionsMax: 10_000,
  sessionsBytesMax: 64 * MiB,
  sessionIdleEntries: 1_000_000,
  watchHistoryMax: 10_000,
  watchHistoryBytesMax: 64 * MiB,
  watchersMax: 10_000,
  watchBatchEventsMax: 1_000,
  snapshotChunkBytes: 64 * KiB,
};

/** Fills in defaults and checks the result; a bad value throws a RangeError naming the option. */
export function resolveKvOptions(overrides: Partial<KvOptions> = {}): KvOptions {
  const options: KvOptions = { ...defaultKvOptions, ...overrides };
  for (const [name, value] of Object.entries(options)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`kv option ${name} must be a positive integer, got ${String(value)}`);
    }
  }
  if (options.responseBytesMax < options.keyBytesMax + options.valueBytesMax) {
    throw new RangeError(
      `kv option responseBytesMax (${options.responseBytesMax}) must be at least keyBytesMax + valueBytesMax ` +
        `(${options.keyBytesMax + options.valueBytesMax}), so that a Range page can always hold one key`,
    );
  }
  return options;
}
