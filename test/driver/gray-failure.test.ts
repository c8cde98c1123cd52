import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { CommandSchema } from "../../gen/raftkv/v1/command_pb.js";
import type { Message, NodeId } from "../../src/core/index.js";
import { Driver, type DriverTransport } from "../../src/driver/index.js";
import { createKvStore } from "../../src/kv/index.js";
import { openStorage } from "../../src/storage/index.js";
import { SimFileSystem } from "../storage/sim-file-system.js";
import { silentLogger } from "../../src/lib/logger.js";

/**
 * Gray failure: a disk that stops completing writes without failing them (a hung fdatasync). Three
 * real Drivers, each on its own simulated disk, over an in-process transport that delivers in a later
 * turn of the event loop. The leader's disk holds every sync; the node must say it is not ready and
 * hand leadership to a follower, and the cluster must go on committing without it.
 */
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const put = (key: string) =>
  create(CommandSchema, { op: { case: "put", value: { key: new TextEncoder().encode(key), value: new Uint8Array([1]) } } });

interface TestNode {
  readonly id: NodeId;
  readonly fs: SimFileSystem;
  readonly driver: Driver;
  readonly warnings: string[];
}

let nodes: TestNode[] = [];

afterEach(async () => {
  for (const n of nodes) n.fs.release();
  await Promise.all(nodes.map((n) => n.driver.stop().catch(() => {})));
  nodes = [];
});

async function startCluster(storageStallMs: number): Promise<void> {
  const ids = [1, 2, 3];
  const byId = new Map<NodeId, TestNode>();
  const transport = (): DriverTransport => ({
    send: (messages: readonly Message[]) => {
      for (const m of messages) setTimeout(() => byId.get(m.to)?.driver.deliver([m]), 0);
    },
    setPeers: () => {},
    stats: () => new Map(),
    close: async () => {},
  });
  for (const id of ids) {
    const fs = new SimFileSystem();
    const storage = await openStorage({
      dir: "/d",
      fs,
      segmentBytes: 1 << 20,
      initialConf: { voters: ids, learners: [] },
      logger: silentLogger,
    });
    const warnings: string[] = [];
    const driver = new Driver({
      id,
      members: ids.map((m) => ({ id: m, name: `n${m}`, peerUrl: "", clientUrl: "", learner: false })),
      storage,
      stateMachine: createKvStore({}),
      transport: transport(),
      logger: { ...quiet, warn: (msg) => void warnings.push(msg) },
      tickMs: 5,
      electionTicks: 10,
      heartbeatTicks: 1,
      msgBytesMax: 1 << 20,
      proposalsMax: 100,
      readsMax: 100,
      snapshotEntries: 1_000,
      retainEntries: 100,
      storageStallMs,
      seed: id,
    });
    const node = { id, fs, driver, warnings };
    byId.set(id, node);
    nodes.push(node);
  }
  for (const n of nodes) n.driver.start();
}

async function leader(timeoutMs = 5_000): Promise<TestNode> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = nodes.find((n) => n.driver.status().role === "leader" && n.driver.health().ready);
    if (found !== undefined) return found;
    await sleep(5);
  }
  throw new Error(`no ready leader within ${timeoutMs} ms: ${nodes.map((n) => `${n.id}:${n.driver.status().role}`).join(" ")}`);
}

describe("a disk that stops completing writes (gray failure)", () => {
  it("a stalled leader reports not ready and hands leadership to a follower, which goes on committing", async () => {
    await startCluster(200);
    const old = await leader();
    await old.driver.mutate(put("before"), AbortSignal.timeout(2_000));

    old.fs.hold(["datasync", "sync"]);
    // A write the stalled disk never completes: its outcome stays unknown to this node.
    const stuck = old.driver.mutate(put("stuck"), AbortSignal.timeout(5_000)).then(
      () => "applied",
      (e: Error) => e.name,
    );
    const next = await (async () => {
      const deadline = Date.now() + 5_000;
      while (Date.now() < deadline) {
        const other = nodes.find((n) => n !== old && n.driver.status().role === "leader");
        if (other !== undefined && !old.driver.health().ready) return other;
        await sleep(10);
      }
      throw new Error(`leadership did not move off the stalled node: ${nodes.map((n) => `${n.id}:${n.driver.status().role}`).join(" ")}`);
    })();
    expect(old.driver.health()).toMatchObject({ ready: false, reason: expect.stringMatching(/storage stalled/) as unknown });
    expect(old.warnings.some((w) => w.startsWith("storage stalled"))).toBe(true);
    // The new leader commits with the third node's disk; the stalled node is not needed.
    await next.driver.mutate(put("after"), AbortSignal.timeout(2_000));

    old.fs.release();
    // Applied if the new leader committed it (the followers had it), else of unknown outcome: never a lie.
    expect(["applied", "UnknownOutcomeError"]).toContain(await stuck);
    // Once its write completes it is ready again, and says so.
    const deadline = Date.now() + 5_000;
    while (!old.driver.health().ready && Date.now() < deadline) await sleep(10);
    expect(old.driver.health().ready).toBe(true);
    expect(old.warnings.some((w) => w.startsWith("storage recovered"))).toBe(true);
  });

  it("a stalled follower reports not ready while the leader keeps leading", async () => {
    await startCluster(200);
    const lead = await leader();
    const follower = nodes.find((n) => n !== lead);
    if (follower === undefined) throw new Error("no follower");
    follower.fs.hold(["datasync", "sync"]);
    await lead.driver.mutate(put("a"), AbortSignal.timeout(2_000));
    await lead.driver.mutate(put("b"), AbortSignal.timeout(2_000));
    const deadline = Date.now() + 5_000;
    while (follower.driver.health().ready && Date.now() < deadline) await sleep(10);
    expect(follower.driver.health()).toMatchObject({ ready: false, reason: expect.stringMatching(/storage stalled/) as unknown });
    expect(lead.driver.status().role).toBe("leader");
    expect(lead.driver.health().ready).toBe(true);
  });
});
