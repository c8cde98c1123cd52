import { create } from "@bufbuild/protobuf";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import type { Http2Server } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { CommandSchema } from "../../gen/raftkv/v1/command_pb.js";
import { GetRequestSchema } from "../../gen/raftkv/v1/kv_pb.js";
import { MemberDataLostError, openNode, type Driver, type MemberView, type OpenedNode } from "../../src/driver/index.js";
import { registerRaftService, type ProbeState } from "../../src/rpc/raft-service.js";

/**
 * Three real nodes in one process: WAL files on disk, the HTTP/2 peer transport over loopback, and
 * the driver loop. Client services are left out; the test talks to the drivers directly.
 */
interface TestNode {
  readonly id: number;
  readonly dir: string;
  readonly server: FastifyInstance<Http2Server>;
  driver: Driver | undefined;
  opened: OpenedNode | undefined;
  startup: ProbeState;
}

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
let nodes: TestNode[] = [];
let members: MemberView[] = [];

async function startCluster(size: number): Promise<void> {
  nodes = [];
  for (let id = 1; id <= size; id++) {
    const server = Fastify({ http2: true, forceCloseConnections: true });
    const node: TestNode = {
      id,
      dir: await mkdtemp(join(tmpdir(), `raftkv-driver-${id}-`)),
      server,
      driver: undefined,
      opened: undefined,
      startup: { phase: "starting" },
    };
    await registerRaftService(server, {
      clusterId: "test",
      selfId: id,
      isMember: (from) => members.some((m) => m.id === from),
      checkIncarnation: (from, incarnation) =>
        node.opened === undefined || node.opened.incarnations.check(from, incarnation) === "accepted",
      hasSeen: (peer) => node.opened?.incarnations.incarnationOf(peer) !== undefined,
      learnPeerUrl: (peer, url) => node.opened?.driver.learnPeerUrl(peer, url),
      probeState: () => {
        const o = node.opened;
        if (o === undefined) return node.startup;
        const s = o.driver.status();
        return {
          phase: "running",
          term: s.term,
          lastIndex: s.lastIndex,
          snapshotIndex: s.snapshotIndex,
          incarnation: o.identity.incarnation,
        };
      },
      deliver: (messages) => node.driver?.deliver(messages),
      deliverSnapshot: async (message) => node.driver?.deliverSnapshot(message),
      snapshotBytesMax: 64 * 1024 * 1024,
      msgBytesMax: 4 * 1024 * 1024,
      logger: quiet,
    });
    await server.listen({ host: "127.0.0.1", port: 0 });
    nodes.push(node);
  }
  members = nodes.map((n) => {
    const address = n.server.server.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    return { id: n.id, name: `node-${n.id}`, peerUrl: `http://127.0.0.1:${port}`, clientUrl: "", learner: false };
  });
  // Together: members with empty data directories wait for each other's answers before they bootstrap.
  await Promise.all(nodes.map(open));
}

async function open(node: TestNode): Promise<void> {
  node.opened = await openNode({
    onBootstrapping: () => (node.startup = { phase: "bootstrapping" }),
    bootstrapRetryMs: 20,
    id: node.id,
    clusterId: "test",
    dataDir: node.dir,
    members,
    tickMs: 10,
    electionTicks: 10,
    heartbeatTicks: 2,
    msgBytesMax: 4 * 1024 * 1024,
    snapshotEntries: 50,
    retainEntries: 10,
    snapshotBytes: 64 * 1024 * 1024,
    logger: quiet,
  });
  node.driver = node.opened.driver;
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function leader(): Driver | undefined {
  return nodes.find((n) => n.driver?.status().role === "leader")?.driver;
}

function put(key: string, value: string, clientId = "", sequence = 0) {
  return create(CommandSchema, {
    clientId,
    sequence: BigInt(sequence),
    op: { case: "put", value: { key: new TextEncoder().encode(key), value: new TextEncoder().encode(value) } },
  });
}

function get(driver: Driver, key: string): string | undefined {
  const kv = driver.store.get(create(GetRequestSchema, { key: new TextEncoder().encode(key) })).kv;
  return kv === undefined ? undefined : new TextDecoder().decode(kv.value);
}

afterEach(async () => {
  // Drivers first: a server closes only once the other nodes' transports have hung up on it.
  await Promise.all(nodes.map((node) => node.driver?.stop().catch(() => {})));
  for (const node of nodes) {
    await node.server.close();
    await rm(node.dir, { recursive: true, force: true });
  }
  nodes = [];
});

describe("a three-node cluster of drivers over real HTTP/2 and WAL files", () => {
  it("elects a leader, commits writes, serves linearizable reads on a follower, and survives a restart", async () => {
    await startCluster(3);
    const first = await waitFor("a leader", leader);
    // Every member learns every other one's incarnation by Probe, followers included (they never
    // message each other), so that any of them would refuse a member that came back with an empty disk.
    await waitFor("every incarnation known", () =>
      nodes.every((n) => nodes.every((m) => m === n || n.opened?.incarnations.incarnationOf(m.id) === m.opened?.identity.incarnation))
        ? true
        : undefined,
    );
    for (let i = 0; i < 120; i++) await first.mutate(put(`k${i % 7}`, `v${i}`));
    const follower = nodes.find((n) => n.driver !== first)!.driver!;
    await follower.readBarrier(AbortSignal.timeout(5_000));
    expect(get(follower, "k0")).toBe("v119");
    // 120 entries with snapshotEntries 50: every node has taken a snapshot and compacted.
    expect(first.status().snapshotIndex).toBeGreaterThan(0);

    // Exactly-once: the same (client id, sequence) twice applies once and returns the first result.
    const a = await first.mutate(put("once", "1", "client-a", 1));
    const b = await first.mutate(put("once", "2", "client-a", 1));
    expect(b).toEqual(a);
    await follower.readBarrier();
    expect(get(follower, "once")).toBe("1");

    // Stop everything and start again from disk: every acknowledged write is there.
    for (const node of nodes) {
      await node.driver!.stop();
      node.driver = undefined;
      node.opened = undefined;
      node.startup = { phase: "starting" };
    }
    for (const node of nodes) await open(node);
    const second = await waitFor("a leader after restart", leader);
    await second.readBarrier(AbortSignal.timeout(5_000));
    expect(get(second, "k0")).toBe("v119");
    expect(get(second, "once")).toBe("1");
    for (let i = 0; i < 7; i++) expect(get(second, `k${i}`)).toBe(`v${119 - ((119 - i) % 7)}`);
  });

  it("a member whose data directory was lost refuses to start while the cluster exists, and waits while it cannot tell", async () => {
    await startCluster(3);
    const first = await waitFor("a leader", leader);
    for (let i = 0; i < 10; i++) await first.mutate(put("k", `v${i}`));
    const wiped = nodes.find((n) => n.driver !== first)!;
    await wiped.driver!.stop();
    wiped.driver = undefined;
    wiped.opened = undefined;
    wiped.startup = { phase: "starting" };
    await rm(wiped.dir, { recursive: true, force: true });

    // The other members hold the cluster's log: the empty member learns it and refuses.
    const refusal = await open(wiped).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refusal).toBeInstanceOf(MemberDataLostError);
    expect((refusal as Error).message).toMatch(
      /refusing to start: the data directory of member \d is empty, but the cluster already exists/,
    );
    await rm(wiped.dir, { recursive: true, force: true });

    // With every other member down it cannot tell, so it waits (and writes nothing) until stopped.
    for (const node of nodes) {
      if (node === wiped) continue;
      await node.driver!.stop();
      node.driver = undefined;
      node.opened = undefined;
      await node.server.close();
    }
    const stop = new AbortController();
    let settled = false;
    const waiting = openNode({
      id: wiped.id,
      clusterId: "test",
      dataDir: wiped.dir,
      members,
      tickMs: 10,
      electionTicks: 10,
      heartbeatTicks: 2,
      msgBytesMax: 4 * 1024 * 1024,
      snapshotEntries: 50,
      snapshotBytes: 64 * 1024 * 1024,
      retainEntries: 10,
      logger: quiet,
      signal: stop.signal,
      bootstrapRetryMs: 20,
    }).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 1_000));
    expect(settled).toBe(false);
    expect(await readdir(wiped.dir)).toEqual(["LOCK"]);
    stop.abort(new Error("test stop"));
    await expect(waiting).rejects.toThrow(/test stop/);
    nodes = nodes.filter((n) => n === wiped);
  });
});
