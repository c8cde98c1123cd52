import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import {
  DeleteRequestSchema,
  GetRequestSchema,
  PipelineRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
  TxnRequestSchema,
  type DeleteResponse,
  type GetResponse,
  type KvService,
  type PipelineError,
  type PipelineRequest,
  type PipelineResponse,
  type PutResponse,
  type RangeResponse,
  type TxnResponse,
} from "../../../gen/raftkv/v1/kv_pb.js";
import { Fifo } from "../../lib/fifo.js";
import { errorReason, leaderHeader, leaderIdHeader, reasonContract, reasonHeader } from "../wire-contract.js";

/**
 * Many requests on one Pipeline stream to one node (kv.proto): no call per request, answers as each
 * completes. For bulk work with many requests in flight. Unlike the client's own calls a pipeline does
 * not retry or follow the leader: a failed request rejects with a PipelineCallError that says whether a
 * write may have applied; send writes to the leader (RaftkvClient.endpoint once a call has found it).
 */
export interface KvPipeline {
  /** The node this pipeline talks to. */
  readonly endpoint: string;
  put(request: MessageInitShape<typeof PutRequestSchema>): Promise<PutResponse>;
  delete(request: MessageInitShape<typeof DeleteRequestSchema>): Promise<DeleteResponse>;
  txn(request: MessageInitShape<typeof TxnRequestSchema>): Promise<TxnResponse>;
  get(request: MessageInitShape<typeof GetRequestSchema>): Promise<GetResponse>;
  range(request: MessageInitShape<typeof RangeRequestSchema>): Promise<RangeResponse>;
  /** Ends the stream once every request sent has its answer. */
  close(): Promise<void>;
  /** The stream broke or was closed: every later request fails at once (open a new pipeline). */
  readonly ended: boolean;
}

/** Opens the stream a pipeline runs on (KvService.Pipeline, or the peer port's RaftService.Forward). */
export type OpenPipelineStream = (
  requests: AsyncIterable<PipelineRequest>,
  options: { signal: AbortSignal },
) => AsyncIterable<PipelineResponse>;

/** One failed request of a pipeline. `outcomeUnknown`: a write that may or may not have applied. */
export class PipelineCallError extends Error {
  override readonly name = "PipelineCallError";
  constructor(
    readonly error: ConnectError,
    readonly outcomeUnknown: boolean,
  ) {
    super(error.message, { cause: error });
  }
}

/** Requests a pipeline keeps in flight; a request beyond it waits for an answer (the queue is bounded). */
export const pipelineClientInflightMax = 1_024;

interface Pending {
  readonly mutation: boolean;
  resolve(response: PipelineResponse["response"]): void;
  reject(error: PipelineCallError): void;
}

export function openPipeline(endpoint: string, kv: Client<typeof KvService>, inflightMax = pipelineClientInflightMax): KvPipeline {
  return openStreamPipeline(endpoint, (requests, options) => kv.pipeline(requests, options), inflightMax);
}

export function openStreamPipeline(endpoint: string, open: OpenPipelineStream, inflightMax = pipelineClientInflightMax): KvPipeline {
  const pending = new Map<bigint, Pending>();
  // Both bounded: the outbox by inflightMax (a request is queued only once it has a slot), the waiters
  // by the caller's own concurrency (each is one of its pending calls).
  const outbox = new Fifo<PipelineRequest>();
  let nextId = 1n;
  let closing = false;
  let failed: ConnectError | undefined;
  let wakeWriter: (() => void) | undefined;
  const slotWaiters = new Fifo<() => void>();

  async function* requests(): AsyncGenerator<PipelineRequest> {
    for (;;) {
      const next = outbox.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (closing || failed !== undefined) return;
      await new Promise<void>((resolve) => (wakeWriter = resolve));
      wakeWriter = undefined;
    }
  }

  const abort = new AbortController();
  const done = (async () => {
    try {
      for await (const answer of open(requests(), { signal: abort.signal })) {
        const waiting = pending.get(answer.id);
        if (waiting === undefined) continue;
        pending.delete(answer.id);
        slotWaiters.shift()?.();
        if (answer.response.case === "error") waiting.reject(callError(answer.response.value, waiting.mutation));
        else waiting.resolve(answer.response);
      }
      if (pending.size > 0) throw new ConnectError("the pipeline stream ended before every request was answered", Code.Unavailable);
    } catch (error) {
      failed = ConnectError.from(error);
      // The stream broke: a write sent on it may have applied, a read has no answer.
      for (const waiting of pending.values()) waiting.reject(new PipelineCallError(failed, waiting.mutation));
      pending.clear();
      for (const wake of slotWaiters.drain()) wake();
    }
  })();

  async function send<T>(mutation: boolean, request: PipelineRequest["request"], kind: string): Promise<T> {
    while (pending.size >= inflightMax && failed === undefined) await new Promise<void>((resolve) => slotWaiters.push(resolve));
    if (failed !== undefined) throw new PipelineCallError(failed, false);
    if (closing) throw new PipelineCallError(new ConnectError("the pipeline is closed", Code.Canceled), false);
    const id = nextId++;
    const answer = new Promise<PipelineResponse["response"]>((resolve, reject) => pending.set(id, { mutation, resolve, reject }));
    outbox.push(create(PipelineRequestSchema, { id, request }));
    wakeWriter?.();
    const response = await answer;
    if (response.case !== kind)
      throw new PipelineCallError(new ConnectError(`the server answered a ${kind} with ${String(response.case)}`, Code.Internal), mutation);
    return response.value as T;
  }

  return {
    endpoint,
    get ended() {
      return closing || failed !== undefined;
    },
    put: (r) => send(true, { case: "put", value: create(PutRequestSchema, r) }, "put"),
    delete: (r) => send(true, { case: "delete", value: create(DeleteRequestSchema, r) }, "delete"),
    txn: (r) => send(true, { case: "txn", value: create(TxnRequestSchema, r) }, "txn"),
    get: (r) => send(false, { case: "get", value: create(GetRequestSchema, r) }, "get"),
    range: (r) => send(false, { case: "range", value: create(RangeRequestSchema, r) }, "range"),
    async close() {
      closing = true;
      wakeWriter?.();
      await done;
      abort.abort();
    },
  };
}

function callError(e: PipelineError, mutation: boolean): PipelineCallError {
  const metadata: Record<string, string> = {};
  if (e.reason !== "") metadata[reasonHeader] = e.reason;
  if (e.leader !== "") metadata[leaderHeader] = e.leader;
  if (e.leaderId !== 0n) metadata[leaderIdHeader] = String(e.leaderId);
  const code = Code[e.code] === undefined ? Code.Unknown : (e.code as Code);
  const error = new ConnectError(e.message, code, metadata);
  const reason = errorReason(error);
  return new PipelineCallError(error, mutation && (reason === undefined || !reasonContract[reason].notApplied));
}
