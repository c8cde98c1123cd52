import { create } from "@bufbuild/protobuf";
import { assert } from "../lib/assert.js";
import { EventSchema, EventType } from "../../gen/raftkv/v1/kv_pb.js";
import type { Event } from "../../gen/raftkv/v1/kv_pb.js";
import { KvError } from "./errors.js";
import { spanContains } from "./key-index.js";
import type { KeySpan } from "./key-index.js";
import { toKeyValue } from "./key-record.js";
import type { HistoryEvent, WatchHistory } from "./watch-history.js";

/** Why a watcher ended. Each one is final: the owner closes its stream and the client decides what next. */
export type WatchCancelReason =
  /**
   * The watcher fell behind: events it had not taken yet were evicted from the bounded history. The
   * client re-reads the state and watches again from there (WatchCompacted on the wire).
   */
  | { readonly kind: "compacted"; readonly compactRevision: number }
  /** The store was replaced by a snapshot; watch again from the last revision received. */
  | { readonly kind: "restored" }
  /** Its owner closed it. */
  | { readonly kind: "closed" };

export type WatcherState = { readonly kind: "active" } | { readonly kind: "canceled"; readonly reason: WatchCancelReason };

export type WatchTake =
  { readonly kind: "events"; readonly events: readonly Event[] } | { readonly kind: "canceled"; readonly reason: WatchCancelReason };

/**
 * A subscription to the changes of a key span. It holds no queue of its own: its backlog is the
 * shared, bounded history after its cursor, so a slow watcher costs O(1) memory and is canceled (with
 * reason "compacted") once the history drops an event it has not taken.
 */
export interface Watcher {
  readonly id: number;
  readonly state: WatcherState;
  /** The watcher's next events, at most `eventsMax` (default watchBatchEventsMax), or why it ended. */
  take(eventsMax?: number): WatchTake;
  /** Resolves once `take` would return at least one event, or the watcher is canceled. */
  ready(): Promise<void>;
  /** Ends the watcher; its state becomes canceled with reason "closed". Idempotent. */
  close(): void;
}

interface WatcherInit {
  readonly span: KeySpan;
  /** Events of earlier revisions are not reported (a watch starting in the future). */
  readonly minRevision: number;
  readonly prevKv: boolean;
}

interface WatchHubLimits {
  readonly watchersMax: number;
  readonly watchBatchEventsMax: number;
}

class WatcherImpl implements Watcher {
  state: WatcherState = { kind: "active" };
  /** Every matching event with seq < cursor has been taken. */
  cursor: number;
  /** How many matching events with seq >= cursor are not taken yet. */
  pending: number;
  private waiter: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(
    readonly id: number,
    private readonly init: WatcherInit,
    private readonly hub: WatchHub,
    cursor: number,
    pending: number,
  ) {
    this.cursor = cursor;
    this.pending = pending;
  }

  matches(event: HistoryEvent): boolean {
    return event.revision >= this.init.minRevision && spanContains(this.init.span, event.key);
  }

  take(eventsMax?: number): WatchTake {
    if (this.state.kind === "canceled") return this.state;
    const limit = Math.max(1, Math.min(eventsMax ?? this.hub.limits.watchBatchEventsMax, this.hub.limits.watchBatchEventsMax));
    const history = this.hub.history;
    const events: Event[] = [];
    // Matching events before firstSeq cannot exist: evicting one cancels the watcher.
    let seq = Math.max(this.cursor, history.firstSeq);
    while (this.pending > 0 && events.length < limit && seq < history.endSeq) {
      const event = history.at(seq) as HistoryEvent;
      seq++;
      if (this.matches(event)) {
        events.push(toEvent(event, this.init.prevKv));
        this.pending--;
      }
    }
    assert(this.pending === 0 || events.length === limit, "a watcher's pending events are all in the history");
    this.cursor = this.pending === 0 ? history.endSeq : seq;
    return { kind: "events", events };
  }

  ready(): Promise<void> {
    if (this.state.kind === "canceled" || this.pending > 0) return Promise.resolve();
    if (this.waiter === undefined) {
      let resolve: () => void = () => {};
      const promise = new Promise<void>((r) => (resolve = r));
      this.waiter = { promise, resolve };
    }
    return this.waiter.promise;
  }

  close(): void {
    this.hub.cancel(this, { kind: "closed" });
  }

  wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve();
  }
}

export function toEvent(event: HistoryEvent, withPrevKv: boolean): Event {
  return create(EventSchema, {
    type: event.kind === "put" ? EventType.PUT : EventType.DELETE,
    kv: toKeyValue(event.kv),
    ...(withPrevKv && event.prevKv !== undefined ? { prevKv: toKeyValue(event.prevKv) } : {}),
  });
}

/**
 * The registry of watchers. The store reports each new event (`observe`) and each evicted one
 * (`evicted`), then calls `settle` once an entry is applied; watchers are woken only then, when the
 * state they may read is consistent.
 */
export class WatchHub {
  private readonly watchers = new Map<number, WatcherImpl>();
  private nextId = 1;

  constructor(
    readonly history: WatchHistory,
    readonly limits: WatchHubLimits,
  ) {}

  get size(): number {
    return this.watchers.size;
  }

  /**
   * A watcher of `span` that reports events from revision `startRevision` on. The caller has checked
   * that startRevision >= the compact revision, so every event it needs is retained.
   */
  register(span: KeySpan, startRevision: number, prevKv: boolean): Watcher {
    assert(startRevision >= this.history.compactRevision, "watch start is older than the retained history");
    if (this.watchers.size >= this.limits.watchersMax) {
      throw new KvError({ kind: "tooManyWatchers", max: this.limits.watchersMax });
    }
    const cursor = this.history.seqAtRevision(startRevision);
    const watcher = new WatcherImpl(this.nextId++, { span, minRevision: startRevision, prevKv }, this, cursor, 0);
    for (let seq = cursor; seq < this.history.endSeq; seq++) {
      if (watcher.matches(this.history.at(seq) as HistoryEvent)) watcher.pending++;
    }
    if (watcher.pending === 0) watcher.cursor = this.history.endSeq;
    this.watchers.set(watcher.id, watcher);
    return watcher;
  }

  observe(event: HistoryEvent): void {
    for (const watcher of this.watchers.values()) {
      if (watcher.matches(event)) watcher.pending++;
    }
  }

  evicted(event: HistoryEvent): void {
    for (const watcher of this.watchers.values()) {
      if (watcher.cursor <= event.seq && watcher.matches(event)) {
        this.cancel(watcher, { kind: "compacted", compactRevision: event.revision + 1 });
      }
    }
  }

  /** After an apply: idle watchers skip what they do not watch, the others are woken. */
  settle(): void {
    for (const watcher of this.watchers.values()) {
      if (watcher.pending === 0) watcher.cursor = this.history.endSeq;
      else watcher.wake();
    }
  }

  cancel(watcher: WatcherImpl, reason: WatchCancelReason): void {
    if (watcher.state.kind === "canceled") return;
    watcher.state = { kind: "canceled", reason };
    this.watchers.delete(watcher.id);
    watcher.wake();
  }

  cancelAll(reason: WatchCancelReason): void {
    for (const watcher of [...this.watchers.values()]) this.cancel(watcher, reason);
  }
}
