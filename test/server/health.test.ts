import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import { ClusterService } from "../../gen/raftkv/v1/cluster_pb.js";
import { createMetrics } from "../../src/metrics/index.js";
import { buildApp, buildGrpcFastPath, listenClient, type AppOptions, type ClientListener } from "../../src/server/index.js";
import { createGrpcJsClient } from "../e2e/grpc-js-client.js";
import { FakeNode } from "../rpc/fake-node.js";

/**
 * The standard gRPC health service and the status extras (version, data size, alarms) on a real client
 * listener over a FakeNode whose readiness the test switches, called by @grpc/grpc-js as Kubernetes'
 * grpc probe and load balancers would.
 */

const node = new FakeNode();
const shutdown = new AbortController();
const dataDir = mkdtempSync(join(tmpdir(), "raftkv-health-"));
let listener: ClientListener;
let close: () => Promise<void>;

beforeAll(async () => {
  mkdirSync(join(dataDir, "raft"));
  writeFileSync(join(dataDir, "raft", "segment"), Buffer.alloc(70_000));
  writeFileSync(join(dataDir, "member.json"), Buffer.alloc(1_000));
  const options: AppOptions = {
    node,
    store: node.store,
    metrics: createMetrics({ processMetrics: false }),
    logger: pino({ level: "silent" }),
    limits: { requestBytesMax: 64 * 1024, watchersPerConnectionMax: 4, requestTimeoutMs: 2_000 },
    corsOrigins: [],
    shutdown: shutdown.signal,
    dataDir,
  };
  const app = await buildApp(options);
  listener = await listenClient(app, { host: "127.0.0.1", port: 0 }, { grpcFastPath: buildGrpcFastPath(options) });
  close = async () => {
    await listener.close(500);
    await app.close();
  };
});

afterAll(async () => {
  shutdown.abort();
  await close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A unary gRPC call with raw bytes both ways, so the test sees the exact encoding on the wire. */
function callRaw(path: string, body: Uint8Array): Promise<Buffer> {
  const client = new grpc.Client(new URL(listener.url).host, grpc.credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (bytes: Uint8Array) => Buffer.from(bytes),
      (bytes: Buffer) => bytes,
      body,
      (error, response) => (error === null && response !== undefined ? resolve(response) : reject(error ?? new Error("no response"))),
    );
  }).finally(() => client.close());
}

/** The numeric gRPC status of a failed @grpc/grpc-js call. */
const statusCode = (error: unknown): unknown => (error as { code?: unknown } | undefined)?.code;

/** The protocol's encoding of HealthCheckResponse{status}: field 1, varint. Written out, not taken from our .proto. */
const wire = (status: number): Buffer => Buffer.from([0x08, status]);
/** HealthCheckRequest{service: "raftkv.v1.KvService"} encoded by hand: field 1, length-delimited. */
const kvServiceRequest = Buffer.concat([Buffer.from([0x0a, "raftkv.v1.KvService".length]), Buffer.from("raftkv.v1.KvService")]);

describe("grpc.health.v1.Health on the client port", () => {
  it("Check answers SERVING while the node is ready, NOT_SERVING when not, in the protocol's own bytes", async () => {
    node.ready = true;
    expect(await callRaw("/grpc.health.v1.Health/Check", new Uint8Array())).toEqual(wire(1));
    expect(await callRaw("/grpc.health.v1.Health/Check", kvServiceRequest)).toEqual(wire(1));
    node.ready = false;
    try {
      expect(await callRaw("/grpc.health.v1.Health/Check", new Uint8Array())).toEqual(wire(2));
    } finally {
      node.ready = true;
    }
  });

  it("Check answers NOT_FOUND for a service it does not know", async () => {
    const client = createGrpcJsClient(Health, listener.url);
    try {
      const error = await client.unary(Health.method.check, { service: "no.such.Service" }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(statusCode(error)).toBe(5); // NOT_FOUND
    } finally {
      client.close();
    }
  });

  it("Watch sends the current status, then each change, until the client cancels", async () => {
    node.ready = true;
    const client = createGrpcJsClient(Health, listener.url);
    const seen: ServingStatus[] = [];
    const stream: grpc.ClientReadableStream<HealthCheckResponse> = client.serverStream(Health.method.watch, {
      service: "raftkv.v1.KvService",
    });
    const ended = new Promise<unknown>((resolve) => {
      stream.on("error", resolve);
      stream.on("end", () => resolve(undefined));
    });
    const next = (count: number): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => {
          if (seen.length < count) return;
          stream.off("data", check);
          resolve();
        };
        stream.on("data", check);
        check();
      });
    stream.on("data", (response: HealthCheckResponse) => seen.push(response.status));
    try {
      await next(1);
      expect(seen).toEqual([ServingStatus.SERVING]);
      node.ready = false;
      await next(2);
      node.ready = true;
      await next(3);
      expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
      stream.cancel();
      expect(statusCode(await ended)).toBe(1); // CANCELLED, on the client's side
    } finally {
      node.ready = true;
      client.close();
    }
  });

  it("Watch of an unknown service says SERVICE_UNKNOWN and keeps the stream open", async () => {
    const client = createGrpcJsClient(Health, listener.url);
    const stream = client.serverStream(Health.method.watch, { service: "no.such.Service" });
    // Cancelling below ends the call with CANCELLED on this side, which is the expected end.
    stream.on("error", () => undefined);
    try {
      const first = await new Promise<HealthCheckResponse>((resolve) => stream.once("data", resolve));
      expect(first.status).toBe(ServingStatus.SERVICE_UNKNOWN);
      const endedEarly = await Promise.race([
        new Promise((resolve) => stream.once("end", () => resolve(true))),
        new Promise((resolve) => setTimeout(() => resolve(false), 1_500)),
      ]);
      expect(endedEarly).toBe(false);
    } finally {
      stream.cancel();
      client.close();
    }
  });
});

describe("/livez and Status extras", () => {
  it("/livez answers like /healthz", async () => {
    const livez = await fetch(`${listener.url}/livez`);
    expect(livez.status).toBe(200);
    expect(await livez.json()).toEqual({ status: "ok", reason: "ok" });
  });

  it("Status reports the package version, the data directory's size and the alarms", async () => {
    const sessionManager = new Http2SessionManager(listener.url);
    const cluster = createClient(ClusterService, createGrpcTransport({ baseUrl: listener.url, sessionManager }));
    try {
      const version = (JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "package.json"), "utf8")) as { version: string })
        .version;
      const ready = (await cluster.status({})).status;
      expect(ready?.version).toBe(version);
      expect(ready?.dataBytes).toBe(71_000n);
      expect(ready?.alarms).toEqual([]);
      node.ready = false;
      expect((await cluster.status({})).status?.alarms).toEqual(["no leader known"]);
    } finally {
      node.ready = true;
      sessionManager.abort();
    }
  });
});
