import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { NotLeaderError, UnknownOutcomeError } from "../../src/driver/errors.js";
import { RaftkvCallError, SessionPool, createRaftkvClient, type ClientProtocol, type RaftkvClient } from "../../src/rpc/client/index.js";
import { startServer, type TestServer } from "../server/harness.js";
import { FakeNode } from "./fake-node.js";
import { bytes, text } from "./harness.js";

const servers: TestServer[] = [];
const clients: RaftkvClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** Two nodes over one store: node 1 leads, node 2 follows and names node 1's real URL as the leader. */
async function leaderAndFollower(): Promise<{ leader: TestServer; follower: TestServer }> {
  const leader = await startServer({ node: new FakeNode(1) });
  const follower = await startServer({ node: new FakeNode(2, {}, leader.node.store) });
  follower.node.role = "follower";
  follower.node.leader = 1;
  follower.node.fail = (kind) => (kind === "mutate" ? new NotLeaderError(1, leader.url) : undefined);
  servers.push(leader, follower);
  return { leader, follower };
}

function client(endpoints: string[], protocol: ClientProtocol = "grpc"): RaftkvClient {
  const created = createRaftkvClient({ endpoints, protocol, timeoutMs: 3_000, attemptTimeoutMs: 1_000, backoffMinMs: 5, backoffMaxMs: 20 });
  clients.push(created);
  return created;
}

describe("createRaftkvClient", () => {
  it.each<ClientProtocol>(["grpc", "connect", "grpc-web"])("over %s follows a follower's leader hint for writes", async (protocol) => {
    const { leader, follower } = await leaderAndFollower();
    const kv = client([follower.url], protocol);
    const put = await kv.put({ key: bytes("k"), value: bytes("v") });
    expect(put.header?.memberId).toBe(1n);
    expect(kv.endpoint).toBe(leader.url);
    expect(follower.node.proposals).toHaveLength(0);
    expect(leader.node.proposals).toHaveLength(1);
  });

  it("waits out stale leader hints that point in a circle, then succeeds", async () => {
    const a = await startServer({ node: new FakeNode(1) });
    const b = await startServer({ node: new FakeNode(2, {}, a.node.store) });
    servers.push(a, b);
    let hintsLeft = 10;
    a.node.fail = (kind) => (kind === "mutate" && hintsLeft-- > 0 ? new NotLeaderError(2, b.url) : undefined);
    b.node.fail = (kind) => (kind === "mutate" && hintsLeft-- > 0 ? new NotLeaderError(1, a.url) : undefined);
    const kv = createRaftkvClient({ endpoints: [a.url], timeoutMs: 5_000, backoffMinMs: 5, backoffMaxMs: 20 });
    clients.push(kv);
    const put = await kv.put({ key: bytes("k"), value: bytes("v") });
    expect(put.header?.revision).toBe(1n);
    expect(hintsLeft).toBeLessThan(0);
  });

  it("ignores a malformed leader hint and retries after a pause", async () => {
    const { leader } = await leaderAndFollower();
    let hintsLeft = 1;
    leader.node.fail = (kind) => (kind === "mutate" && hintsLeft-- > 0 ? new NotLeaderError(3, "not a url") : undefined);
    const kv = client([leader.url]);
    expect((await kv.put({ key: bytes("k"), value: bytes("v") })).header?.memberId).toBe(1n);
  });

  it("moves on to the next endpoint when one is down", async () => {
    const { leader } = await leaderAndFollower();
    const down = await startServer();
    await down.close();
    const kv = client([down.url, leader.url]);
    await kv.put({ key: bytes("k"), value: bytes("v") });
    expect(text((await kv.get({ key: bytes("k") })).kv?.value)).toBe("v");
    expect(kv.endpoint).toBe(leader.url);
  });

  it("leaves a node that knows no leader (it may be the one cut off) for the next one", async () => {
    const cutOff = await startServer({ node: new FakeNode(1) });
    const healthy = await startServer({ node: new FakeNode(2, {}, cutOff.node.store) });
    servers.push(cutOff, healthy);
    cutOff.node.role = "candidate";
    cutOff.node.leader = 0;
    cutOff.node.fail = (kind) => (kind === "mutate" ? new NotLeaderError(0, "") : undefined);
    const kv = client([cutOff.url, healthy.url]);
    const put = await kv.put({ key: bytes("k"), value: bytes("v") });
    expect(put.header?.memberId).toBe(2n);
    expect(kv.endpoint).toBe(healthy.url);
    expect(cutOff.node.proposals).toHaveLength(0);
  });

  it("leaves a node that does not answer in time for the next one", async () => {
    const hung = await startServer({ node: new FakeNode(1) });
    const healthy = await startServer({ node: new FakeNode(2, {}, hung.node.store) });
    servers.push(hung, healthy);
    hung.node.hold = true;
    const kv = client([hung.url, healthy.url]);
    const put = await kv.put({ key: bytes("k"), value: bytes("v") });
    expect(put.header?.memberId).toBe(2n);
    expect(kv.endpoint).toBe(healthy.url);
  });

  it("retries a write of unknown outcome with the same client id and sequence, so it applies once", async () => {
    const { leader } = await leaderAndFollower();
    const kv = client([leader.url]);
    const mutate = leader.node.mutate.bind(leader.node);
    let attempts = 0;
    leader.node.mutate = async (command, signal) => {
      attempts++;
      const result = await mutate(command, signal);
      // The first attempt applies and still reports an unknown outcome, as a leader that lost its
      // leadership right after replicating the entry would.
      if (attempts === 1) throw new UnknownOutcomeError("leadership changed");
      return result;
    };
    const put = await kv.put({ key: bytes("k"), value: bytes("v") });
    expect(attempts).toBe(2);
    const [first, second] = leader.node.proposals;
    expect(first?.clientId).not.toBe("");
    expect([second?.clientId, second?.sequence]).toEqual([first?.clientId, first?.sequence]);
    expect(put.header?.revision).toBe(1n);
    expect((await kv.get({ key: bytes("k") })).kv?.version).toBe(1n);
  });

  it("fails fast on bad input, and says when a write's outcome is unknown", async () => {
    const { leader } = await leaderAndFollower();
    const kv = client([leader.url]);
    const bad = await kv.put({ key: new Uint8Array(), value: bytes("v") }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(RaftkvCallError);
    expect((bad as RaftkvCallError).code).toBe(Code.InvalidArgument);
    expect((bad as RaftkvCallError).outcomeUnknown).toBe(false);
    expect(leader.node.proposals).toHaveLength(0);

    leader.node.fail = (kind) => (kind === "mutate" ? new UnknownOutcomeError("lost") : undefined);
    const unknown = await kv.put({ key: bytes("k"), value: bytes("v") }).catch((e: unknown) => e);
    expect((unknown as RaftkvCallError).outcomeUnknown).toBe(true);
  });

  it("reports a write the caller cancels after it was proposed as of unknown outcome", async () => {
    const leader = await startServer({ node: new FakeNode(1) });
    servers.push(leader);
    leader.node.hold = true;
    const kv = client([leader.url]);
    const controller = new AbortController();
    const put = kv.put({ key: bytes("k"), value: bytes("v") }, { signal: controller.signal }).catch((e: unknown) => e);
    while (leader.node.proposals.length === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    const error = await put;
    expect(error).toBeInstanceOf(RaftkvCallError);
    // Proposed, so it may still commit: "certainly not applied" would invite a blind retry.
    expect((error as RaftkvCallError).outcomeUnknown).toBe(true);
    expect(leader.node.proposals).toHaveLength(1);

    const cancelledFirst = new AbortController();
    cancelledFirst.abort();
    const never = await kv.put({ key: bytes("k"), value: bytes("w") }, { signal: cancelledFirst.signal }).catch((e: unknown) => e);
    expect((never as RaftkvCallError).outcomeUnknown).toBe(false);
    expect(leader.node.proposals).toHaveLength(1);
  });

  it("gives concurrent writes distinct sessions, each with increasing sequences", async () => {
    const { leader } = await leaderAndFollower();
    const kv = client([leader.url]);
    await Promise.all(Array.from({ length: 20 }, (_, i) => kv.put({ key: bytes(`k${i}`), value: bytes("v") })));
    await Promise.all(Array.from({ length: 20 }, (_, i) => kv.put({ key: bytes(`k${i}`), value: bytes("w") })));
    const bySession = new Map<string, bigint[]>();
    for (const p of leader.node.proposals) bySession.set(p.clientId, [...(bySession.get(p.clientId) ?? []), p.sequence]);
    for (const sequences of bySession.values()) expect(sequences).toEqual([...sequences].sort((a, b) => (a < b ? -1 : 1)));
    expect(leader.node.proposals).toHaveLength(40);
  });

  it("resumes a watch on another node exactly after the last event delivered", async () => {
    const { leader, follower } = await leaderAndFollower();
    const kv = client([leader.url, follower.url]);
    await kv.put({ key: bytes("w"), value: bytes("1") });
    const seen: string[] = [];
    const controller = new AbortController();
    const watching = (async () => {
      for await (const message of kv.watch({ key: bytes("w"), startRevision: 1n }, { signal: controller.signal })) {
        if (message.kind.case !== "events") continue;
        for (const event of message.kind.value.events) seen.push(text(event.kv?.value));
        if (seen.length === 1) {
          // The node the watch is on shuts down: its streams end with `canceled`.
          leader.shutdown.abort();
          await kv.put({ key: bytes("w"), value: bytes("2") });
        }
        if (seen.length === 2) controller.abort();
      }
    })();
    await watching;
    expect(seen).toEqual(["1", "2"]);
  });

  it("asks every endpoint for its status and reports the unreachable ones", async () => {
    const { leader, follower } = await leaderAndFollower();
    const down = await startServer();
    await down.close();
    const kv = client([leader.url, follower.url, down.url]);
    const statuses = await kv.statusAll();
    expect(statuses.map((s) => s.status?.status?.id)).toEqual([1n, 2n, undefined]);
    expect(statuses[2]?.error?.code).toBe(Code.Unavailable);
  });
});

describe("SessionPool", () => {
  it("never lends one session to two requests at once, and reuses it after", async () => {
    const pool = new SessionPool("c", 2, 10);
    const a = await pool.acquire();
    const b = await pool.acquire();
    expect(a.clientId).not.toBe(b.clientId);
    let third: { clientId: string; sequence: bigint } | undefined;
    const waiting = pool.acquire().then((s) => (third = s));
    await Promise.resolve();
    expect(third).toBeUndefined();
    pool.release(a);
    await waiting;
    expect(third).toEqual({ clientId: a.clientId, sequence: a.sequence + 1n });
  });

  it("refuses more waiters than its bound", async () => {
    const pool = new SessionPool("c", 1, 1);
    await pool.acquire();
    void pool.acquire();
    await expect(pool.acquire()).rejects.toThrow(/waiting for a session/);
  });
});
