import { assert } from "../lib/assert.js";

/**
 * Inflights drops its consumed prefix only once it is longer than this: below it the arrays stay small
 * anyway, and splicing on every acknowledgement of a short window would cost more than it saves.
 */
const consumedSlotsCompactMin = 64;

/**
 * A bounded window of in-flight append messages to one follower, limited by message count and by bytes.
 * Each slot records the last index a message carried; an acknowledgement of index i frees every slot <= i.
 */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  private bytes = 0;

  constructor(
    readonly countMax: number,
    readonly bytesMax: number,
  ) {
    assert(countMax > 0 && bytesMax > 0, "inflights: limits must be positive");
  }

  get count(): number {
    return this.lastIndexes.length - this.head;
  }

  full(): boolean {
    return this.count >= this.countMax || this.bytes >= this.bytesMax;
  }

  add(lastIndex: number, bytes: number): void {
    assert(!this.full(), "inflights: add to a full window");
    const tail = this.lastIndexes[this.lastIndexes.length - 1];
    assert(this.count === 0 || tail === undefined || lastIndex > tail, "inflights: indexes must grow");
    this.lastIndexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  freeLE(index: number): void {
    while (this.head < this.lastIndexes.length && (this.lastIndexes[this.head] ?? Infinity) <= index) {
      this.bytes -= this.sizes[this.head] ?? 0;
      this.head++;
    }
    // Compact once the consumed prefix dominates, so the arrays stay O(countMax).
    if (this.head > consumedSlotsCompactMin && this.head * 2 > this.lastIndexes.length) {
      this.lastIndexes.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.bytes = 0;
  }

  /** Asserts the window's bookkeeping, with every slot's index in (after, upTo]. O(countMax). */
  checkInvariants(after: number, upTo: number): void {
    // Slots are consumed from the front only; sizes and indexes are parallel arrays.
    assert(this.head <= this.lastIndexes.length && this.sizes.length === this.lastIndexes.length, "inflights: arrays out of step");
    // add() refuses a full window, so the count never exceeds its bound (bytes may, by the last message).
    assert(this.count <= this.countMax, () => `inflights: ${this.count} messages in a window of ${this.countMax}`);
    let bytes = 0;
    let prev = after;
    for (let i = this.head; i < this.lastIndexes.length; i++) {
      const index = this.lastIndexes[i] ?? Number.NaN;
      // Each message carries later entries than the one before, none already acknowledged (freeLE frees
      // every slot up to match) and none beyond what was sent (next - 1).
      assert(index > prev && index <= upTo, () => `inflights: slot ${index} after ${prev}, outside (${after}, ${upTo}]`);
      prev = index;
      bytes += this.sizes[i] ?? Number.NaN;
    }
    // The running byte count is the sum of the live slots, or the byte limit drifts.
    assert(bytes === this.bytes, () => `inflights: ${this.bytes} bytes counted, ${bytes} in the slots`);
  }
}

/**
 * How the leader replicates to one follower (etcd's tracker.Progress):
 * - `probe`: the leader does not know where the follower's log matches; it sends one append at a time
 *   and waits for the answer (or a heartbeat response) before sending the next.
 * - `replicate`: the logs are known to match up to `match`; the leader streams appends optimistically,
 *   bounded by the inflight window.
 * - `snapshot`: the follower needs a snapshot; nothing else is sent until it is installed or fails.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  /** The highest index known to be durably replicated on the follower. */
  match = 0;
  /** The next index to send. Invariant: match < next. */
  next: number;
  state: ProgressState = "probe";
  /** In probe state: an append is outstanding, wait for its answer or a heartbeat response. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being sent, and ticks spent waiting for it. */
  pendingSnapshot = 0;
  snapshotTicks = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(next: number, inflightCountMax: number, inflightBytesMax: number) {
    this.next = next;
    this.inflights = new Inflights(inflightCountMax, inflightBytesMax);
  }

  becomeProbe(): void {
    // After a snapshot, the follower's log starts right after it.
    const next = this.state === "snapshot" ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1;
    this.resetState("probe");
    this.next = next;
  }

  becomeReplicate(): void {
    this.resetState("replicate");
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState("snapshot");
    this.pendingSnapshot = snapshotIndex;
  }

  /** An acknowledgement of index n: returns whether match moved forward. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** In replicate state, the leader assumes a sent append will succeed. */
  optimisticUpdate(lastSent: number): void {
    this.next = lastSent + 1;
  }

  /**
   * A rejection of prevIndex `rejected`, with `probeHint` the leader's guess (from the follower's
   * conflict hint) of the largest index where the logs may match. Returns false for stale rejections.
   */
  maybeDecrTo(rejected: number, probeHint: number): boolean {
    if (this.state === "replicate") {
      // Rejections of indexes at or below match answer old messages: the logs match there.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the rejection of the last probe counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, probeHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }

  /**
   * Asserts the invariants of one follower's progress on a leader whose last index is `lastIndex`.
   * The leader's own entry is checked by RaftNode (its match is its durable last index).
   */
  checkInvariants(lastIndex: number): void {
    // next is the first index not known to be on the follower, so it is always past match.
    assert(this.match < this.next, () => `progress: match ${this.match} not below next ${this.next}`);
    // The leader ignores acknowledgements beyond its log, and never sends past it.
    assert(this.next <= lastIndex + 1, () => `progress: next ${this.next} beyond the leader's last index ${lastIndex}`);
    assert(this.match <= lastIndex, () => `progress: match ${this.match} beyond the leader's last index ${lastIndex}`);
    // Only replicate state streams; probe and snapshot send nothing that the window tracks.
    assert(
      this.state === "replicate" || this.inflights.count === 0,
      () => `progress: ${this.inflights.count} inflights in ${this.state} state`,
    );
    // A snapshot state always names the snapshot being sent (a real snapshot has index > 0); other states none.
    if (this.state === "snapshot") assert(this.pendingSnapshot > 0, "progress: snapshot state without a snapshot");
    else assert(this.pendingSnapshot === 0 && this.snapshotTicks === 0, () => `progress: snapshot bookkeeping left in ${this.state} state`);
    this.inflights.checkInvariants(this.match, this.next - 1);
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotTicks = 0;
    this.inflights.reset();
  }
}
