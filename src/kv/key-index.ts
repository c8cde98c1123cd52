import { assert } from "../lib/assert.js";
import { prefixEnd } from "./key-codec.js";
import type { KeyRecord } from "./key-record.js";
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

  constructor(order: SortedKeys = new SortedKeys()) {
    this.order = order;
  }

  /** An index of `records`, whose key strings `keys` (same order) are strictly ascending. */
  static fromSorted(keys: readonly string[], records: readonly KeyRecord[]): KeyIndex {
    assert(keys.length === records.length, "one key string per record");
    const index = new KeyIndex(SortedKeys.fromSorted(keys));
    keys.forEach((key, i) => index.records.set(key, records[i] as KeyRecord));
    return index;
  }

  get size(): number {
    return this.records.size;
  }

  get(key: string): KeyRecord | undefined {
    return this.records.get(key);
  }

  set(key: string, record: KeyRecord): void {
    if (!this.records.has(key)) this.order.insert(key);
    this.records.set(key, record);
  }

  delete(key: string): boolean {
    if (!this.records.delete(key)) return false;
    this.order.delete(key);
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
