import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { CommandSchema, type Command, type CommandResult } from "../../gen/raftkv/v1/command_pb.js";
import {
  ResponseHeaderSchema,
  type DeleteRequest,
  type DeleteResponse,
  type GetRequest,
  type GetResponse,
  type KvService,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type TxnRequest,
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
 * The unary methods of KvService, each given the request's signal (its deadline and cancellation). Both
 * the Connect routes (createKvServiceImpl) and the gRPC fast path of the client port (src/server) call
 * these, so validation, proposals, read barriers and the error mapping exist once. Every failure is
 * thrown as a ConnectError mapped by failRequest.
 */
export interface KvUnaryHandlers {
  put(request: PutRequest, signal: AbortSignal): Promise<PutResponse>;
  delete(request: DeleteRequest, signal: AbortSignal): Promise<DeleteResponse>;
  txn(request: TxnRequest, signal: AbortSignal): Promise<TxnResponse>;
  get(request: GetRequest, signal: AbortSignal): Promise<GetResponse>;
  range(request: RangeRequest, signal: AbortSignal): Promise<RangeResponse>;
}

export type KvUnaryOptions = Pick<KvServiceOptions, "node" | "store" | "logger" | "admission">;

export function createKvUnaryHandlers(options: KvUnaryOptions): KvUnaryHandlers {
  const { node, store, logger } = options;
  const admission = options.admission ?? store.options;
  const header = responseHeader(node);

  async function mutate(command: Command, method: string, signal: AbortSignal): Promise<CommandResult> {
    try {
      validateCommand(command, admission);
      return await node.mutate(command, signal);
    } catch (error) {
      throw failRequest(error, method, { signal, mutation: true }, logger);
    }
  }

  async function read<T>(method: string, signal: AbortSignal, serializable: boolean, validate: () => void, answer: () => T): Promise<T> {
    try {
      validate();
      if (!serializable) await node.readBarrier(signal);
      return answer();
    } catch (error) {
      throw failRequest(error, method, { signal }, logger);
    }
  }

  return {
    async put(request, signal) {
      const command = create(CommandSchema, { clientId: request.clientId, sequence: request.sequence, op: { case: "put", value: request } });
      const result = await mutate(command, "Put", signal);
      assert(result.result.case === "put", "a Put applied as another kind of command");
      return withHeader(result.result.value, header);
    },

    async delete(request, signal) {
      const command = create(CommandSchema, { clientId: request.clientId, sequence: request.sequence, op: { case: "delete", value: request } });
      const result = await mutate(command, "Delete", signal);
      assert(result.result.case === "delete", "a Delete applied as another kind of command");
      return withHeader(result.result.value, header);
    },

    async txn(request, signal) {
      const command = create(CommandSchema, { clientId: request.clientId, sequence: request.sequence, op: { case: "txn", value: request } });
      const result = await mutate(command, "Txn", signal);
      assert(result.result.case === "txn", "a Txn applied as another kind of command");
      return withHeader(result.result.value, header);
    },

    get(request, signal) {
      return read(
        "Get",
        signal,
        request.serializable,
        () => validateGet(request, admission),
        () => withHeader(store.get(request), header),
      );
    },

    range(request, signal) {
      return read(
        "Range",
        signal,
        request.serializable,
        () => validateRange(request, admission),
        () => withHeader(store.range(request), header),
      );
    },
  };
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

/** The response header of this node: the revision the store reports, this node's term and id. */
function responseHeader(node: KvNode): (revision: number | bigint) => ResponseHeader {
  return (revision) => create(ResponseHeaderSchema, { revision: BigInt(revision), raftTerm: BigInt(node.status().term), memberId: BigInt(node.id) });
}

/** Fills in the answering node's term and id; the store sets only the revision. */
function withHeader<T extends { header?: ResponseHeader | undefined }>(response: T, header: (revision: bigint) => ResponseHeader): T {
  response.header = header(response.header?.revision ?? 0n);
  return response;
}
