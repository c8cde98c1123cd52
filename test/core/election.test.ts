import { describe, expect, it } from "vitest";
import { createPrng } from "../../src/lib/prng.js";
import type { NodeId } from "../../src/core/index.js";
import { Network } from "./network.js";

/** The harness default: a follower campaigns after 10 to 19 ticks without hearing from a leader. */
const electionTicks = 10;

/** Every live node of `group` is in `term` and follows `leader`. */
function expectEveryoneFollows(net: Network, leader: NodeId, group: readonly NodeId[] = net.ids): void {
  const { term } = net.status(leader);
  for (const id of group) {
    expect(net.status(id), `node ${id}`).toMatchObject({ term, leader });
  }
}

/**
 * Election Safety (paper Figure 3): at most one leader per term. Watches the cluster after every tick
 * and remembers who led each term it saw.
 */
class LeaderWatch {
  private readonly leaderOfTerm = new Map<number, NodeId>();

  constructor(private readonly net: Network) {}

  tick(times: number): void {
    for (let i = 0; i < times; i++) {
      this.net.tickAll(1);
      this.check();
    }
  }

  check(): void {
    for (const id of this.net.ids) {
      if (!this.net.isUp(id)) continue;
      const { role, term } = this.net.status(id);
      if (role !== "leader") continue;
      const known = this.leaderOfTerm.get(term);
      expect(known ?? id, `two leaders in term ${term}`).toBe(id);
      this.leaderOfTerm.set(term, id);
    }
  }

  get termsWithALeader(): number {
    return this.leaderOfTerm.size;
  }
}

describe("initial election", () => {
  it("elects exactly one leader that everyone follows", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    expect(net.leaders()).toEqual([leader]);
    expectEveryoneFollows(net, leader);
  });

  it("keeps the same leader and term over many election timeouts without faults", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    const leader = net.tickUntilLeader();
    const { term } = net.status(leader);

    net.tickAll(50 * electionTicks);

    expect(net.leaders()).toEqual([leader]);
    expect(net.status(leader).term).toBe(term);
    expectEveryoneFollows(net, leader);
  });
});

describe("re-election", () => {
  it("elects a new leader when the leader is cut off, and the old one rejoins as a follower", () => {
    const net = new Network([1, 2, 3]);
    const first = net.tickUntilLeader();
    const others = net.ids.filter((id) => id !== first);

    net.isolate(first);
    const second = net.tickUntilLeader(others);
    expect(net.status(second).term).toBeGreaterThan(net.status(first).term);

    // The old leader hears the new term from the new leader's first heartbeat and steps down.
    net.reconnect(first);
    net.tickAll(1);
    expect(net.leaders()).toEqual([second]);
    expectEveryoneFollows(net, second);
  });

  it("elects no one while a majority is unreachable, then recovers when one node returns", () => {
    const net = new Network([1, 2, 3]);
    const first = net.tickUntilLeader();
    const [a, b] = net.ids.filter((id) => id !== first);
    if (a === undefined || b === undefined) throw new Error("three nodes expected");

    net.isolate(first);
    const second = net.tickUntilLeader([a, b]);
    const third = second === a ? b : a;

    // Now the new leader loses its only follower as well: no node has a majority.
    net.isolate(third);
    net.tickAll(5 * electionTicks);
    expect(net.leaders()).toEqual([]);

    net.reconnect(third);
    const leader = net.tickUntilLeader([second, third]);
    expectEveryoneFollows(net, leader, [second, third]);
  });
});

describe("no leader without a majority", () => {
  it("leaves two connected nodes of five leaderless, and their terms where they were", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    const first = net.tickUntilLeader();
    const followers = net.ids.filter((id) => id !== first);
    const [a, b, ...rest] = followers;
    if (a === undefined || b === undefined) throw new Error("five nodes expected");
    const term = net.status(a).term;

    // The leader and two followers each end up alone; a and b can still talk to each other.
    for (const id of [first, ...rest]) net.isolate(id);
    net.tickAll(10 * electionTicks);

    expect(net.leaders()).toEqual([]);
    // PreVote: a node that cannot win does not even raise its term.
    expect(net.status(a).term).toBe(term);
    expect(net.status(b).term).toBe(term);

    // One more node makes three of five: a leader again.
    const [returning] = rest;
    if (returning === undefined) throw new Error("five nodes expected");
    net.reconnect(returning);
    for (const id of [first, ...rest]) if (id !== returning) net.isolate(id);
    net.tickUntilLeader([a, b, returning]);
  });
});

describe("elections under churn", () => {
  it("never has two leaders in one term while random minorities come and go", () => {
    const net = new Network([1, 2, 3, 4, 5, 6, 7], { seed: 7 });
    const prng = createPrng(2024);
    const watch = new LeaderWatch(net);
    net.tickUntilLeader();

    for (let round = 0; round < 30; round++) {
      net.heal();
      const cutOff = new Set<NodeId>();
      while (cutOff.size < 3) cutOff.add(prng.pick(net.ids));
      for (const id of cutOff) net.isolate(id);
      watch.tick(prng.int(1, 3 * electionTicks));

      // The four connected nodes are a majority: they have a leader within a few election timeouts.
      const majority = net.ids.filter((id) => !cutOff.has(id));
      net.tickUntil(() => majority.some((id) => net.status(id).role === "leader"), `leader in round ${round}`);
      watch.check();
    }

    net.heal();
    watch.tick(3 * electionTicks);
    expect(net.leaders()).toHaveLength(1);
    // The rounds really did force new elections, not one leader riding them all out.
    expect(watch.termsWithALeader).toBeGreaterThan(10);
  });
});
