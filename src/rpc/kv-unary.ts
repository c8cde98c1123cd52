import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { CommandSchema, type Command, type CommandResult } from "../../gen/raftkv/v1/command_pb.js";
import {
  ResponseHeaderSchema,
  type DeleteRequest,
  type DeleteResponse,
  type GetRequest,
  type GetResponse,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type TxnRequest,
  type TxnResponse,
} from "../../gen/raftkv/v1/kv_pb.js";
import { NotLeaderError, UnknownOutcomeError } from "../driver/errors.js";
import type { KvNode } from "../driver/types.js";
import { noNode, type NodeId } from "../core/index.js";
import { validateCommand, validateGet, validateRange, type KvStore, type ValidationLimits } from "../kv/index.js";
import { assert } from "../lib/assert.js";
import { errorReason, reasonHeader } from "./wire-contract.js";
import { failRequest } from "./handler-errors.js";
import type { Logger } from "../lib/logger.js";

/** The store's read side: what a node answers from its local state after a read barrier. */
export type KvReadStore = Pick<KvStore, "options" | "revision" | "get" | "range" | "watch" | "dataBytes">;

export interface KvUnaryOptions {
  readonly node: KvNode;
  readonly store: KvReadStore;
  readonly logger: Logger;
  /** What this node accepts into a proposal; the store's own limits when absent (see KvServiceOptions). */
  readonly admission?: ValidationLimits;
  /**
   * Runs a write on the leader (RaftService.Forward over the peer connection) when this node is a
   * follower that knows the leader. Absent: a follower answers not-leader with the leader's URL, and
   * the client goes there itself (`--forward-writes=false`).
   */
  readonly forwardWrite?: (leader: NodeId, command: Command, signal: AbortSignal) => Promise<CommandResult>;
  /**
   * The space quota (--quota-bytes): once the store's keys and values reach it, writes that add data
   * (a Put, a Txn with a put) are refused with ResourceExhausted / quota-exceeded before they cost a log
   * entry, while reads and deletes go on, so an operator can free space. Checked on the node that takes
   * the request and again on the leader for a forwarded one; members may differ during a rolling change.
   */
  readonly quotaBytes?: number;
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

export function createKvUnaryHandlers(options: KvUnaryOptions): KvUnaryHandlers {
  const { node, store, logger } = options;
  const admission = options.admission ?? store.options;
  const header = responseHeader(node);

  async function mutate(command: Command, method: string, signal: AbortSignal, forward: boolean): Promise<CommandResult> {
    try {
      validateCommand(command, admission);
      checkQuota(command);
      try {
        return await node.mutate(command, signal);
      } catch (error) {
        // Nothing was proposed here (NotLeaderError is thrown before proposing), so handing the write
        // to the leader cannot apply it twice; a forwarded write is never forwarded again.
        if (!forward || options.forwardWrite === undefined || !(error instanceof NotLeaderError) || error.leaderId === noNode) throw error;
        return await forwardToLeader(options.forwardWrite, error.leaderId, command, signal);
      }
    } catch (error) {
      throw failRequest(error, method, { signal, mutation: true }, logger);
    }
  }

  function checkQuota(command: Command): void {
    const quota = options.quotaBytes;
    if (quota === undefined || store.dataBytes < quota || !addsData(command)) return;
    throw new ConnectError(
      `the store holds ${store.dataBytes} bytes of keys and values, at its space quota of ${quota} (--quota-bytes): writes that add data are refused until deletes free space; reads and deletes still work`,
      Code.ResourceExhausted,
      { [reasonHeader]: "quota-exceeded" },
    );
  }

  async function forwardToLeader(
    forwardWrite: NonNullable<KvUnaryOptions["forwardWrite"]>,
    leader: NodeId,
    command: Command,
    signal: AbortSignal,
  ): Promise<CommandResult> {
    try {
      return await forwardWrite(leader, command, signal);
    } catch (error) {
      // The leader's own answer (its client port's error, with the reason a client acts on): pass it on.
      if (error instanceof ConnectError && errorReason(error) !== undefined) throw error;
      // The call died on the way (connection lost, the leader crashed, our deadline): the leader may
      // have proposed the write, so its outcome is unknown, as for a write sent to the leader directly.
      const why = error instanceof Error ? error.message : String(error);
      throw new UnknownOutcomeError(`forwarding the write to the leader (node ${leader}) failed (${why})`, { cause: error });
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
      const command = create(CommandSchema, {
        clientId: request.clientId,
        sequence: request.sequence,
        op: { case: "put", value: request },
      });
      const result = await mutate(command, "Put", signal, true);
      assert(result.result.case === "put", "a Put applied as another kind of command");
      return withHeader(result.result.value, header);
    },

    async delete(request, signal) {
      const command = create(CommandSchema, {
        clientId: request.clientId,
        sequence: request.sequence,
        op: { case: "delete", value: request },
      });
      const result = await mutate(command, "Delete", signal, true);
      assert(result.result.case === "delete", "a Delete applied as another kind of command");
      return withHeader(result.result.value, header);
    },

    async txn(request, signal) {
      const command = create(CommandSchema, {
        clientId: request.clientId,
        sequence: request.sequence,
        op: { case: "txn", value: request },
      });
      const result = await mutate(command, "Txn", signal, true);
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

/** The response header of this node: the revision the store reports, this node's term and id. */
export function responseHeader(node: KvNode): (revision: number | bigint) => ResponseHeader {
  return (revision) =>
    create(ResponseHeaderSchema, { revision: BigInt(revision), raftTerm: BigInt(node.status().term), memberId: BigInt(node.id) });
}

/** Fills in the answering node's term and id; the store sets only the revision. */
export function withHeader<T extends { header?: ResponseHeader | undefined }>(
  response: T,
  header: (revision: bigint) => ResponseHeader,
): T {
  response.header = header(response.header?.revision ?? 0n);
  return response;
}

/** Whether a write may add data: a Put, or a Txn with a put in either branch. */
function addsData(command: Command): boolean {
  const op = command.op;
  if (op.case === "put") return true;
  if (op.case !== "txn") return false;
  return [...op.value.success, ...op.value.failure].some((r) => r.request.case === "put");
}
