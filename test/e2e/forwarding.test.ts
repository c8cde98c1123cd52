import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompareResult, CompareTarget, KvService } from "../../gen/raftkv/v1/kv_pb.js";
import { assert } from "../../src/lib/assert.js";
import { leaderHeader, reasonHeader } from "../../src/rpc/index.js";
import { bytes, text } from "./bytes.js";
import { retryUnavailable, startE2eCluster, type E2eCluster } from "./e2e-cluster.js";
import { createGrpcJsClient, type GrpcJsClient } from "./grpc-js-client.js";

/**
 * Writes sent to a follower of a real 3-node cluster (default settings: --forward-writes true) by a
 * plain gRPC client that knows nothing of leaders: the follower hands them to the leader over its peer
 * connection (RaftService.Forward) and answers itself. What must hold: the write applies once, the
 * answer is the leader's (exactly-once sessions included), the leader's errors arrive unchanged, and a
 * forward that dies with the leader never answers "ok" for a write that did not apply.
 */
let fixture: E2eCluster | undefined;

function cluster(): E2eCluster {
  assert(fixture !== undefined, "the cluster did not start (see beforeAll)");
  return fixture;
}

beforeAll(async () => {
  fixture = await startE2eCluster();
}, 90_000);

afterAll(async () => {
  await fixture?.close();
});

async function atFollower<T>(use: (client: GrpcJsClient, ids: { leader: number; follower: number }) => Promise<T>): Promise<T> {
  const c = cluster();
  const leader = (await c.stableLeader()).id;
  const follower = c.ids.find((id) => id !== leader) ?? 0;
  const client = createGrpcJsClient(KvService, c.cluster.clientUrl(follower));
  try {
    return await use(client, { leader, follower });
  } finally {
    client.close();
  }
}

function serviceError(error: unknown): grpc.ServiceError {
  assert(error instanceof Error && "code" in error && "metadata" in error, `not a gRPC error: ${String(error)}`);
  return error as grpc.ServiceError;
}

describe("writes sent to a follower are forwarded to the leader", () => {
  it("Put, Txn and Delete at a follower apply once and answer from the follower; the leader reads them", async () => {
    await atFollower(async (client, { follower }) => {
      const key = bytes("forwarded/put");
      // Retried on Unavailable (an election under the test); a session makes each retry exactly-once,
      // so the versions below are exact.
      const clientId = `forwarding-${process.pid}-put`;
      const put = await retryUnavailable("forwarded put", () =>
        client.unary(KvService.method.put, { key, value: bytes("one"), clientId, sequence: 1n }),
      );
      expect(put.header?.memberId).toBe(BigInt(follower));
      const txn = await retryUnavailable("forwarded txn", () =>
        client.unary(KvService.method.txn, {
          clientId,
          sequence: 2n,
          compare: [{ key, target: CompareTarget.VALUE, result: CompareResult.EQUAL, value: bytes("one") }],
          success: [{ request: { case: "put", value: { key, value: bytes("two") } } }],
        }),
      );
      expect(txn.succeeded).toBe(true);
      expect(txn.header?.revision).toBe((put.header?.revision ?? 0n) + 1n);

      const c = cluster();
      const got = await c.onLeader((id) => c.kv(id).get({ key }));
      expect(text(got.kv?.value)).toBe("two");
      expect(got.kv?.version).toBe(2n);

      const deleted = await retryUnavailable("forwarded delete", () => client.unary(KvService.method.delete, { key }));
      expect(deleted.deleted).toBe(1n);
      const gone = await c.onLeader((id) => c.kv(id).get({ key }));
      expect(gone.kv).toBeUndefined();
    });
  });

  it("keeps exactly-once: a retried sequence answers the first result, an older one the leader's stale-sequence error", async () => {
    await atFollower(async (client) => {
      const clientId = `forwarding-${process.pid}-session`;
      const key = bytes("forwarded/session");
      const first = await retryUnavailable("first", () =>
        client.unary(KvService.method.put, { key, value: bytes("a"), clientId, sequence: 1n }),
      );
      const again = await retryUnavailable("retry", () =>
        client.unary(KvService.method.put, { key, value: bytes("a"), clientId, sequence: 1n }),
      );
      expect(again.header?.revision).toBe(first.header?.revision);
      await retryUnavailable("second", () => client.unary(KvService.method.put, { key, value: bytes("b"), clientId, sequence: 2n }));
      const stale = await client.unary(KvService.method.put, { key, value: bytes("c"), clientId, sequence: 1n }).then(
        () => undefined,
        (error: unknown) => serviceError(error),
      );
      // Decided by the leader's state machine and passed on unchanged: code, reason and message.
      expect(stale?.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(stale?.metadata.get(reasonHeader)).toEqual(["stale-sequence"]);
      const c = cluster();
      const got = await c.onLeader((id) => c.kv(id).get({ key }));
      expect(text(got.kv?.value)).toBe("b");
    });
  });

  it("a request the follower itself can refuse is refused there, before any forwarding", async () => {
    await atFollower(async (client) => {
      const refused = await client.unary(KvService.method.put, { key: new Uint8Array(0), value: bytes("v") }).then(
        () => undefined,
        (error: unknown) => serviceError(error),
      );
      expect(refused?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(refused?.metadata.get(reasonHeader)).toEqual(["invalid-argument"]);
    });
  });

  it("when the leader is killed, writes at a follower either apply or fail with a reason that says what to do; none is lost", async () => {
    const c = cluster();
    const leader = (await c.stableLeader()).id;
    const follower = c.ids.find((id) => id !== leader) ?? 0;
    const client = createGrpcJsClient(KvService, c.cluster.clientUrl(follower));
    const acknowledged: string[] = [];
    const reasons = new Set<string>();
    let attempts = 0;
    const writer = async (until: () => boolean): Promise<void> => {
      while (!until()) {
        const value = `w${attempts++}`;
        try {
          await client.unary(KvService.method.put, { key: bytes(`forwarded/kill/${value}`), value: bytes(value) });
          acknowledged.push(value);
        } catch (error) {
          const e = serviceError(error);
          const reason = String(e.metadata.get(reasonHeader)[0] ?? "none");
          reasons.add(`${grpc.status[e.code]}/${reason}`);
          // Never Internal, never without a reason: the client must be told what to do.
          expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]).toContain(e.code);
          expect(["unknown-outcome", "not-leader", "no-leader"]).toContain(reason);
          if (reason === "not-leader") expect(e.metadata.get(leaderHeader)).toHaveLength(1);
        }
      }
    };
    try {
      // Writes before, across and after the kill: the follower forwards to the old leader, then (once
      // it learns of the new one) to the new leader, unless it leads itself.
      let killedAt: number | undefined = undefined;
      const writing = writer(() => killedAt !== undefined && Date.now() - killedAt > 3_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await c.cluster.node(leader).kill();
      killedAt = Date.now();
      await writing;
    } finally {
      client.close();
    }
    console.log(
      `forwarding with the leader killed: ${acknowledged.length} of ${attempts} acknowledged; refusals: ${[...reasons].join(", ") || "none"}`,
    );
    c.restart(leader);
    await c.stableLeader(30_000);
    // Every acknowledged write is there, read linearizably from whichever node leads now.
    expect(acknowledged.length).toBeGreaterThan(0);
    for (const value of acknowledged) {
      const got = await c.onLeader((id) => c.kv(id).get({ key: bytes(`forwarded/kill/${value}`) }));
      expect(text(got.kv?.value), `acknowledged write ${value}`).toBe(value);
    }
  }, 60_000);
});
