import { assert } from "../lib/assert.js";
import type { Entry, EntryType } from "../core/types.js";

/** Where PackedEntries stores each entry type (not its WAL code); a Record, so a new type fails to compile until it has one. */
const entryTypePositions: Readonly<Record<EntryType, number>> = { normal: 0, noop: 1, conf: 2 };
/** Every entry type, at its position. */
export const entryTypesInOrder: readonly EntryType[] = Object.entries(entryTypePositions)
  .sort(([, a], [, b]) => a - b)
  .map(([type]) => type as EntryType);

/** Grows typed arrays by this factor: amortised O(1) appends while replaying millions of entries. */
const growthFactor = 2;
const initialCapacity = 1024;

/**
 * A contiguous run of entries recovered from the WAL, packed into typed arrays: term, type, and where
 * the data lies in a segment's buffer. Replay creates no object per entry (a million entries as objects
 * cost seconds of garbage collection and ~150 bytes each); an Entry is built when one is read.
 *
 * Positions are 0-based within the run. Buffers are held until every entry in them has been dropped.
 */
export class PackedEntries {
  private terms = new Float64Array(initialCapacity);
  private types = new Uint8Array(initialCapacity);
  private offsets = new Float64Array(initialCapacity);
  private lengths = new Uint32Array(initialCapacity);
  private bufferIds = new Uint32Array(initialCapacity);
  private readonly buffers: (Uint8Array | undefined)[] = [];
  /** Entries [start, end) of the arrays are the run. */
  private start = 0;
  private end = 0;

  get length(): number {
    return this.end - this.start;
  }

  /** Registers a buffer that later pushes refer to by the returned id. */
  addBuffer(buffer: Uint8Array): number {
    this.buffers.push(buffer);
    return this.buffers.length - 1;
  }

  push(term: number, type: EntryType, bufferId: number, offset: number, bytes: number): void {
    assert(this.buffers[bufferId] !== undefined, "packed entries: unknown buffer");
    if (this.end === this.terms.length) this.grow();
    const at = this.end++;
    this.terms[at] = term;
    this.types[at] = entryTypePositions[type];
    this.bufferIds[at] = bufferId;
    this.offsets[at] = offset;
    this.lengths[at] = bytes;
  }

  term(position: number): number {
    return this.terms[this.at(position)] ?? 0;
  }

  /** Builds the entry at `position`, whose index is `index`; its data is a view, not a copy. */
  entry(position: number, index: number): Entry {
    const at = this.at(position);
    const buffer = this.buffers[this.bufferIds[at] ?? 0];
    assert(buffer !== undefined, "packed entries: buffer released too early");
    const offset = this.offsets[at] ?? 0;
    return {
      index,
      term: this.terms[at] ?? 0,
      type: entryTypesInOrder[this.types[at] ?? 0] ?? "normal",
      data: buffer.subarray(offset, offset + (this.lengths[at] ?? 0)),
    };
  }

  /** Keeps the first `count` entries. */
  truncate(count: number): void {
    assert(count >= 0 && count <= this.length, "packed entries: truncation out of range");
    this.end = this.start + count;
  }

  /** Drops the first `count` entries, releasing buffers no remaining entry uses. */
  dropFront(count: number): void {
    assert(count >= 0 && count <= this.length, "packed entries: drop out of range");
    this.start += count;
    // Buffer ids never decrease along the run, so every buffer below the first one still used is free.
    const firstUsed = this.length > 0 ? (this.bufferIds[this.start] ?? 0) : this.buffers.length;
    for (let id = 0; id < firstUsed; id++) this.buffers[id] = undefined;
  }

  private at(position: number): number {
    assert(position >= 0 && position < this.length, () => `packed entries: position ${position} out of range`);
    return this.start + position;
  }

  private grow(): void {
    const capacity = Math.max(initialCapacity, (this.end - this.start) * growthFactor);
    const move = <T extends Float64Array | Uint8Array | Uint32Array>(from: T, to: T): T => {
      to.set(from.subarray(this.start, this.end));
      return to;
    };
    this.terms = move(this.terms, new Float64Array(capacity));
    this.types = move(this.types, new Uint8Array(capacity));
    this.offsets = move(this.offsets, new Float64Array(capacity));
    this.lengths = move(this.lengths, new Uint32Array(capacity));
    this.bufferIds = move(this.bufferIds, new Uint32Array(capacity));
    this.end -= this.start;
    this.start = 0;
  }
}
