import { assert } from "../lib/assert.js";
import { recordBytes } from "./key-record.js";
import type { KeyRecord } from "./key-record.js";

export type EventKind = "put" | "delete";

/** One change of one key, as retained for watchers. */
export interface HistoryEvent {
  /** The position in the history's event sequence: consecutive, never reused (until a restore). */
  readonly seq: number;
  readonly revision: number;
  readonly kind: EventKind;
  readonly key: string;
  /** After the change; for a delete, a tombstone (empty value, modRevision = the deleting revision). */
  readonly kv: KeyRecord;
  /** Before the change, when the key existed. */
  readonly prevKv: KeyRecord | undefined;
  /** What the event is charged against watchHistoryBytesMax. */
  readonly bytes: number;
}

export interface HistoryLimits {
  readonly watchHistoryMax: number;
  readonly watchHistoryBytesMax: number;
}

const eventOverheadBytes = 64;

/**
 * The bounded history of the latest events, oldest first, limited in count and in bytes. Events are
 * appended in revision order. The compact revision is the oldest revision whose events are all still
 * here: when any event of revision r is evicted, every revision <= r becomes unavailable, so it is
 * one past the revision of the last evicted event.
 */
export class WatchHistory {
  /** events[head..] are live; the dead prefix is dropped in bulk so eviction is amortised O(1). */
  private events: HistoryEvent[] = [];
  private head = 0;
  private nextSeq = 0;
  private bytes = 0;
  private compactRev = 1;

  constructor(private readonly limits: HistoryLimits) {}

  get compactRevision(): number {
    return this.compactRev;
  }

  /** The seq of the oldest retained event (== endSeq when empty). */
  get firstSeq(): number {
    return this.nextSeq - this.length;
  }

  /** One past the seq of the newest event. */
  get endSeq(): number {
    return this.nextSeq;
  }

  get length(): number {
    return this.events.length - this.head;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  at(seq: number): HistoryEvent | undefined {
    if (seq < this.firstSeq || seq >= this.nextSeq) return undefined;
    return this.events[this.head + (seq - this.firstSeq)];
  }

  /** The seq of the first event with a revision >= `revision` (endSeq when there is none). */
  seqAtRevision(revision: number): number {
    let lo = this.head;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.events[mid] as HistoryEvent).revision < revision) lo = mid + 1;
      else hi = mid;
    }
    return this.firstSeq + (lo - this.head);
  }

  /** Appends an event without evicting; call `evictOverflow` once the watchers have seen it. */
  append(revision: number, kind: EventKind, key: string, kv: KeyRecord, prevKv: KeyRecord | undefined): HistoryEvent {
    const last = this.events[this.events.length - 1];
    assert(last === undefined || this.length === 0 || last.revision <= revision, "history events are appended in revision order");
    const bytes = eventOverheadBytes + recordBytes(kv) + (prevKv === undefined ? 0 : recordBytes(prevKv));
    const event: HistoryEvent = { seq: this.nextSeq++, revision, kind, key, kv, prevKv, bytes };
    this.events.push(event);
    this.bytes += bytes;
    return event;
  }

  /**
   * Drops the oldest events while over a limit, reporting each to `onEvict` before it goes. A revision
   * goes whole: once one of its events is evicted the revision is below the compact revision, so the
   * rest of its events (a Txn or a range delete writes several) are unavailable too and must not stay.
   * A history holding events older than its compact revision is one a snapshot cannot carry: the
   * decoder rejects it, and a node could neither restart from that snapshot nor install it.
   */
  evictOverflow(onEvict: (event: HistoryEvent) => void): void {
    while (this.length > 0) {
      const event = this.events[this.head] as HistoryEvent;
      const overLimit = this.length > this.limits.watchHistoryMax || this.bytes > this.limits.watchHistoryBytesMax;
      if (!overLimit && event.revision >= this.compactRev) break;
      onEvict(event);
      this.head++;
      this.bytes -= event.bytes;
      this.compactRev = Math.max(this.compactRev, event.revision + 1);
    }
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }

  /** Every retained event, oldest first. */
  *all(): Generator<HistoryEvent, void, undefined> {
    for (let i = this.head; i < this.events.length; i++) yield this.events[i] as HistoryEvent;
  }

  /** Replaces the whole history (snapshot restore); seqs restart at 0. Evicts to the local limits. */
  replace(events: readonly Omit<HistoryEvent, "seq" | "bytes">[], compactRevision: number): void {
    this.events = [];
    this.head = 0;
    this.nextSeq = 0;
    this.bytes = 0;
    this.compactRev = compactRevision;
    for (const e of events) {
      assert(e.revision >= compactRevision, "a restored history event is older than the compact revision");
      this.append(e.revision, e.kind, e.key, e.kv, e.prevKv);
    }
    this.evictOverflow(() => {});
  }
}
