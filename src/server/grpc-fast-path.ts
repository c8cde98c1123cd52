import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type http2 from "node:http2";
import {
  DeleteRequestSchema,
  DeleteResponseSchema,
  GetRequestSchema,
  GetResponseSchema,
  KvService,
  PutRequestSchema,
  PutResponseSchema,
  RangeRequestSchema,
  RangeResponseSchema,
  TxnRequestSchema,
  TxnResponseSchema,
} from "../../gen/raftkv/v1/kv_pb.js";
import type { RaftkvMetrics } from "../metrics/index.js";
import type { KvUnaryHandlers } from "../rpc/index.js";

/**
 * The gRPC fast path of the client port: unary KvService calls (Put, Delete, Txn, Get, Range) in plain
 * gRPC over HTTP/2 are answered straight from the HTTP/2 stream, without Fastify routing and the Connect
 * handler. Everything else (other methods, Connect, gRPC-web, HTTP/1.1, compressed messages, JSON) goes
 * the ordinary way; the two share the handlers (createKvUnaryHandlers) and so validation, proposals,
 * read barriers and the one error mapping.
 *
 * Why: profiles of a leader under 64 writers (node --cpu-prof) showed Connect's per-call machinery as
 * the largest cost of a request: three AbortControllers aborted per call (each building a
 * DOMException with a stack), async-iterable pipelines for a single message, header object
 * conversions. A unary gRPC call needs none of it: one 5-byte-prefixed message in, one out, and a status
 * in the trailers (the gRPC over HTTP/2 protocol, PROTOCOL-HTTP2.md of grpc/grpc).
 *
 * What it keeps of the protocol exactly as Connect does: `content-type: application/grpc` or
 * `application/grpc+proto` in, `application/grpc+proto` out; `grpc-timeout` as the deadline (the
 * server's default when absent); `grpc-status` and `grpc-message` (percent-encoded) in the trailers,
 * with the error's metadata (raftkv-error, raftkv-leader, ...) beside them; a request larger than
 * requestBytesMax answers ResourceExhausted; a message that is not one well-formed uncompressed
 * envelope answers InvalidArgument (Connect answers Internal for a protobuf that does not parse).
 */
export interface GrpcFastPath {
  /** Serves `request` when it is a fast-path call and returns true; false leaves it to Fastify. */
  handle(request: http2.Http2ServerRequest, response: http2.Http2ServerResponse): boolean;
}

export interface GrpcFastPathOptions {
  readonly handlers: KvUnaryHandlers;
  readonly metrics: Pick<RaftkvMetrics, "rpc">;
  /** The largest request message, as for the Connect routes. */
  readonly requestBytesMax: number;
  /** The deadline of a call without grpc-timeout. */
  readonly requestTimeoutMs: number;
}

interface Method {
  readonly name: string;
  serve(body: Uint8Array, signal: AbortSignal): Promise<Uint8Array>;
}

/** The 5-byte prefix of a gRPC message: a compressed flag and a big-endian length. */
const envelopeBytes = 5;
const grpcContentTypes: ReadonlySet<string> = new Set(["application/grpc", "application/grpc+proto"]);
const responseContentType = "application/grpc+proto";
/** grpc-timeout units (PROTOCOL-HTTP2.md) in milliseconds. */
const timeoutUnitMs: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };
/** The longest deadline honoured, as Connect's default maxTimeoutMs: beyond it the default applies. */
const timeoutMsMax = 2 ** 31 - 1;

export function createGrpcFastPath(options: GrpcFastPathOptions): GrpcFastPath {
  const methods = new Map<string, Method>();
  function add<I extends DescMessage, O extends DescMessage>(
    name: string,
    input: I,
    output: O,
    call: (request: MessageShape<I>, signal: AbortSignal) => Promise<MessageShape<O>>,
  ): void {
    methods.set(`/${KvService.typeName}/${name}`, {
      name,
      async serve(body, signal) {
        let request: MessageShape<I>;
        try {
          request = fromBinary(input, body);
        } catch (error) {
          throw new ConnectError(`malformed request: the ${input.typeName} message does not parse: ${String(error)}`, Code.InvalidArgument);
        }
        return toBinary(output, await call(request, signal));
      },
    });
  }
  const h = options.handlers;
  add("Put", PutRequestSchema, PutResponseSchema, (r, s) => h.put(r, s));
  add("Delete", DeleteRequestSchema, DeleteResponseSchema, (r, s) => h.delete(r, s));
  add("Txn", TxnRequestSchema, TxnResponseSchema, (r, s) => h.txn(r, s));
  add("Get", GetRequestSchema, GetResponseSchema, (r, s) => h.get(r, s));
  add("Range", RangeRequestSchema, RangeResponseSchema, (r, s) => h.range(r, s));

  return {
    handle(request, response) {
      const headers = request.headers;
      const method = methods.get(headers[":path"] ?? "");
      if (method === undefined || headers[":method"] !== "POST") return false;
      if (!grpcContentTypes.has(String(headers["content-type"]).toLowerCase())) return false;
      const encoding = headers["grpc-encoding"];
      if (encoding !== undefined && encoding !== "identity") return false;
      const timeoutMs = parseTimeoutMs(headers["grpc-timeout"]);
      if (timeoutMs === "invalid") return false;
      serveCall(request.stream, response, method, timeoutMs ?? options.requestTimeoutMs, options);
      return true;
    },
  };
}

/** The grpc-timeout header in milliseconds, undefined when absent, "invalid" when malformed (Connect answers those). */
function parseTimeoutMs(value: string | string[] | undefined): number | undefined | "invalid" {
  if (value === undefined) return undefined;
  if (typeof value !== "string") return "invalid";
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  const unit = match?.[2] === undefined ? undefined : timeoutUnitMs[match[2]];
  if (match?.[1] === undefined || unit === undefined) return "invalid";
  const ms = Number(match[1]) * unit;
  return ms > timeoutMsMax ? undefined : ms;
}

/** Why a call's signal aborted: its deadline, or the client going away (the stream closed first). */
const deadlineReason = new ConnectError("the request's deadline passed", Code.DeadlineExceeded);
const canceledReason = new ConnectError("the client canceled the request", Code.Canceled);

/**
 * One call. The request body is read from the raw stream; a success answers through Node's
 * compatibility response, which owns the stream's trailers (it sends them when the stream wants them);
 * a failure is a trailers-only answer on the raw stream.
 */
function serveCall(
  stream: http2.ServerHttp2Stream,
  response: http2.Http2ServerResponse,
  method: Method,
  timeoutMs: number,
  options: GrpcFastPathOptions,
): void {
  const started = performance.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(deadlineReason), timeoutMs);
  let finished = false;
  const finish = (code: Code | undefined): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    options.metrics.rpc(method.name, code === undefined ? "ok" : codeToString(code), performance.now() - started);
  };
  // A stream that closes before we answered: the client is gone (or reset the call). Nothing can be
  // sent any more; the handler sees the abort (a write's outcome is then unknown, as with Connect).
  stream.once("close", () => {
    if (finished) return;
    controller.abort(canceledReason);
    finish(Code.Canceled);
  });
  stream.on("error", () => undefined);

  const chunks: Buffer[] = [];
  let bytes = 0;
  const limit = options.requestBytesMax + envelopeBytes;
  stream.on("data", (chunk: Buffer) => {
    if (finished || bytes > limit) return;
    bytes += chunk.byteLength;
    if (bytes > limit) {
      fail(stream, new ConnectError(`message larger than ${options.requestBytesMax} bytes`, Code.ResourceExhausted), finish);
      return;
    }
    chunks.push(chunk);
  });
  stream.once("end", () => {
    if (finished || bytes > limit) return;
    const body = unwrap(chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks, bytes));
    if (body instanceof ConnectError) {
      fail(stream, body, finish);
      return;
    }
    method.serve(body, controller.signal).then(
      (message) => succeed(stream, response, message, finish),
      (error: unknown) => fail(stream, error instanceof ConnectError ? error : new ConnectError("internal error", Code.Internal), finish),
    );
  });
}

/** The one message of a unary call's body, or the error to answer. */
function unwrap(body: Buffer): Uint8Array | ConnectError {
  if (body.byteLength < envelopeBytes) {
    return new ConnectError("malformed request: a unary gRPC call carries exactly one message", Code.InvalidArgument);
  }
  const flags = body.readUInt8(0);
  const length = body.readUInt32BE(1);
  if (flags !== 0) return new ConnectError("malformed request: compressed message without a grpc-encoding", Code.InvalidArgument);
  if (length !== body.byteLength - envelopeBytes) {
    return new ConnectError("malformed request: a unary gRPC call carries exactly one message", Code.InvalidArgument);
  }
  return body.subarray(envelopeBytes);
}

function succeed(
  stream: http2.ServerHttp2Stream,
  response: http2.Http2ServerResponse,
  message: Uint8Array,
  finish: (code: Code | undefined) => void,
): void {
  if (stream.destroyed || stream.closed) return;
  finish(undefined);
  const out = Buffer.allocUnsafe(envelopeBytes + message.byteLength);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, envelopeBytes);
  response.writeHead(200, { "content-type": responseContentType });
  response.addTrailers({ "grpc-status": "0" });
  response.end(out);
}

/** A trailers-only response (headers that end the stream), as gRPC allows for a call that failed. */
function fail(stream: http2.ServerHttp2Stream, error: ConnectError, finish: (code: Code | undefined) => void): void {
  if (stream.destroyed || stream.closed) return;
  finish(error.code);
  const headers: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": responseContentType };
  error.metadata.forEach((value, key) => {
    headers[key] = value;
  });
  headers["grpc-status"] = String(error.code);
  headers["grpc-message"] = encodeURIComponent(error.rawMessage);
  stream.respond(headers, { endStream: true });
  // The client may still be sending (an oversized body): stop reading it.
  stream.resume();
}
