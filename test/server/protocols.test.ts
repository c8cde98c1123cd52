import { execFile } from "node:child_process";
import { connect as connectH2 } from "node:http2";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KvService } from "../../gen/raftkv/v1/kv_pb.js";
import { NotLeaderError } from "../../src/driver/errors.js";
import { leaderHeader } from "../../src/rpc/index.js";
import { bytes, text } from "../rpc/harness.js";
import { startServer, type TestServer } from "./harness.js";

const repo = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);

describe("client port: every protocol on one cleartext port", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ requestBytesMax: 2 * 1024 * 1024 });
  });
  afterAll(async () => {
    await server.close();
  });

  const transports: [string, () => Transport][] = [
    ["gRPC over HTTP/2 (h2c)", () => createGrpcTransport({ baseUrl: server.url })],
    ["Connect over HTTP/1.1", () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })],
    ["Connect over HTTP/2", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" })],
    ["gRPC-web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" })],
  ];

  it.each(transports)("%s: put, get, and a server stream", async (name, transport) => {
    const kv = createClient(KvService, transport());
    const key = bytes(`proto/${name}`);
    const put = await kv.put({ key, value: bytes("v") });
    expect(put.header?.memberId).toBe(1n);
    expect(text((await kv.get({ key })).kv?.value)).toBe("v");
    for await (const message of kv.watch({ key, startRevision: put.header?.revision ?? 0n })) {
      expect(message.kind.case).toBe("events");
      if (message.kind.case === "events" && message.kind.value.events.length > 0) {
        expect(text(message.kind.value.events[0]?.kv?.key)).toBe(`proto/${name}`);
        break;
      }
    }
  });

  it("takes a 1 MiB value over HTTP/1.1, whose body arrives in many chunks after the sniffed ones", async () => {
    const kv = createClient(KvService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const value = new Uint8Array(1024 * 1024).map((_, i) => i % 251);
    await kv.put({ key: bytes("big"), value });
    const got = await kv.get({ key: bytes("big") });
    expect(Buffer.from(got.kv?.value ?? []).equals(Buffer.from(value))).toBe(true);
  });

  it("refuses a request above the request size limit with ResourceExhausted", async () => {
    const small = await startServer({ requestBytesMax: 4 * 1024 });
    try {
      const kv = createClient(KvService, createGrpcTransport({ baseUrl: small.url }));
      const error = await kv.put({ key: bytes("k"), value: new Uint8Array(8 * 1024) }).catch((e: unknown) => ConnectError.from(e));
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.ResourceExhausted);
    } finally {
      await small.close();
    }
  });

  it("serves @grpc/grpc-js with the proto files, leader hint in trailers", async () => {
    const definition = protoLoader.loadSync("raftkv/v1/kv.proto", { includeDirs: [join(repo, "proto")], longs: String, defaults: true });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      raftkv: {
        v1: {
          KvService: new (
            address: string,
            credentials: grpc.ChannelCredentials,
          ) => grpc.Client & Record<string, grpc.requestCallback<unknown> & ((...args: unknown[]) => unknown)>;
        };
      };
    };
    const client = new loaded.raftkv.v1.KvService(server.url.replace("http://", ""), grpc.credentials.createInsecure());
    const call = <T>(method: string, request: object): Promise<T> =>
      new Promise((resolve, reject) => {
        (client[method] as (r: object, cb: (e: grpc.ServiceError | null, v: T) => void) => void).call(client, request, (error, value) =>
          error === null ? resolve(value) : reject(error),
        );
      });
    try {
      const put = await call<{ header: { revision: string } }>("Put", { key: Buffer.from("grpc-js"), value: Buffer.from("yes") });
      expect(Number(put.header.revision)).toBeGreaterThan(0);
      const got = await call<{ kv: { value: Buffer } }>("Get", { key: Buffer.from("grpc-js") });
      expect(got.kv.value.toString()).toBe("yes");

      server.node.fail = (kind) => (kind === "mutate" ? new NotLeaderError(2, "http://127.0.0.1:22379") : undefined);
      const error = await call("Put", { key: Buffer.from("k"), value: Buffer.from("v") }).catch((e: unknown) => e as grpc.ServiceError);
      expect((error as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
      expect((error as grpc.ServiceError).metadata.get(leaderHeader)).toEqual(["http://127.0.0.1:22379"]);
    } finally {
      server.node.fail = undefined;
      client.close();
    }
  });

  it("serves buf curl over gRPC with HTTP/2 prior knowledge", async () => {
    const { stdout } = await run(
      join(repo, "node_modules", ".bin", "buf"),
      [
        "curl",
        "--schema",
        join(repo, "proto"),
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--data",
        JSON.stringify({ key: Buffer.from("buf").toString("base64"), value: Buffer.from("curl").toString("base64") }),
        `${server.url}/raftkv.v1.KvService/Put`,
      ],
      { cwd: repo, timeout: 30_000 },
    );
    const response = JSON.parse(stdout) as { header: { revision: string; memberId: string } };
    expect(response.header.memberId).toBe("1");
    const kv = createClient(KvService, createGrpcTransport({ baseUrl: server.url }));
    expect(text((await kv.get({ key: bytes("buf") })).kv?.value)).toBe("curl");
  });

  it("answers probes and Prometheus over HTTP/1.1 on the same port", async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    server.node.ready = false;
    const notReady = await fetch(`${server.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ status: "not ready", reason: "no leader known" });
    server.node.ready = true;
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.headers.get("content-type")).toContain("text/plain");
    expect(await metrics.text()).toMatch(/raftkv_rpc_requests_total\{method="Put",code="ok"\} \d+/);
  });

  it("limits Watch streams per connection, not per node", async () => {
    const sessionManager = new Http2SessionManager(server.url);
    const one = createClient(KvService, createGrpcTransport({ baseUrl: server.url, sessionManager }));
    const controller = new AbortController();
    const open: AsyncIterator<unknown>[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const iterator = one.watch({ key: bytes(`w${i}`) }, { signal: controller.signal })[Symbol.asyncIterator]();
        await iterator.next();
        open.push(iterator);
      }
      const sixth = one.watch({ key: bytes("w5") });
      const refused = await sixth[Symbol.asyncIterator]()
        .next()
        .catch((e: unknown) => ConnectError.from(e));
      expect((refused as ConnectError).code).toBe(Code.ResourceExhausted);
      // Another connection has its own budget.
      const other = createClient(KvService, createGrpcTransport({ baseUrl: server.url }));
      const otherWatch = other.watch({ key: bytes("w6") }, { signal: controller.signal });
      const first = await otherWatch[Symbol.asyncIterator]().next();
      expect(first.done).toBe(false);
    } finally {
      controller.abort();
      sessionManager.abort();
    }
  });
});

describe("client listener lifecycle", () => {
  it("drains an in-flight request on close, then refuses connections", async () => {
    const server = await startServer();
    server.node.hold = true;
    const kv = createClient(KvService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const inFlight = kv.put({ key: bytes("k"), value: bytes("v") });
    while (server.node.held.length === 0) await new Promise((r) => setTimeout(r, 5));
    const closed = server.listener.close(2_000);
    server.node.held.shift()?.();
    expect((await inFlight).header?.revision).toBe(1n);
    await closed;
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
    await server.app.close();
  });

  it("drops a connection that never sends a byte", async () => {
    const server = await startServer({ listener: { firstByteTimeoutMs: 50 } });
    try {
      const socket = netConnect(server.listener.port, "127.0.0.1");
      const started = Date.now();
      await new Promise((resolve) => socket.once("close", resolve));
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await server.close();
    }
  });

  it("closes an idle HTTP/2 connection gracefully", async () => {
    const server = await startServer({ listener: { idleTimeoutMs: 100 } });
    try {
      const session = connectH2(server.url);
      const goaway = new Promise((resolve) => session.once("goaway", resolve));
      await new Promise((resolve) => session.once("connect", resolve));
      await goaway;
      session.destroy();
    } finally {
      await server.close();
    }
  });
});
