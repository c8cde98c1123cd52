import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { PipelineErrorSchema, PipelineResponseSchema, type PipelineRequest, type PipelineResponse } from "../../gen/raftkv/v1/kv_pb.js";
import { leaderHeader, leaderIdHeader, reasonHeader } from "./wire-contract.js";
import { Fifo } from "../lib/fifo.js";
import type { KvUnaryHandlers } from "./kv-unary.js";

/**
 * Requests of one Pipeline stream being served at once. Past it the server stops reading the stream
 * (HTTP/2 flow control then holds the client back) until answers have gone out, so one stream pins at
 * most this many requests and answers.
 */
export const pipelineInflightMax = 1_024;

export interface PipelineOptions {
  readonly handlers: KvUnaryHandlers;
  /** The deadline of each request. */
  readonly requestTimeoutMs: number;
  /** Aborted when the stream ends: every request still running is cancelled. */
  readonly signal: AbortSignal;
  readonly inflightMax?: number;
}

/** Why a request's own signal aborted: its deadline. The stream's end aborts with the stream's reason. */
const deadlineReason = new ConnectError("the request's deadline passed", Code.DeadlineExceeded);
const streamEndedReason = new ConnectError("the pipeline stream ended", Code.Canceled);

/**
 * Serves a Pipeline stream (kv.proto): every request runs through the same unary handlers as a call of
 * its own would (validation, proposal or read barrier, the one error mapping), concurrently, and its
 * answer is yielded as soon as it completes. The generator ends once the client closed its side and
 * every request has been answered.
 */
export async function* servePipeline(requests: AsyncIterable<PipelineRequest>, options: PipelineOptions): AsyncGenerator<PipelineResponse> {
  const inflightMax = options.inflightMax ?? pipelineInflightMax;
  // At most inflightMax answers wait here: a request is taken only when fewer than that are running.
  const ready = new Fifo<PipelineResponse>();
  let running = 0;
  let readerDone = false;
  let readerError: unknown;
  /** Wakes the generator (an answer is ready, or the reader ended) or the reader (a slot is free). */
  let wakeWriter: (() => void) | undefined;
  let wakeReader: (() => void) | undefined;

  // One listener on the stream's signal for all requests (not one each: a signal warns past ten).
  const live = new Set<AbortController>();
  const onStreamEnd = (): void => {
    for (const controller of live) controller.abort(options.signal.reason);
  };
  options.signal.addEventListener("abort", onStreamEnd, { once: true });

  const settle = (answer: PipelineResponse): void => {
    running--;
    ready.push(answer);
    wakeWriter?.();
    wakeReader?.();
  };

  const reader = (async () => {
    try {
      for await (const request of requests) {
        while (running >= inflightMax && !options.signal.aborted) await new Promise<void>((resolve) => (wakeReader = resolve));
        wakeReader = undefined;
        if (options.signal.aborted) return;
        running++;
        const controller = new AbortController();
        live.add(controller);
        void serveOne(request, options, controller).then((answer) => {
          live.delete(controller);
          settle(answer);
        });
      }
    } catch (error) {
      readerError = error;
    } finally {
      readerDone = true;
      wakeWriter?.();
    }
  })();

  try {
    for (;;) {
      const answer = ready.shift();
      if (answer !== undefined) {
        yield answer;
        continue;
      }
      if (readerDone && running === 0) break;
      await new Promise<void>((resolve) => (wakeWriter = resolve));
      wakeWriter = undefined;
    }
    await reader;
    if (readerError !== undefined) throw readerError;
  } finally {
    options.signal.removeEventListener("abort", onStreamEnd);
    // Ended early (the client went away): nobody will read the answers of what still runs.
    for (const controller of live) controller.abort(streamEndedReason);
    wakeReader?.();
  }
}

/** One request: its answer, or the error a unary call of it would have answered, as an answer. */
async function serveOne(request: PipelineRequest, options: PipelineOptions, controller: AbortController): Promise<PipelineResponse> {
  const timer = setTimeout(() => controller.abort(deadlineReason), options.requestTimeoutMs);
  const h = options.handlers;
  const signal = controller.signal;
  try {
    const r = request.request;
    switch (r.case) {
      case "put":
        return create(PipelineResponseSchema, { id: request.id, response: { case: "put", value: await h.put(r.value, signal) } });
      case "get":
        return create(PipelineResponseSchema, { id: request.id, response: { case: "get", value: await h.get(r.value, signal) } });
      case "delete":
        return create(PipelineResponseSchema, { id: request.id, response: { case: "delete", value: await h.delete(r.value, signal) } });
      case "range":
        return create(PipelineResponseSchema, { id: request.id, response: { case: "range", value: await h.range(r.value, signal) } });
      case "txn":
        return create(PipelineResponseSchema, { id: request.id, response: { case: "txn", value: await h.txn(r.value, signal) } });
      case undefined:
        throw new ConnectError(
          "malformed request: a pipeline request holds no request (put, get, delete, range or txn)",
          Code.InvalidArgument,
          {
            [reasonHeader]: "invalid-argument",
          },
        );
    }
  } catch (error) {
    const e = error instanceof ConnectError ? error : new ConnectError("internal error", Code.Internal, { [reasonHeader]: "internal" });
    return create(PipelineResponseSchema, {
      id: request.id,
      response: {
        case: "error",
        value: create(PipelineErrorSchema, {
          code: e.code,
          message: e.rawMessage,
          reason: e.metadata.get(reasonHeader) ?? "",
          leader: e.metadata.get(leaderHeader) ?? "",
          leaderId: BigInt(e.metadata.get(leaderIdHeader) ?? "0"),
        }),
      },
    });
  } finally {
    clearTimeout(timer);
  }
}
