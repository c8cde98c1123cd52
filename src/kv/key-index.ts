import { assert } from "../lib/assert.js";
import { prefixEnd } from "./key-codec.js";
import { recordBytes, type KeyRecord } from "./key-record.js";
import { SortedKeys } from "./sorted-keys.js";

/** A selection of keys as a half-open range of key strings: [start, end), end undefined = unbounded. */
export interface KeySpan {
  readonly start: string;
  readonly end: string | undefined;
}

/** The span of exactly one key, or of every key starting with `key` when `prefix` is set. */
export function keySpan(key: string, prefix: boolean): KeySpan {
  // The smallest string greater than `key` is `key` followed by the byte 0x00.
  return prefix ? { start: key, end: prefixEnd(key) } : { start: key, end: `${key}\u0000` };
}

export function spanContains(span: KeySpan, key: string): boolean {
  return key >= span.start && (span.end === undefined || key < span.end);
}

/** The live keys: a hash map for point lookups plus an ordered index for ranges. */
export class KeyIndex {
  private readonly records = new Map<string, KeyRecord>();
  private readonly order: SortedKeys;
  /** The live keys' key and value bytes (recordBytes), kept as records change: the store's size. */
  private liveBytes = 0;
  /** Open frozen views (freeze), each told of every change before it is made. */
  private readonly views = new Set<FrozenKeys>();

  constructor(order: SortedKeys = new SortedKeys()) {
    this.order = order;
  }

  /** An index of `records`, whose key strings `keys` (same order) are strictly ascending. */
  static fromSorted(keys: readonly string[], records: readonly KeyRecord[]): KeyIndex {
    assert(keys.length === records.length, "one key string per record");
    const index = new KeyIndex(SortedKeys.fromSorted(keys));
    keys.forEach((key, i) => {
      const record = records[i] as KeyRecord;
      index.records.set(key, record);
      index.liveBytes += recordBytes(record);
    });
    return index;
  }

  get size(): number {
    return this.records.size;
  }

  /** The key and value bytes of every live key. */
  get bytes(): number {
    return this.liveBytes;
  }

  get(key: string): KeyRecord | undefined {
    return this.records.get(key);
  }

  set(key: string, record: KeyRecord): void {
    const previous = this.records.get(key);
    for (const view of this.views) view.keep(key, previous);
    if (previous === undefined) this.order.insert(key);
    else this.liveBytes -= recordBytes(previous);
    this.records.set(key, record);
    this.liveBytes += recordBytes(record);
  }

  delete(key: string): boolean {
    const previous = this.records.get(key);
    if (previous === undefined) return false;
    for (const view of this.views) view.keepDeleted(key, previous);
    this.records.delete(key);
    this.order.delete(key);
    this.liveBytes -= recordBytes(previous);
    return true;
  }

  /** The keys of `span` from `from` on (at least span.start), in order. Do not change the index while iterating. */
  *scan(span: KeySpan, from: string = span.start): Generator<[string, KeyRecord], void, undefined> {
    for (const key of this.order.range(from > span.start ? from : span.start, span.end)) {
      yield [key, this.records.get(key) as KeyRecord];
    }
  }

  count(span: KeySpan, from: string = span.start): number {
    return this.order.countRange(from > span.start ? from : span.start, span.end);
  }

  /**
   * Every record as it is now, in key order, read lazily while the index goes on changing (a
   * snapshot's encoding spread over many event-loop turns). Taking it costs O(1): instead of copying
   * the records, the index tells the view the old record of each key before its first change, and the
   * view reads everything else from the live index. Close it when done (reading to the end closes it).
   */
  freeze(): FrozenKeys {
    const view = new FrozenKeys(
      (from, limit) => this.keysFrom(from, limit),
      (key) => this.records.get(key),
      () => this.views.delete(view),
    );
    this.views.add(view);
    return view;
  }

  /** Up to `limit` live keys from `from` on (inclusive), ascending. */
  private keysFrom(from: string, limit: number): string[] {
    const keys: string[] = [];
    for (const key of this.order.range(from, undefined)) {
      keys.push(key);
      if (keys.length === limit) break;
    }
    return keys;
  }
}

/** Live keys a frozen view reads from the index at a time (one synchronous step; the index may change between two). */
const frozenBatchKeys = 256;

/**
 * The records of a KeyIndex at the moment freeze() was called (see there).
 *
 * Why each record read is the one of that moment. A key's record changes only through set and delete,
 * which call keep/keepDeleted first: `kept` then holds the record it had when the view was taken
 * (null: the key did not exist yet), and only the first change of a key is kept. A key not in `kept`
 * has not changed, so its live record is the frozen one. The live keys are read in batches, each in one
 * synchronous step; every key of the frozen moment is either still live (found by a batch, its record
 * then looked up at the moment it is yielded, through `kept` first) or deleted since, in which case it
 * is in `gone` and merged in by the batch whose key range covers it. Keys created since are live but
 * kept as null, and skipped. Each key is yielded once: the batches cover disjoint, ascending ranges.
 */
export class FrozenKeys implements Iterable<KeyRecord> {
  private readonly kept = new Map<string, KeyRecord | null>();
  /** Keys of the frozen moment that have been deleted since (some may be live again). */
  private readonly gone = new SortedKeys();
  private closed = false;

  constructor(
    private readonly liveKeysFrom: (from: string, limit: number) => string[],
    private readonly liveRecord: (key: string) => KeyRecord | undefined,
    private readonly onClose: () => void,
  ) {}

  /** Called by the index before it changes `key`, whose record is `previous` (undefined: absent). */
  keep(key: string, previous: KeyRecord | undefined): void {
    if (!this.kept.has(key)) this.kept.set(key, previous ?? null);
  }

  /** Called by the index before it deletes `key`, whose record is `previous`. */
  keepDeleted(key: string, previous: KeyRecord): void {
    this.keep(key, previous);
    if (this.kept.get(key) !== null) this.gone.insert(key);
  }

  /** Stops following the index; what was not read is lost. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.kept.clear();
    this.onClose();
  }

  *[Symbol.iterator](): Generator<KeyRecord, void, undefined> {
    assert(!this.closed, "a closed frozen view cannot be read");
    try {
      let from = "";
      for (;;) {
        const live = this.liveKeysFrom(from, frozenBatchKeys);
        const full = live.length === frozenBatchKeys;
        const last = live[live.length - 1];
        // The batch covers [from, last] when full, [from, end) otherwise.
        const end = full && last !== undefined ? `${last}\u0000` : undefined;
        const deleted = [...this.gone.range(from, end)].filter((key) => this.liveRecord(key) === undefined);
        for (const key of mergeSorted(live, deleted)) {
          const record = this.frozenRecord(key);
          if (record !== undefined) yield record;
        }
        if (!full || end === undefined) return;
        from = end;
      }
    } finally {
      this.close();
    }
  }

  private frozenRecord(key: string): KeyRecord | undefined {
    const kept = this.kept.get(key);
    if (kept === null) return undefined;
    return kept ?? this.liveRecord(key);
  }
}

/** The union of two ascending, duplicate-free string lists, ascending (a key in both appears once). */
function mergeSorted(a: readonly string[], b: readonly string[]): string[] {
  if (b.length === 0) return a as string[];
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && x < y)) {
      out.push(x as string);
      i++;
    } else if (x === undefined || y < x) {
      out.push(y);
      j++;
    } else {
      out.push(x);
      i++;
      j++;
    }
  }
  return out;
}
