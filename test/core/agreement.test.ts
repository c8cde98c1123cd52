import { describe, expect, it } from "vitest";
import { createPrng } from "../../src/lib/prng.js";
import type { Entry, NodeId } from "../../src/core/index.js";
import { Network } from "./network.js";
import { expectSameAppliedData, expectStateMachineSafety } from "./safety.js";

const electionTicks = 10;

function followersOf(net: Network, leader: NodeId): NodeId[] {
  return net.ids.filter((id) => id !== leader);
}

/** How many nodes applied `text` at `index`. */
function appliedCount(net: Network, index: number, text: string): number {
  const encoded = new TextEncoder().encode(text);
  return net.ids.filter((id) => net.appliedOf(id).some((e) => e.index === index && e.type === "normal" && sameBytes(e.data, encoded)))
    .length;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i]);
}

/**
 * No committed entry is ever lost: remembers every entry any node applied at any time, and checks
 * that each is still in every node's log at the end. Catches a commit that a later leader overwrote,
 * even on a node whose applied list the harness reset when it restarted.
 */
class CommittedEntries {
  private readonly byIndex = new Map<number, Entry>();

  constructor(private readonly net: Network) {}

  record(): void {
    for (const id of this.net.ids) {
      for (const entry of this.net.appliedOf(id)) {
        const known = this.byIndex.get(entry.index);
        if (known === undefined) this.byIndex.set(entry.index, entry);
        else if (entry.term !== known.term)
          expect.fail(`node ${id} applied term ${entry.term} at index ${entry.index}, another node term ${known.term}`);
      }
    }
  }

  expectAllKeptBy(id: NodeId): void {
    const storage = this.net.storage(id);
    for (const [index, entry] of this.byIndex) {
      if (index >= storage.firstIndex() && storage.term(index) !== entry.term) expect.fail(`node ${id} lost committed index ${index}`);
    }
  }

  get count(): number {
    return this.byIndex.size;
  }
}

describe("basic agreement", () => {
  it("applies each proposal on every node, in order", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    const leader = net.tickUntilLeader();
    for (const command of ["a", "b", "c"]) {
      const result = net.propose(leader, command);
      expect(result.ok).toBe(true);
      if (result.ok) expect(appliedCount(net, result.index, command), `"${command}"`).toBe(5);
    }
    for (const id of net.ids) expect(net.appliedData(id)).toEqual(["a", "b", "c"]);
  });
});

describe("agreement despite a failed follower", () => {
  it("commits with one follower cut off, and the follower catches up when it returns", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const [lost, other] = followersOf(net, leader);
    if (lost === undefined || other === undefined) throw new Error("three nodes expected");
    net.propose(leader, "before");

    net.isolate(lost);
    net.propose(leader, "while one is away");
    net.tickAll(electionTicks);
    net.propose(leader, "still away");
    expect(net.appliedData(leader)).toEqual(["before", "while one is away", "still away"]);
    expect(net.appliedData(other)).toEqual(net.appliedData(leader));
    expect(net.appliedData(lost)).toEqual(["before"]);

    net.reconnect(lost);
    net.tickAll(2);
    expect(net.leaders()).toEqual([leader]);
    expectSameAppliedData(net);
  });
});

describe("no commit without a majority", () => {
  it("keeps a proposal uncommitted while three of five followers are away, and commits it once they return", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    const leader = net.tickUntilLeader();
    net.propose(leader, "committed");
    const commitBefore = net.status(leader).commit;
    const [away1, away2, away3] = followersOf(net, leader);
    if (away1 === undefined || away2 === undefined || away3 === undefined) throw new Error("five nodes expected");
    for (const id of [away1, away2, away3]) net.isolate(id);

    // Fewer ticks than CheckQuorum needs to notice (the first check after isolation may still see them).
    const result = net.propose(leader, "in a minority");
    expect(result.ok).toBe(true);
    net.tickAll(electionTicks / 2);
    expect(net.status(leader).commit).toBe(commitBefore);
    expect(net.appliedData(leader)).toEqual(["committed"]);

    net.heal();
    net.tickAll(2);
    expect(net.leaders()).toEqual([leader]);
    for (const id of net.ids) expect(net.appliedData(id)).toEqual(["committed", "in a minority"]);
  });
});

describe("concurrent proposals", () => {
  it("gives each of many simultaneous proposals its own index and commits them all, in proposal order", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const commands = Array.from({ length: 50 }, (_, i) => `concurrent ${i}`);

    const results = net.proposeAll(leader, commands);

    const indexes = results.map((r) => (r.ok ? r.index : -1));
    expect(new Set(indexes).size).toBe(commands.length);
    expect(indexes.every((index, i) => i === 0 || index === (indexes[i - 1] ?? 0) + 1)).toBe(true);
    for (const id of net.ids) expect(net.appliedData(id)).toEqual(commands);
  });
});

describe("a deposed leader with a divergent log rejoins", () => {
  it("loses its uncommitted entries to the new leader's log", () => {
    const net = new Network([1, 2, 3]);
    const first = net.tickUntilLeader();
    net.propose(first, "101");

    // The first leader, cut off, still takes proposals that nobody else will see.
    net.isolate(first);
    for (const command of ["102 (lost)", "103 (lost)", "104 (lost)"]) expect(net.propose(first, command).ok).toBe(true);
    const lastIndexOfDeposed = net.status(first).lastIndex;

    const second = net.tickUntilLeader(followersOf(net, first));
    net.propose(second, "103");

    // Now the second leader is cut off, and the first one returns: the remaining follower's log is
    // more up to date (a newer last term), so the first leader cannot win it over.
    net.reconnect(first);
    net.isolate(second);
    net.tickUntil(() => net.status(first).role !== "leader", "the deposed leader learns the new term");
    const third = net.tickUntilLeader(net.ids.filter((id) => id !== second));
    expect(third).not.toBe(first);
    net.propose(third, "104");

    // The second leader may not have noticed it lost its quorum; its first heartbeat teaches it.
    net.heal();
    net.commit("105");
    net.tickAll(1);
    for (const id of net.ids) expect(net.appliedData(id)).toEqual(["101", "103", "104", "105"]);
    expect(net.status(first).lastIndex).toBeGreaterThan(lastIndexOfDeposed);
    expectStateMachineSafety(net);
  });
});

describe("agreement over a lossy network", () => {
  it("commits every command while a fifth of all messages are lost", () => {
    const net = new Network([1, 2, 3, 4, 5], { seed: 3 });
    const loss = createPrng(99);
    net.tickUntilLeader();
    net.drop = () => loss.chance(0.2);

    const commands = Array.from({ length: 40 }, (_, i) => `lossy ${i}`);
    for (const command of commands) net.commit(command);

    // With the network whole again, every node converges on one history holding every command.
    net.drop = () => false;
    net.tickAll(3 * electionTicks);
    expectStateMachineSafety(net);
    expectSameAppliedData(net);
    expect(new Set(net.appliedData(1))).toEqual(new Set(commands));
  });
});

describe("churn with crashes", () => {
  it("keeps every committed entry while nodes crash, restart and get cut off at random", () => {
    const net = new Network([1, 2, 3, 4, 5], { seed: 11 });
    const chaos = createPrng(5);
    const committed = new CommittedEntries(net);
    const proposed: string[] = [];

    for (let round = 0; round < 200; round++) {
      const id = chaos.pick(net.ids);
      const roll = chaos.next();
      if (roll < 0.1) net.crash(id);
      else if (roll < 0.25 && !net.isUp(id)) net.start(id);
      else if (roll < 0.3) net.isolate(id);
      else if (roll < 0.4) net.reconnect(id);

      // The client asks whoever leads the newest term it can see; the command may yet be lost.
      const leader = net.newestLeader();
      const command = `churn ${round}`;
      if (leader !== undefined && net.node(leader).propose(new TextEncoder().encode(command)).ok) proposed.push(command);
      net.tickAll(chaos.int(1, 5));
      committed.record();
    }

    for (const id of net.ids) if (!net.isUp(id)) net.start(id);
    net.heal();
    net.commit("after the storm");
    net.tickAll(2);
    committed.record();

    expect(committed.count).toBeGreaterThan(50);
    for (const id of net.ids) committed.expectAllKeptBy(id);
    expectStateMachineSafety(net);
    expectSameAppliedData(net);
    expect(proposed).toEqual(expect.arrayContaining(net.appliedData(1).filter((c) => c !== "after the storm")));
  });
});
