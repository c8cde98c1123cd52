import { assert } from "../lib/assert.js";

/**
 * A bounded FIFO of outgoing items for one peer, limited both by count and by bytes. Pushing never fails
 * and never blocks: when a limit would be exceeded, the OLDEST items are evicted.
 *
 * Why the oldest: Raft tolerates the loss of any message, and the newest ones are worth the most. They carry
 * the current term and commit index and the latest heartbeat, whereas the oldest are the likeliest to be
 * stale by the time the peer can take them (appends the leader will resend after it probes the follower
 * again, votes of a past election, heartbeats of a past round). Dropping the newest instead would, after a
 * stall, deliver a backlog of stale messages and throw away the fresh ones.
 */
export class SendQueue<T> {
  private readonly items: (T | undefined)[];
  private readonly sizes: number[];
  private head = 0;
  private count = 0;
  private bytes = 0;

  constructor(
    readonly itemsMax: number,
    readonly bytesMax: number,
  ) {
    assert(Number.isSafeInteger(itemsMax) && itemsMax > 0, "send queue: itemsMax must be a positive integer");
    assert(Number.isSafeInteger(bytesMax) && bytesMax > 0, "send queue: bytesMax must be a positive integer");
    this.items = new Array<T | undefined>(itemsMax).fill(undefined);
    this.sizes = new Array<number>(itemsMax).fill(0);
  }

  get length(): number {
    return this.count;
  }

  get byteLength(): number {
    return this.bytes;
  }

  /**
   * Appends `item` of `size` bytes and returns how many older items were evicted to make room. An item
   * larger than bytesMax on its own still gets in (alone): the caller decides whether it can be sent.
   */
  push(item: T, size: number): number {
    assert(size >= 0, "send queue: negative size");
    let evicted = 0;
    while (this.count > 0 && (this.count === this.itemsMax || this.bytes + size > this.bytesMax)) {
      this.shift();
      evicted++;
    }
    const at = (this.head + this.count) % this.itemsMax;
    this.items[at] = item;
    this.sizes[at] = size;
    this.count++;
    this.bytes += size;
    assert(this.count <= this.itemsMax, "send queue: over its item limit");
    return evicted;
  }

  /** The size of the oldest item, or undefined when empty. */
  peekSize(): number | undefined {
    return this.count === 0 ? undefined : this.sizes[this.head];
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined; // let the message be collected
    this.bytes -= this.sizes[this.head] ?? 0;
    this.head = (this.head + 1) % this.itemsMax;
    this.count--;
    assert(this.bytes >= 0, "send queue: byte count below zero");
    return item;
  }

  /** Removes everything and returns how many items there were. */
  clear(): number {
    const n = this.count;
    while (this.count > 0) this.shift();
    return n;
  }
}
