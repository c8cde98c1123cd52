import { afterEach, describe, expect, it } from "vitest";
import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { createMetrics } from "../../src/metrics/index.js";
import { buildApp } from "../../src/server/index.js";
import { FakeNode } from "../rpc/fake-node.js";

const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

async function app(corsOrigins: readonly string[] = [], node = new FakeNode()): Promise<FastifyInstance> {
  const built = await buildApp({
    node,
    store: node.store,
    metrics: createMetrics({ processMetrics: false }),
    logger: pino({ level: "silent" }),
    limits: { requestBytesMax: 64 * 1024, watchersPerConnectionMax: 4, requestTimeoutMs: 1_000 },
    corsOrigins,
    shutdown: new AbortController().signal,
  });
  apps.push(built);
  return built;
}

const putJson = { key: Buffer.from("k").toString("base64"), value: Buffer.from("v").toString("base64") };

describe("buildApp", () => {
  it("serves Connect JSON through inject, without listening", async () => {
    const server = await app();
    const response = await server.inject({
      method: "POST",
      url: "/raftkv.v1.KvService/Put",
      headers: { "content-type": "application/json" },
      payload: putJson,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ header: { revision: "1", raftTerm: "3", memberId: "1" } });
    expect(server.server.listening).toBe(false);
  });

  it("maps a bad request to InvalidArgument with an actionable message", async () => {
    const server = await app();
    const response = await server.inject({
      method: "POST",
      url: "/raftkv.v1.KvService/Put",
      headers: { "content-type": "application/json" },
      payload: { value: "dg==" },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      code: "invalid_argument",
      message: "invalid put.key: must not be empty (set prefix to select every key)",
    });
    expect(response.headers["raftkv-error"]).toBe("invalid-argument");
  });

  it("exports raftkv metrics, refreshed from the node at scrape time", async () => {
    const node = new FakeNode();
    node.term = 7;
    const server = await app([], node);
    await server.inject({
      method: "POST",
      url: "/raftkv.v1.KvService/Put",
      headers: { "content-type": "application/json" },
      payload: putJson,
    });
    await server.inject({ method: "POST", url: "/raftkv.v1.KvService/Put", headers: { "content-type": "application/json" }, payload: {} });
    const body = (await server.inject({ method: "GET", url: "/metrics" })).body;
    expect(body).toContain('raftkv_rpc_requests_total{method="Put",code="ok"} 1');
    expect(body).toContain('raftkv_rpc_requests_total{method="Put",code="invalid_argument"} 1');
    expect(body).toContain("raftkv_raft_term 7");
    expect(body).toContain('raftkv_raft_role{role="leader"} 1');
    expect(body).toContain('raftkv_raft_role{role="follower"} 0');
    expect(body).toContain("raftkv_raft_applied_index 1");
  });

  it("answers liveness and readiness from node.health()", async () => {
    const node = new FakeNode();
    const server = await app([], node);
    expect((await server.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    node.ready = false;
    const ready = await server.inject({ method: "GET", url: "/readyz" });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({ status: "not ready", reason: "no leader known" });
  });
});

describe("CORS", () => {
  const preflight = (origin: string) => ({
    method: "OPTIONS" as const,
    url: "/raftkv.v1.KvService/Put",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,connect-protocol-version" },
  });

  it("answers a preflight from an allowed origin with the Connect and gRPC-web headers", async () => {
    const server = await app(["https://app.example.com"]);
    const response = await server.inject(preflight("https://app.example.com"));
    expect(response.statusCode).toBe(204);
    expect(response.headers["access-control-allow-origin"]).toBe("https://app.example.com");
    expect(response.headers["access-control-allow-methods"]).toBe("POST, GET");
    for (const header of ["Content-Type", "Connect-Protocol-Version", "X-Grpc-Web", "Grpc-Timeout"]) {
      expect(String(response.headers["access-control-allow-headers"])).toContain(header);
    }
    expect(response.headers.vary).toBe("Origin");
  });

  it("lets a browser see grpc-status and the leader hint on responses", async () => {
    const server = await app(["https://app.example.com"]);
    const response = await server.inject({
      method: "POST",
      url: "/raftkv.v1.KvService/Put",
      headers: { "origin": "https://app.example.com", "content-type": "application/json" },
      payload: putJson,
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers["access-control-allow-origin"]).toBe("https://app.example.com");
    const exposed = String(response.headers["access-control-expose-headers"]);
    for (const header of ["Grpc-Status", "Grpc-Message", "raftkv-leader", "raftkv-error"]) expect(exposed).toContain(header);
  });

  it("grants nothing to other origins, and nothing at all when no origin is configured", async () => {
    const server = await app(["https://app.example.com"]);
    expect((await server.inject(preflight("https://evil.example.com"))).headers["access-control-allow-origin"]).toBeUndefined();
    const closed = await app([]);
    expect((await closed.inject(preflight("https://app.example.com"))).headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("allows any origin with *", async () => {
    const server = await app(["*"]);
    expect((await server.inject(preflight("http://localhost:5173"))).headers["access-control-allow-origin"]).toBe("*");
  });
});
