import { create } from "@bufbuild/protobuf";
import { WatchResponseSchema, type ResponseHeader, type WatchRequest, type WatchResponse } from "../../gen/raftkv/v1/kv_pb.js";
import type { KvStore, WatchCancelReason } from "../kv/index.js";
import { assert } from "../lib/assert.js";
import { linkSignals } from "./linked-signal.js";

export type WatchStore = Pick<KvStore, "revision" | "watch">;

/**
 * Counts open Watch streams per client connection, so that one client cannot take every watcher slot
 * of the node (the store's watchersMax bounds the node as a whole).
 */
export class ConnectionWatchLimit {
  private readonly open = new WeakMap<object, number>();

  constructor(readonly watchersPerConnectionMax: number) {}

  /** Takes a slot on `connection`; false when its streams are at the limit. */
  acquire(connection: object | undefined): boolean {
    if (connection === undefined) return true;
    const count = this.open.get(connection) ?? 0;
    if (count >= this.watchersPerConnectionMax) return false;
    this.open.set(connection, count + 1);
    return true;
  }

  release(connection: object | undefined): void {
    if (connection === undefined) return;
    const count = this.open.get(connection) ?? 0;
    assert(count > 0, "watch slot released twice");
    if (count === 1) this.open.delete(connection);
    else this.open.set(connection, count - 1);
  }
}

export interface WatchStreamOptions {
  readonly store: WatchStore;
  readonly header: (revision: number) => ResponseHeader;
  /** Aborted when the client goes away; the stream ends. */
  readonly signal: AbortSignal;
  /** Aborted when the server shuts down; the stream ends with `canceled` so the client moves on. */
  readonly shutdown: AbortSignal;
  /** The most events one message carries; the rest wait in the store's bounded history. */
  readonly batchEventsMax: number;
}

/**
 * One Watch stream. The watcher holds no queue of its own: its backlog is the store's bounded history
 * after its cursor, and this generator takes at most `batchEventsMax` events at a time and only when
 * the transport pulls the next message, so a slow client costs O(1) memory here. When it falls so far
 * behind that the history dropped an event it still needs, the store cancels it and the stream ends
 * with `compacted`.
 */
export async function* watchStream(request: WatchRequest, options: WatchStreamOptions): AsyncGenerator<WatchResponse> {
  const { store, header } = options;
  const start = store.watch(request);
  if (start.kind === "compacted") {
    yield create(WatchResponseSchema, {
      header: header(store.revision),
      kind: { case: "compacted", value: { compactRevision: BigInt(start.compactRevision) } },
    });
    return;
  }
  const watcher = start.watcher;
  const linked = linkSignals([options.signal, options.shutdown]);
  const signal = linked.signal;
  const stopped = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
  try {
    yield create(WatchResponseSchema, { header: header(start.revision), kind: { case: "events", value: { events: [] } } });
    while (true) {
      if (!signal.aborted) await Promise.race([watcher.ready(), stopped]);
      if (options.shutdown.aborted) {
        yield create(WatchResponseSchema, {
          header: header(store.revision),
          kind: {
            case: "canceled",
            value: { reason: "this node is shutting down; watch again on another node from the last revision received + 1" },
          },
        });
        return;
      }
      if (signal.aborted) return;
      const taken = watcher.take(options.batchEventsMax);
      if (taken.kind === "canceled") {
        const last = endMessage(taken.reason, header(store.revision));
        if (last !== undefined) yield last;
        return;
      }
      if (taken.events.length > 0) {
        yield create(WatchResponseSchema, {
          header: header(store.revision),
          kind: { case: "events", value: { events: [...taken.events] } },
        });
      }
    }
  } finally {
    linked.dispose();
    watcher.close();
  }
}

function endMessage(reason: WatchCancelReason, header: ResponseHeader): WatchResponse | undefined {
  switch (reason.kind) {
    case "compacted":
      return create(WatchResponseSchema, {
        header,
        kind: { case: "compacted", value: { compactRevision: BigInt(reason.compactRevision) } },
      });
    case "restored":
      return create(WatchResponseSchema, {
        header,
        kind: {
          case: "canceled",
          value: {
            reason: "this node replaced its state with a snapshot from the leader; watch again from the last revision received + 1",
          },
        },
      });
    case "closed":
      return undefined;
  }
}
