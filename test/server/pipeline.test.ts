import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NotLeaderError } from "../../src/driver/errors.js";
import { createRaftkvClient, PipelineCallError, type RaftkvClient } from "../../src/rpc/client/index.js";
import { bytes, text } from "../rpc/harness.js";
import { startServer, type TestServer } from "./harness.js";

/** KvService.Pipeline through the bundled client: many requests on one stream, answers as they complete. */
let server: TestServer;

/** The PipelineCallError a call failed with (a call that succeeds fails the test). */
async function failureOf(call: Promise<unknown>): Promise<PipelineCallError> {
  const outcome = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(outcome).toBeInstanceOf(PipelineCallError);
  return outcome as PipelineCallError;
}
let client: RaftkvClient;

beforeAll(async () => {
  server = await startServer();
  client = createRaftkvClient({ endpoints: [server.url] });
});

afterAll(async () => {
  client.close();
  await server.close();
});

describe("Pipeline", () => {
  it("carries a thousand writes and reads on one stream, each answered with its own response", async () => {
    const pipeline = client.pipeline();
    const puts = await Promise.all(Array.from({ length: 1_000 }, (_, i) => pipeline.put({ key: bytes(`p/${i}`), value: bytes(`v${i}`) })));
    expect(new Set(puts.map((p) => p.header?.revision)).size).toBe(1_000);
    const gets = await Promise.all(Array.from({ length: 1_000 }, (_, i) => pipeline.get({ key: bytes(`p/${i}`) })));
    expect(gets.map((g) => text(g.kv?.value))).toEqual(Array.from({ length: 1_000 }, (_, i) => `v${i}`));
    const range = await pipeline.range({ key: bytes("p/"), prefix: true, countOnly: true });
    expect(range.count).toBe(1_000n);
    await pipeline.close();
  });

  it("answers a failed request with its error and goes on with the others", async () => {
    const pipeline = client.pipeline();
    const invalid = await pipeline.put({ key: new Uint8Array(0), value: bytes("v") }).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(PipelineCallError);
    expect((invalid as PipelineCallError).error.code).toBe(Code.InvalidArgument);
    expect((invalid as PipelineCallError).outcomeUnknown).toBe(false);

    server.node.fail = (kind) => (kind === "mutate" ? new NotLeaderError(2, "http://127.0.0.1:22379") : undefined);
    try {
      const redirected = await failureOf(pipeline.put({ key: bytes("k"), value: bytes("v") }));
      expect(redirected.error.code).toBe(Code.Unavailable);
      expect(redirected.error.metadata.get("raftkv-leader")).toBe("http://127.0.0.1:22379");
      expect(redirected.outcomeUnknown).toBe(false);
    } finally {
      server.node.fail = undefined;
    }
    expect((await pipeline.put({ key: bytes("after"), value: bytes("ok") })).header?.revision).toBeGreaterThan(0n);
    await pipeline.close();
  });

  it("reports writes pending when the stream breaks as of unknown outcome", async () => {
    const pipeline = client.pipeline();
    server.node.hold = true;
    try {
      const pending = failureOf(pipeline.put({ key: bytes("held"), value: bytes("v") }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await server.listener.close(0);
      const error = await pending;
      expect(error).toBeInstanceOf(PipelineCallError);
      expect(error.outcomeUnknown).toBe(true);
    } finally {
      server.node.hold = false;
      for (const release of server.node.held.splice(0)) release();
      server = await startServer();
      client.close();
      client = createRaftkvClient({ endpoints: [server.url] });
    }
  });
});
