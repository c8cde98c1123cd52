import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { CommandSchema, type Command, type CommandResult } from "../../gen/raftkv/v1/command_pb.js";
import type {
  KvService} from "../../gen/raftkv/v1/kv_pb.js";
import {
  ResponseHeaderSchema,
  type DeleteResponse,
  type PutResponse,
  type ResponseHeader,
  type TxnResponse,
  type WatchResponse,
} from "../../gen/raftkv/v1/kv_pb.js";
import type { KvNode } from "../driver/types.js";
import { validateCommand, validateGet, validateRange, validateWatch, type KvStore, type ValidationLimits } from "../kv/index.js";
import { assert } from "../lib/assert.js";
import { reasonHeader } from "./errors.js";
import { failRequest } from "./handler-errors.js";
import { connectionKey, requestSignal } from "./request-context.js";
import type { RpcLogger } from "./rpc-logger.js";
import { ConnectionWatchLimit, watchStream } from "./watch-stream.js";

/** The store's read side: what a node answers from its local state after a read barrier. */
export type KvReadStore = Pick<KvStore, "options" | "revision" | "get" | "range" | "watch">;

export interface KvServiceOptions {
  readonly node: KvNode;
  readonly store: KvReadStore;
  readonly logger: RpcLogger;
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

  const header = (revision: number | bigint): ResponseHeader =>
    create(ResponseHeaderSchema, { revision: BigInt(revision), raftTerm: BigInt(node.status().term), memberId: BigInt(node.id) });

  async function mutate(command: Command, method: string, context: HandlerContext): Promise<CommandResult> {
    const signal = requestSignal(context, options.requestTimeoutMs);
    try {
      validateCommand(command, admission);
      return await node.mutate(command, signal);
    } catch (error) {
      throw failRequest(error, method, { signal, mutation: true }, logger);
    }
  }

  async function read<T>(method: string, context: HandlerContext, serializable: boolean, validate: () => void, answer: () => T): Promise<T> {
    const signal = requestSignal(context, options.requestTimeoutMs);
    try {
      validate();
      if (!serializable) await node.readBarrier(signal);
      return answer();
    } catch (error) {
      throw failRequest(error, method, { signal }, logger);
    }
  }

  return {
    async put(request, context): Promise<PutResponse> {
      const command = create(CommandSchema, { clientId: request.clientId, sequence: request.sequence, op: { case: "put", value: request } });
      const result = await mutate(command, "Put", context);
      assert(result.result.case === "put", "a Put applied as another kind of command");
      return withHeader(result.result.value, header);
    },

    async delete(request, context): Promise<DeleteResponse> {
      const command = create(CommandSchema, { clientId: request.clientId, sequence: request.sequence, op: { case: "delete", value: request } });
      const result = await mutate(command, "Delete", context);
      assert(result.result.case === "delete", "a Delete applied as another kind of command");
      return withHeader(result.result.value, header);
    },

    async txn(request, context): Promise<TxnResponse> {
      const command = create(CommandSchema, { clientId: request.clientId, sequence: request.sequence, op: { case: "txn", value: request } });
      const result = await mutate(command, "Txn", context);
      assert(result.result.case === "txn", "a Txn applied as another kind of command");
      return withHeader(result.result.value, header);
    },

    async get(request, context) {
      return read(
        "Get",
        context,
        request.serializable,
        () => validateGet(request, admission),
        () => withHeader(store.get(request), header),
      );
    },

    async range(request, context) {
      return read(
        "Range",
        context,
        request.serializable,
        () => validateRange(request, admission),
        () => withHeader(store.range(request), header),
      );
    },

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

/** Fills in the answering node's term and id; the store sets only the revision. */
function withHeader<T extends { header?: ResponseHeader | undefined }>(response: T, header: (revision: bigint) => ResponseHeader): T {
  response.header = header(response.header?.revision ?? 0n);
  return response;
}
