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
    if (previous === undefined) this.order.insert(key);
    else this.liveBytes -= recordBytes(previous);
    this.records.set(key, record);
    this.liveBytes += recordBytes(record);
  }

  delete(key: string): boolean {
    const previous = this.records.get(key);
    if (previous === undefined) return false;
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

  /** Every record in key order, as a new array: the snapshot's frozen view, taken synchronously. */
  sortedRecords(): KeyRecord[] {
    const keys = this.order.toArray();
    const records = new Array<KeyRecord>(keys.length);
    for (let i = 0; i < keys.length; i++) records[i] = this.records.get(keys[i] as string) as KeyRecord;
    return records;
  }
}
