import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { KvService, WatchResponse } from "../../gen/raftkv/v1/kv_pb.js";
import type { KvNode } from "../driver/types.js";
import { validateWatch, type ValidationLimits } from "../kv/index.js";
import { reasonHeader } from "./wire-contract.js";
import { failRequest } from "./handler-errors.js";
import { createKvUnaryHandlers, responseHeader, type KvReadStore, type KvUnaryOptions } from "./kv-unary.js";
import { servePipeline } from "./pipeline.js";
import { connectionKey, requestSignal } from "./request-context.js";
import type { Logger } from "../lib/logger.js";
import { ConnectionWatchLimit, watchStream } from "./watch-stream.js";

export interface KvServiceOptions {
  readonly node: KvNode;
  readonly store: KvReadStore;
  readonly logger: Logger;
  /** The deadline of a request whose client set none. */
  readonly requestTimeoutMs: number;
  readonly watchersPerConnectionMax: number;
  /**
   * What this node accepts into a proposal (the --key-bytes-max, --value-bytes-max and --txn-ops-max
   * flags); the store's own limits when absent. Checked here, before proposing, and never at apply:
   * members may differ (a rolling change), while the store applies with limits every member shares.
   */
  readonly admission?: ValidationLimits;
  /** The most events one Watch message carries. */
  readonly watchBatchEventsMax: number;
  /** Aborted when the server shuts down: open Watch streams end with `canceled`. */
  readonly shutdown: AbortSignal;
  /** Told when a Watch stream opens (+1) or ends (-1). */
  readonly onWatchers?: (delta: 1 | -1) => void;
  /** Hands a follower's writes to the leader (see KvUnaryOptions.forwardWrite). */
  readonly forwardWrite?: NonNullable<KvUnaryOptions["forwardWrite"]>;
  /** The space quota (see KvUnaryOptions.quotaBytes). */
  readonly quotaBytes?: number;
}

/**
 * KvService over a node. Writes are encoded as a Command and go through the log (`mutate`); reads are
 * linearizable by default (a ReadIndex barrier, then the local store) and `serializable` skips the
 * barrier. Every request is validated with this node's admission limits before it costs a log entry,
 * so a bad request is refused here, with a message naming the field.
 *
 * Txn always goes through the log, even when it only reads: its compares and reads must see one
 * revision atomically with its writes, and the log is where that order is decided.
 */
export function createKvServiceImpl(options: KvServiceOptions): ServiceImpl<typeof KvService> {
  const { node, store, logger } = options;
  const admission = options.admission ?? store.options;
  const watchLimit = new ConnectionWatchLimit(options.watchersPerConnectionMax);
  const unary = createKvUnaryHandlers(options);
  const header = responseHeader(node);
  const signalOf = (context: HandlerContext): AbortSignal => requestSignal(context, options.requestTimeoutMs);

  return {
    put: (request, context) => unary.put(request, signalOf(context)),
    delete: (request, context) => unary.delete(request, signalOf(context)),
    txn: (request, context) => unary.txn(request, signalOf(context)),
    get: (request, context) => unary.get(request, signalOf(context)),
    range: (request, context) => unary.range(request, signalOf(context)),
    pipeline: (requests, context) =>
      servePipeline(requests, { handlers: unary, requestTimeoutMs: options.requestTimeoutMs, signal: context.signal }),

    async *watch(request, context): AsyncGenerator<WatchResponse> {
      const connection = context.values.get(connectionKey);
      const signal = requestSignal(context, options.requestTimeoutMs);
      try {
        validateWatch(request, admission);
        // "Changes after the current revision" should mean the cluster's current revision, not this
        // replica's possibly stale one; a watch resuming at an explicit revision needs no barrier.
        if (request.startRevision === 0n) await node.readBarrier(signal);
      } catch (error) {
        throw failRequest(error, "Watch", { signal }, logger);
      }
      if (!watchLimit.acquire(connection)) {
        throw new ConnectError(
          `too many watches on this connection (limit ${watchLimit.watchersPerConnectionMax}); close some or open another connection`,
          Code.ResourceExhausted,
          { [reasonHeader]: "too-many-watchers" },
        );
      }
      options.onWatchers?.(1);
      try {
        yield* watchStream(request, {
          store,
          header,
          signal: context.signal,
          shutdown: options.shutdown,
          batchEventsMax: options.watchBatchEventsMax,
        });
      } catch (error) {
        throw failRequest(error, "Watch", { signal: context.signal }, logger);
      } finally {
        watchLimit.release(connection);
        options.onWatchers?.(-1);
      }
    },
  };
}
