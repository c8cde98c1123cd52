import { connect as connectH2, type ClientHttp2Session, type IncomingHttpHeaders } from "node:http2";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetRequestSchema, KvService, PutRequestSchema } from "../../gen/raftkv/v1/kv_pb.js";
import { NotLeaderError } from "../../src/driver/errors.js";
import { leaderHeader, reasonHeader } from "../../src/rpc/index.js";
import { bytes, text } from "../rpc/harness.js";
import { startServer, type TestServer } from "./harness.js";

/**
 * The gRPC fast path answers unary KvService calls in plain gRPC itself; these pin that it is taken
 * when it should be, left alone otherwise, and that it speaks the protocol as the Connect routes do.
 */
let server: TestServer;
const taken: string[] = [];

beforeAll(async () => {
  server = await startServer({
    requestBytesMax: 4 * 1024,
    wrapFastPath: (inner) => ({
      handle(request, response) {
        const served = inner.handle(request, response);
        if (served) taken.push(String(request.headers[":path"]));
        return served;
      },
    }),
  });
});

afterAll(async () => {
  await server.close();
});

/** One raw gRPC call: the response headers, the body and the trailers, as a client sees them on the wire. */
async function rawCall(
  path: string,
  body: Buffer,
  headers: Record<string, string> = {},
): Promise<{ headers: IncomingHttpHeaders; body: Buffer; trailers: IncomingHttpHeaders }> {
  const session: ClientHttp2Session = connectH2(server.url);
  try {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", "te": "trailers", ...headers });
    const chunks: Buffer[] = [];
    let responseHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    stream.on("response", (h) => (responseHeaders = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.end(body);
    await new Promise((resolve) => stream.on("close", resolve));
    return { headers: responseHeaders, body: Buffer.concat(chunks), trailers };
  } finally {
    session.close();
  }
}

async function errorOf(call: Promise<unknown>): Promise<ConnectError | undefined> {
  return call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
}

function envelope(message: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + message.byteLength);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

describe("gRPC fast path", () => {
  it("answers unary gRPC KvService calls itself, and leaves Connect, streams and compressed calls to the Connect routes", async () => {
    taken.length = 0;
    const grpc = createClient(KvService, createGrpcTransport({ baseUrl: server.url }));
    await grpc.put({ key: bytes("fast"), value: bytes("1") });
    expect(text((await grpc.get({ key: bytes("fast") })).kv?.value)).toBe("1");
    expect((await grpc.range({ key: bytes("fa"), prefix: true })).kvs).toHaveLength(1);
    await grpc.txn({ success: [{ request: { case: "put", value: { key: bytes("fast"), value: bytes("2") } } }] });
    await grpc.delete({ key: bytes("fast") });
    expect(taken).toEqual(["Put", "Get", "Range", "Txn", "Delete"].map((m) => `/raftkv.v1.KvService/${m}`));

    taken.length = 0;
    const connect = createClient(KvService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
    await connect.put({ key: bytes("slow"), value: bytes("1") });
    const gzip = createClient(
      KvService,
      createGrpcTransport({ baseUrl: server.url, sendCompression: compressionGzip, compressMinBytes: 1 }),
    );
    await gzip.put({ key: bytes("zipped"), value: bytes("1".repeat(100)) });
    expect(text((await grpc.get({ key: bytes("zipped") })).kv?.value)).toBe("1".repeat(100));
    // Only the uncompressed gRPC Get above took the fast path.
    expect(taken).toEqual(["/raftkv.v1.KvService/Get"]);
  });

  it("answers an error with its code, message and metadata in a trailers-only response", async () => {
    server.node.fail = (kind) => (kind === "mutate" ? new NotLeaderError(2, "http://127.0.0.1:22379") : undefined);
    try {
      const grpc = createClient(KvService, createGrpcTransport({ baseUrl: server.url }));
      const error = await errorOf(grpc.put({ key: bytes("k"), value: bytes("v") }));
      expect(error?.code).toBe(Code.Unavailable);
      expect(error?.metadata.get(leaderHeader)).toBe("http://127.0.0.1:22379");
      expect(error?.metadata.get(reasonHeader)).toBe("not-leader");
      expect(error?.rawMessage).toMatch(/not the leader; send the request to the leader at http:\/\/127.0.0.1:22379/);
    } finally {
      server.node.fail = undefined;
    }
  });

  it("refuses an oversized message with ResourceExhausted, and a malformed one with InvalidArgument", async () => {
    const grpc = createClient(KvService, createGrpcTransport({ baseUrl: server.url }));
    const big = await errorOf(grpc.put({ key: bytes("k"), value: new Uint8Array(8 * 1024) }));
    expect(big?.code).toBe(Code.ResourceExhausted);

    const garbage = await rawCall("/raftkv.v1.KvService/Put", envelope(Uint8Array.from([0xff, 0xff, 0xff])));
    expect(garbage.headers["grpc-status"]).toBe(String(Code.InvalidArgument));
    expect(decodeURIComponent(String(garbage.headers["grpc-message"]))).toMatch(/does not parse/);

    const twoMessages = await rawCall(
      "/raftkv.v1.KvService/Get",
      Buffer.concat([envelope(new Uint8Array(0)), envelope(new Uint8Array(0))]),
    );
    expect(twoMessages.headers["grpc-status"]).toBe(String(Code.InvalidArgument));
    const flagged = await rawCall("/raftkv.v1.KvService/Get", envelope(new Uint8Array(0), 1));
    expect(flagged.headers["grpc-status"]).toBe(String(Code.InvalidArgument));
  });

  it("honours grpc-timeout: a write still waiting at its deadline answers DeadlineExceeded", async () => {
    server.node.hold = true;
    try {
      const started = Date.now();
      const put = toBinary(PutRequestSchema, create(PutRequestSchema, { key: bytes("held"), value: bytes("v") }));
      const call = await rawCall("/raftkv.v1.KvService/Put", envelope(put), { "grpc-timeout": "200m" });
      expect(call.headers["grpc-status"]).toBe(String(Code.DeadlineExceeded));
      expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    } finally {
      server.node.hold = false;
      for (const release of server.node.held.splice(0)) release();
    }
  });

  it("answers a success with the message and grpc-status 0 in the trailers", async () => {
    const get = toBinary(GetRequestSchema, create(GetRequestSchema, { key: bytes("absent") }));
    const call = await rawCall("/raftkv.v1.KvService/Get", envelope(get));
    expect(call.headers[":status"]).toBe(200);
    expect(call.headers["content-type"]).toBe("application/grpc+proto");
    expect(call.trailers["grpc-status"]).toBe("0");
    expect(call.body.readUInt32BE(1)).toBe(call.body.byteLength - 5);
  });
});
