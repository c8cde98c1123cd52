import { describe, expect, it } from "vitest";
import type { NodeId } from "../../src/core/index.js";
import { Driver } from "../../src/driver/node.js";
import { createKvStore } from "../../src/kv/index.js";
import { silentLogger } from "../../src/lib/logger.js";
import { openStorage } from "../../src/storage/index.js";
import { SimFileSystem } from "../storage/sim-file-system.js";

/**
 * Driver.learnPeerUrl: a member added by a change this node's log does not hold yet sends its vote
 * requests with its peer URL (StepRequest.from_peer_url); the driver gives the transport a link to it,
 * so that its answer can reach that candidate (chaos seed 38: a member far behind granted votes it
 * could never deliver, and no leader could be elected).
 */
async function founder(): Promise<{ driver: Driver; peers: () => ReadonlyMap<NodeId, string> }> {
  const storage = await openStorage({
    dir: "/d",
    fs: new SimFileSystem(),
    segmentBytes: 1 << 20,
    initialConf: { voters: [1, 2, 3], learners: [] },
    logger: silentLogger,
  });
  let peers: ReadonlyMap<NodeId, string> = new Map();
  const driver = new Driver({
    id: 1,
    members: [1, 2, 3].map((id) => ({ id, name: `n${id}`, peerUrl: `http://n${id}:2380`, clientUrl: "", learner: false })),
    storage,
    stateMachine: createKvStore({}),
    transport: { send: () => {}, setPeers: (p) => void (peers = p), stats: () => new Map(), close: async () => {} },
    logger: silentLogger,
    tickMs: 1_000,
    electionTicks: 10,
    heartbeatTicks: 1,
    msgBytesMax: 1 << 20,
    proposalsMax: 100,
    readsMax: 100,
    snapshotEntries: 1_000,
    retainEntries: 100,
    seed: 1,
  });
  return { driver, peers: () => peers };
}

describe("Driver.learnPeerUrl", () => {
  it("links a member above every id it knows to the URL that member sent, and only such a member", async () => {
    const { driver, peers } = await founder();
    expect([...peers().keys()]).toEqual([2, 3]);
    driver.learnPeerUrl(5, "http://n5:2380");
    expect(peers().get(5)).toBe("http://n5:2380");
    expect(driver.isMember(5)).toBe(true);
    // A known member's URL comes from the membership, never from what a batch says.
    driver.learnPeerUrl(2, "http://elsewhere:2380");
    expect(peers().get(2)).toBe("http://n2:2380");
    // Its own id is never a peer.
    driver.learnPeerUrl(1, "http://n1-elsewhere:2380");
    expect(peers().has(1)).toBe(false);
    await driver.stop();
  });

  it("keeps the newest few: a stream of made-up ids cannot grow the links without bound", async () => {
    const { driver, peers } = await founder();
    for (let id = 10; id < 110; id++) driver.learnPeerUrl(id, `http://n${id}:2380`);
    const learned = [...peers().keys()].filter((id) => id >= 10);
    expect(learned.length).toBeLessThanOrEqual(16);
    expect(learned).toContain(109);
    expect(learned).not.toContain(10);
    await driver.stop();
  });
});
