import { describe, expect, it } from "vitest";
import { MemoryStorage, RaftNode, type NodeId } from "../../src/core/index.js";
import { Inflights, Progress } from "../../src/core/progress.js";
import { RaftLog } from "../../src/core/raft-log.js";
import { ReadIndex, type LeaderCommit } from "../../src/core/read-index.js";
import { AssertionError } from "../../src/lib/assert.js";
import { createPrng } from "../../src/lib/prng.js";
import { Network } from "./network.js";

/**
 * checkInvariants() runs after every input in the scenario tests (test/core/network.ts), the fuzzer and
 * the simulator, where it must always pass. Here each layer's check is shown to fail when its state is
 * broken: a driver that breaks the Ready contract, or state corrupted through the parts' public fields.
 */
describe("checkInvariants", () => {
  it("catches a driver that advances a Ready without writing its entries", () => {
    const voters: NodeId[] = [1];
    const storage = new MemoryStorage({ voters, learners: [] });
    const node = new RaftNode({ id: 1, storage, prng: createPrng(1), electionTicks: 10, heartbeatTicks: 1 });
    node.campaign();
    const rd = node.ready();
    expect(rd.entries.length).toBeGreaterThan(0);
    node.checkInvariants();
    // Hard state written, entries forgotten: the core now believes its log durable where storage has none.
    if (rd.hardState !== undefined) storage.setHardState(rd.hardState);
    node.advance(rd);
    expect(() => node.checkInvariants()).toThrow(/stable up to 1 but storage ends at 0/);
  });

  it("passes on every node of a cluster after elections, writes, reads and a restart", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    net.proposeAll(leader, ["a", "b"]);
    net.node(leader).readIndex(1);
    net.restart(leader === 1 ? 2 : 1);
    net.tickAll(5);
    for (const id of net.ids) net.node(id).checkInvariants();
  });

  it("catches an entry of a term the node has not reached", () => {
    const log = new RaftLog(new MemoryStorage(), 0, 0);
    log.append([{ index: 1, term: 3, type: "normal", data: new Uint8Array(0) }]);
    log.checkInvariants(3);
    expect(() => log.checkInvariants(2)).toThrow(/entry of term 3 above the current term 2/);
  });

  it("catches a progress whose match reaches next", () => {
    const pr = new Progress(6, 4, 1024);
    pr.checkInvariants(5);
    pr.match = 6;
    expect(() => pr.checkInvariants(10)).toThrow(/match 6 not below next 6/);
  });

  it("catches a progress beyond the leader's log", () => {
    const pr = new Progress(6, 4, 1024);
    expect(() => pr.checkInvariants(3)).toThrow(/next 6 beyond the leader's last index 3/);
  });

  it("catches an inflight window holding an index already acknowledged or never sent", () => {
    const window = new Inflights(4, 1024);
    window.add(3, 10);
    window.add(7, 10);
    window.checkInvariants(2, 7);
    expect(() => window.checkInvariants(3, 7)).toThrow(AssertionError);
    expect(() => window.checkInvariants(2, 6)).toThrow(AssertionError);
  });

  it("catches a commit index beyond the log", () => {
    const log = new RaftLog(new MemoryStorage(), 0, 0);
    log.append([{ index: 1, term: 1, type: "normal", data: new Uint8Array(0) }]);
    log.commitTo(1);
    log.checkInvariants(1);
    log.committed = 2;
    expect(() => log.checkInvariants(1)).toThrow(/commit 2 beyond the last index 1/);
  });

  it("catches reads forwarded by a node that now leads (a path to leadership that forgot to fail them)", () => {
    const reads = new ReadIndex(1, 10, 10, { forward: () => {}, respond: () => {} });
    reads.followerRead(7, 2);
    reads.checkInvariants(undefined);
    const leader: LeaderCommit = { commit: 0, inTerm: true, voters: [1, 2, 3] };
    expect(() => reads.checkInvariants(leader)).toThrow(/forwarded reads on the leader/);
  });

  it("catches leader-side reads left behind when leadership ends without failLeaderReads", () => {
    const reads = new ReadIndex(1, 10, 10, { forward: () => {}, respond: () => {} });
    reads.leaderRead([1], 1, { commit: 4, inTerm: true, voters: [1, 2, 3] });
    reads.checkInvariants({ commit: 4, inTerm: true, voters: [1, 2, 3] });
    reads.reset();
    expect(() => reads.checkInvariants(undefined)).toThrow(/leader-side reads on a node that does not lead/);
  });
});
