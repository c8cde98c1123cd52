import { assert } from "../lib/assert.js";

/**
 * An ordered set of key strings: a list of sorted chunks, each at most `chunkKeysMax` long. Finding a
 * key costs two binary searches; inserting or removing one moves at most a chunk's worth of entries,
 * not the whole key space as one sorted array would. Chunks split when full and merge with a neighbour
 * when they shrink to a quarter, so there are O(n / chunkKeysMax) of them.
 *
 * Invariants: no chunk is empty; every chunk is strictly ascending; the last key of a chunk is less
 * than the first key of the next.
 */
export class SortedKeys {
  private readonly chunks: string[][] = [];
  private count = 0;

  constructor(private readonly chunkKeysMax = 512) {
    assert(chunkKeysMax >= 4, "chunkKeysMax must be at least 4");
  }

  /**
   * Builds the set from keys already in strictly ascending order (a snapshot restore) in O(n), filling
   * chunks half full so that the inserts that follow do not split every chunk at once.
   */
  static fromSorted(keys: readonly string[], chunkKeysMax = 512): SortedKeys {
    const set = new SortedKeys(chunkKeysMax);
    const fill = chunkKeysMax >> 1;
    for (let i = 0; i < keys.length; i += fill) set.chunks.push(keys.slice(i, i + fill));
    for (let i = 1; i < keys.length; i++) {
      assert((keys[i - 1] as string) < (keys[i] as string), "SortedKeys.fromSorted needs strictly ascending keys");
    }
    set.count = keys.length;
    return set;
  }

  get size(): number {
    return this.count;
  }

  /** Adds `key`; returns false when it was already present. */
  insert(key: string): boolean {
    if (this.chunks.length === 0) {
      this.chunks.push([key]);
      this.count = 1;
      return true;
    }
    // The first chunk whose last key is >= key, or the last chunk when key is beyond every key.
    const c = Math.min(this.chunkAtOrAfter(key), this.chunks.length - 1);
    const chunk = this.chunks[c] as string[];
    const i = lowerBound(chunk, key);
    if (chunk[i] === key) return false;
    chunk.splice(i, 0, key);
    this.count++;
    if (chunk.length > this.chunkKeysMax) {
      this.chunks.splice(c + 1, 0, chunk.splice(chunk.length >> 1));
    }
    return true;
  }

  /** Removes `key`; returns false when it was absent. */
  delete(key: string): boolean {
    const c = this.chunkAtOrAfter(key);
    const chunk = this.chunks[c];
    if (chunk === undefined) return false;
    const i = lowerBound(chunk, key);
    if (chunk[i] !== key) return false;
    chunk.splice(i, 1);
    this.count--;
    if (chunk.length === 0) {
      this.chunks.splice(c, 1);
    } else if (chunk.length < this.chunkKeysMax >> 2) {
      const next = this.chunks[c + 1];
      if (next !== undefined && chunk.length + next.length <= this.chunkKeysMax) {
        chunk.push(...next);
        this.chunks.splice(c + 1, 1);
      }
    }
    return true;
  }

  /**
   * The keys >= `start` and < `end` (unbounded when undefined), ascending. Yields lazily: the caller
   * stops when it has enough. The set must not change while the iterator is in use.
   */
  *range(start: string, end: string | undefined): Generator<string, void, undefined> {
    const first = this.chunkAtOrAfter(start);
    for (let c = first; c < this.chunks.length; c++) {
      const chunk = this.chunks[c] as string[];
      for (let i = c === first ? lowerBound(chunk, start) : 0; i < chunk.length; i++) {
        const key = chunk[i] as string;
        if (end !== undefined && key >= end) return;
        yield key;
      }
    }
  }

  /** Every key, ascending, as one new array (much faster than draining `range` for a full copy). */
  toArray(): string[] {
    // A plain loop: Array.prototype.flat is several times slower in V8 for this.
    const keys = new Array<string>(this.count);
    let i = 0;
    for (const chunk of this.chunks) for (const key of chunk) keys[i++] = key;
    return keys;
  }

  /** How many keys are >= `start` and < `end` (unbounded when undefined), in O(chunks) time. */
  countRange(start: string, end: string | undefined): number {
    const from = this.rank(start);
    const to = end === undefined ? this.count : this.rank(end);
    return Math.max(0, to - from);
  }

  /** How many keys are < `key`. */
  private rank(key: string): number {
    const c = this.chunkAtOrAfter(key);
    let before = 0;
    for (let i = 0; i < c; i++) before += (this.chunks[i] as string[]).length;
    const chunk = this.chunks[c];
    return chunk === undefined ? before : before + lowerBound(chunk, key);
  }

  /** The index of the first chunk whose last key is >= key; chunks.length when there is none. */
  private chunkAtOrAfter(key: string): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const chunk = this.chunks[mid] as string[];
      if ((chunk[chunk.length - 1] as string) < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** The index of the first element >= key in an ascending array. */
function lowerBound(items: readonly string[], key: string): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((items[mid] as string) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
