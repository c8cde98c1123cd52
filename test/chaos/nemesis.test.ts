import { describe, expect, it } from "vitest";
import { createPrng } from "../../src/lib/prng.js";
import { linkStates, type NetworkFault } from "./network.js";
import { NemesisRunner, type NemesisControl } from "./nemesis-runner.js";
import { nemesisKinds, parseNemesisKinds, planNemesis, type PlannedFault } from "./nemesis-plan.js";
import { allLinks, cutBetweenGroups, linkName, nodesWithMajority, partitionCut, partitionShapes } from "./partitions.js";

const three = [1, 2, 3];
const five = [1, 2, 3, 4, 5];
const names = (links: readonly { from: number; to: number }[]): string[] => links.map(linkName).sort();

describe("partition shapes", () => {
  it("cuts both directions between groups and nothing inside them", () => {
    expect(names(cutBetweenGroups([[1], [2, 3]]))).toEqual(["1->2", "1->3", "2->1", "3->1"]);
  });

  it("isolate: the focus loses every link, the rest keep a majority", () => {
    const cut = partitionCut("isolate", five, 2, createPrng(1));
    expect(cut).toHaveLength(8);
    expect(nodesWithMajority(five, cut)).toEqual([1, 3, 4, 5]);
  });

  it("halves: exactly one side keeps a majority", () => {
    for (let seed = 0; seed < 20; seed++) {
      const cut = partitionCut("halves", five, 1, createPrng(seed));
      expect(nodesWithMajority(five, cut)).toHaveLength(3);
    }
  });

  it("bridge: only the bridge sees a majority-plus; the two sides cannot talk", () => {
    const cut = partitionCut("bridge", five, 3, createPrng(7));
    expect(cut.some((l) => l.from === 3 || l.to === 3)).toBe(false);
    expect(nodesWithMajority(five, cut)).toContain(3);
    // Two sides of two: each side plus the bridge is exactly a majority.
    expect(cut).toHaveLength(8);
  });

  it("ring: every node keeps exactly its two neighbours in a 5-node cluster", () => {
    const cut = partitionCut("ring", five, 1, createPrng(3));
    const kept = allLinks(five).filter((l) => !cut.some((c) => c.from === l.from && c.to === l.to));
    for (const id of five) expect(kept.filter((l) => l.from === id)).toHaveLength(2);
    // Each node plus its two neighbours is a majority of five, yet no two see the same majority.
    expect(nodesWithMajority(five, cut)).toEqual(five);
  });

  it("ring on three nodes falls back to a bridge (every node is everyone's neighbour)", () => {
    expect(partitionCut("ring", three, 2, createPrng(1))).toEqual(partitionCut("bridge", three, 2, createPrng(1)));
  });

  it("one-way shapes cut one direction only", () => {
    expect(names(partitionCut("one-way-out", three, 1, createPrng(1)))).toEqual(["1->2", "1->3"]);
    expect(names(partitionCut("one-way-in", three, 1, createPrng(1)))).toEqual(["2->1", "3->1"]);
  });

  it("every shape is decided by its seed", () => {
    for (const shape of partitionShapes)
      expect(partitionCut(shape, five, 4, createPrng(99))).toEqual(partitionCut(shape, five, 4, createPrng(99)));
  });
});

describe("link states under composed faults", () => {
  it("takes the harshest cut and the largest latency, and heals to healthy", () => {
    const faults: NetworkFault[] = [
      { kind: "cut", links: [{ from: 1, to: 2 }], mode: "stall" },
      {
        kind: "cut",
        links: [
          { from: 1, to: 2 },
          { from: 2, to: 1 },
        ],
        mode: "drop",
      },
      { kind: "latency", links: allLinks(three), delayMs: 50 },
      { kind: "latency", links: [{ from: 3, to: 1 }], delayMs: 200 },
    ];
    const states = linkStates(three, faults);
    expect(states.get("1->2")).toEqual({ mode: "drop", delayMs: 50 });
    expect(states.get("2->1")).toEqual({ mode: "drop", delayMs: 50 });
    expect(states.get("3->1")).toEqual({ mode: "pass", delayMs: 200 });
    expect(states.get("2->3")).toEqual({ mode: "pass", delayMs: 50 });
    expect([...linkStates(three, []).values()].every((s) => s.mode === "pass" && s.delayMs === 0)).toBe(true);
  });
});

describe("nemesis plan", () => {
  const options = { ids: five, kinds: nemesisKinds, timeMs: 60_000 };

  it("is decided by the seed", () => {
    expect(planNemesis({ ...options, seed: 5 })).toEqual(planNemesis({ ...options, seed: 5 }));
    expect(planNemesis({ ...options, seed: 5 })).not.toEqual(planNemesis({ ...options, seed: 6 }));
  });

  it("keeps faults inside the run, healthy at the start, and at most two active at once", () => {
    for (let seed = 0; seed < 50; seed++) {
      const plan = planNemesis({ ...options, seed });
      expect(plan.length).toBeGreaterThan(5);
      for (const fault of plan) {
        expect(fault.startMs).toBeGreaterThanOrEqual(1500);
        expect(fault.endMs).toBeLessThanOrEqual(60_000);
        expect(fault.endMs).toBeGreaterThanOrEqual(fault.startMs);
        const active = plan.filter((f) => f.startMs <= fault.startMs && f.endMs > fault.startMs);
        expect(active.length).toBeLessThanOrEqual(2);
      }
    }
  });

  it("draws only the kinds asked for, and composes faults in some seeds", () => {
    const plan = planNemesis({ ...options, seed: 11, kinds: ["kill", "partition"] });
    expect(new Set(plan.map((f) => f.spec.kind))).toEqual(new Set(["kill", "partition"]));
    const overlapping = Array.from({ length: 20 }, (_, seed) => planNemesis({ ...options, seed })).some((plan) =>
      plan.some((a) => plan.some((b) => a.id < b.id && b.startMs < a.endMs)),
    );
    expect(overlapping).toBe(true);
    expect(planNemesis({ ...options, seed: 1, kinds: [] })).toEqual([]);
  });

  it("plans one disk loss per run when asked, in the first 70%, and leaves the seed's other faults as they were", () => {
    const without = nemesisKinds.filter((k) => k !== "disk-loss");
    for (let seed = 0; seed < 50; seed++) {
      const plan = planNemesis({ ...options, seed });
      const losses = plan.filter((f) => f.spec.kind === "disk-loss");
      expect(losses).toHaveLength(1);
      const [loss] = losses;
      expect(loss?.startMs).toBeGreaterThanOrEqual(1500);
      expect(loss?.startMs).toBeLessThanOrEqual(42_000);
      expect(loss?.endMs).toBe(loss?.startMs);
      expect(plan.map((f) => f.id)).toEqual(plan.map((_, i) => i + 1));
      const others = plan.filter((f) => f.spec.kind !== "disk-loss").map(({ startMs, endMs, spec }) => ({ startMs, endMs, spec }));
      expect(others).toEqual(
        planNemesis({ ...options, seed, kinds: without }).map(({ startMs, endMs, spec }) => ({ startMs, endMs, spec })),
      );
    }
    expect(planNemesis({ ...options, seed: 3, kinds: ["disk-loss"] }).map((f) => f.spec.kind)).toEqual(["disk-loss"]);
    expect(planNemesis({ ...options, seed: 3, kinds: ["kill", "pause"] }).some((f) => f.spec.kind === "disk-loss")).toBe(false);
  });

  it("plans membership changes on a stream of their own: seconds apart, in the first 60%, following the cluster's size", () => {
    const without = nemesisKinds.filter((k) => k !== "membership");
    for (let seed = 0; seed < 50; seed++) {
      const plan = planNemesis({ ...options, seed });
      const changes = plan.filter((f) => f.spec.kind === "membership");
      expect(changes.length).toBeGreaterThanOrEqual(3);
      let grown = false;
      for (const [i, change] of changes.entries()) {
        expect(change.startMs).toBeGreaterThanOrEqual(1500);
        expect(change.startMs).toBeLessThanOrEqual(36_000);
        expect(change.endMs).toBe(change.startMs);
        if (i > 0) expect(change.startMs - (changes[i - 1]?.startMs ?? 0)).toBeGreaterThanOrEqual(6000);
        const op = change.spec.kind === "membership" ? change.spec.op : undefined;
        // A grow only at the founding size, a shrink only above it.
        expect(op === "grow" ? !grown : op === "shrink" ? grown : true).toBe(true);
        if (op === "grow") grown = true;
        if (op === "shrink") grown = false;
      }
      const others = plan.filter((f) => f.spec.kind !== "membership").map(({ startMs, endMs, spec }) => ({ startMs, endMs, spec }));
      expect(others).toEqual(
        planNemesis({ ...options, seed, kinds: without }).map(({ startMs, endMs, spec }) => ({ startMs, endMs, spec })),
      );
      expect(plan.map((f) => f.id)).toEqual(plan.map((_, i) => i + 1));
    }
    const ops = Array.from({ length: 20 }, (_, seed) => planNemesis({ ...options, seed, kinds: ["membership"] })).flatMap((plan) =>
      plan.map((f) => (f.spec.kind === "membership" ? f.spec.op : "")),
    );
    expect(new Set(ops)).toEqual(new Set(["replace", "grow", "shrink"]));
    expect(planNemesis({ ...options, seed: 3, timeMs: 12_000, kinds: ["membership"] }).length).toBeGreaterThanOrEqual(1);
  });

  it("parses nemesis lists with clear errors", () => {
    expect(parseNemesisKinds("kill,pause")).toEqual(["kill", "pause"]);
    expect(parseNemesisKinds("all")).toEqual(nemesisKinds);
    expect(parseNemesisKinds("kill,membership")).toEqual(["kill", "membership"]);
    expect(parseNemesisKinds("none")).toEqual([]);
    expect(parseNemesisKinds("kill,flood")).toEqual({ error: expect.stringContaining('unknown nemesis "flood"') });
  });
});

/**
 * A cluster stand-in that records what the nemesis did to it. Nodes 1..3 hold members 1..3; node 4 is
 * an empty slot. A removal empties the node's slot; a join gives it the next member id.
 */
function fakeControl(leader: number | undefined): NemesisControl & { log: string[]; up: Set<number>; memberOf: Map<number, number> } {
  const log: string[] = [];
  const up = new Set(three);
  const memberOf = new Map(three.map((id) => [id, id]));
  let nextMember = 4;
  return {
    ids: [...three, 4],
    baseSize: 3,
    log,
    up,
    memberOf,
    members: () => [...memberOf.keys()].sort(),
    emptySlots: () => [1, 2, 3, 4].filter((id) => !memberOf.has(id) && !up.has(id)),
    leader: async () => leader,
    kill: async (id) => {
      up.delete(id);
      log.push(`kill ${id}`);
    },
    restart: (id) => {
      up.add(id);
      log.push(`restart ${id}`);
    },
    wipe: (id) => log.push(`wipe ${id}`),
    pause: (id) => log.push(`pause ${id}`),
    resume: (id) => log.push(`resume ${id}`),
    isUp: (id) => up.has(id) && memberOf.has(id),
    addNetworkFault: (id, fault) => log.push(`net+ ${id} ${fault.kind} ${names(fault.links).join(" ")}`),
    removeNetworkFault: (id) => log.push(`net- ${id}`),
    transferLeadership: async (to) => {
      log.push(`transfer ${to}`);
      return to;
    },
    removeMember: async (id) => {
      const member = memberOf.get(id);
      memberOf.delete(id);
      up.delete(id);
      log.push(`remove ${id}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
      return `removed member ${member}`;
    },
    joinMember: async (id) => {
      memberOf.set(id, nextMember++);
      up.add(id);
      log.push(`join ${id}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
      return `joined as member ${memberOf.get(id)}`;
    },
  };
}

describe("nemesis runner", () => {
  const clock = (): (() => number) => {
    const start = Date.now();
    return () => Date.now() - start;
  };

  it("applies and heals each fault, resolving the leader when the fault starts", async () => {
    const plan: PlannedFault[] = [
      { id: 1, startMs: 0, endMs: 40, spec: { kind: "kill", target: { kind: "leader" } } },
      {
        id: 2,
        startMs: 10,
        endMs: 60,
        spec: { kind: "partition", shape: "isolate", focus: { kind: "node", id: 3 }, mode: "drop", seed: 1 },
      },
      { id: 3, startMs: 70, endMs: 70, spec: { kind: "transfer", to: 1 } },
      { id: 4, startMs: 80, endMs: 100, spec: { kind: "pause", target: { kind: "node", id: 2 } } },
    ];
    const control = fakeControl(2);
    const runner = new NemesisRunner({ control, plan, nowMs: clock() });
    await runner.run();
    expect(control.log).toEqual(["kill 2", "net+ 2 cut 1->3 2->3 3->1 3->2", "restart 2", "net- 2", "transfer 1", "pause 2", "resume 2"]);
    expect(runner.timeline.map((e) => e.status)).toEqual(["healed", "healed", "done", "healed"]);
    expect(runner.timeline[0]?.nodes).toEqual([2]);
    expect(runner.timeline[0]?.note).toBe("the leader was node 2");
  });

  it("skips a process fault on a node another fault holds, and heals everything when stopped early", async () => {
    const plan: PlannedFault[] = [
      { id: 1, startMs: 0, endMs: 10_000, spec: { kind: "pause", target: { kind: "node", id: 1 } } },
      { id: 2, startMs: 5, endMs: 10_000, spec: { kind: "kill", target: { kind: "leader" } } },
      { id: 3, startMs: 5_000, endMs: 10_000, spec: { kind: "latency", delayMs: 50, scope: { kind: "all" } } },
    ];
    const control = fakeControl(1);
    const runner = new NemesisRunner({ control, plan, nowMs: clock() });
    const running = runner.run();
    setTimeout(() => runner.stop(), 50);
    await running;
    expect(control.log).toEqual(["pause 1", "resume 1"]);
    expect(runner.timeline.map((e) => [e.faultId, e.status])).toEqual([
      [1, "healed"],
      [2, "skipped"],
    ]);
    expect(runner.timeline[1]?.note).toContain("held by fault 1");
  });

  it("takes a disk for good: kill, wipe, restart, never healed, the node held against other process faults", async () => {
    const plan: PlannedFault[] = [
      { id: 1, startMs: 0, endMs: 0, spec: { kind: "disk-loss", target: { kind: "leader" } } },
      { id: 2, startMs: 20, endMs: 40, spec: { kind: "kill", target: { kind: "node", id: 2 } } },
      { id: 3, startMs: 50, endMs: 70, spec: { kind: "pause", target: { kind: "node", id: 3 } } },
    ];
    const control = fakeControl(2);
    const runner = new NemesisRunner({ control, plan, nowMs: clock() });
    await runner.run();
    expect(control.log).toEqual(["kill 2", "wipe 2", "restart 2", "pause 3", "resume 3"]);
    expect(runner.timeline.map((e) => [e.faultId, e.status])).toEqual([
      [1, "done"],
      [2, "skipped"],
      [3, "healed"],
    ]);
    expect(runner.timeline[1]?.note).toContain("held by fault 1");
    expect(runner.diskLosses()).toEqual([{ id: 2, faultId: 1, atMs: runner.timeline[0]?.startMs, replaced: false }]);
  });

  it("moves a disk loss to a free node when its target is held by another fault", async () => {
    const plan: PlannedFault[] = [
      { id: 1, startMs: 0, endMs: 60, spec: { kind: "kill", target: { kind: "node", id: 1 } } },
      { id: 2, startMs: 20, endMs: 20, spec: { kind: "disk-loss", target: { kind: "node", id: 1 } } },
    ];
    const control = fakeControl(2);
    const runner = new NemesisRunner({ control, plan, nowMs: clock() });
    await runner.run();
    expect(control.log).toEqual(["kill 1", "kill 2", "wipe 2", "restart 2", "restart 1"]);
    expect(runner.timeline[1]?.note).toBe("node 1 is held by fault 1; took node 2; restarted on an empty data directory");
    expect(runner.diskLosses().map((loss) => loss.id)).toEqual([2]);
  });

  it("falls back to a live node when no leader answers, and records a failed transfer", async () => {
    const control = fakeControl(undefined);
    control.transferLeadership = async () => {
      throw new Error("no leader to transfer from");
    };
    const plan: PlannedFault[] = [
      { id: 1, startMs: 0, endMs: 20, spec: { kind: "pause", target: { kind: "leader" } } },
      { id: 2, startMs: 30, endMs: 30, spec: { kind: "transfer", to: 0 } },
    ];
    const runner = new NemesisRunner({ control, plan, nowMs: clock() });
    await runner.run();
    expect(runner.timeline[0]?.note).toBe("no leader answered; chose node 1");
    expect(runner.timeline[1]?.status).toBe("failed");
    expect(runner.timeline[1]?.note).toContain("no leader to transfer from");
  });

  it("replaces a member: removes it, starts it again with --join, holds it against other process faults, one change at a time", async () => {
    const plan: PlannedFault[] = [
      { id: 1, startMs: 0, endMs: 0, spec: { kind: "membership", op: "replace", target: { kind: "leader" } } },
      { id: 2, startMs: 10, endMs: 30, spec: { kind: "kill", target: { kind: "node", id: 2 } } },
      { id: 3, startMs: 15, endMs: 15, spec: { kind: "membership", op: "grow", target: { kind: "leader" } } },
      { id: 4, startMs: 100, endMs: 150, spec: { kind: "pause", target: { kind: "node", id: 2 } } },
    ];
    const control = fakeControl(2);
    const runner = new NemesisRunner({ control, plan, nowMs: clock() });
    await runner.run();
    expect(control.log).toEqual(["remove 2", "join 2", "join 4", "pause 2", "resume 2"]);
    expect(runner.timeline.map((e) => [e.faultId, e.status])).toEqual([
      [1, "done"],
      [2, "skipped"],
      [3, "done"],
      [4, "healed"],
    ]);
    expect(runner.timeline[0]?.nodes).toEqual([2]);
    expect(runner.timeline[0]?.note).toBe("the leader was node 2; removed member 2; joined as member 4");
    expect(runner.timeline[1]?.note).toContain("held by fault 1");
    expect(runner.timeline[2]?.note).toBe("waited for membership change 1 to end; joined as member 5");
    expect(control.memberOf.get(2)).toBe(4);
  });

  it("grows into the empty slot and shrinks back, never below the founding size; partitions split the members of the moment", async () => {
    const plan: PlannedFault[] = [
      { id: 1, startMs: 0, endMs: 0, spec: { kind: "membership", op: "shrink", target: { kind: "node", id: 1 } } },
      { id: 2, startMs: 50, endMs: 50, spec: { kind: "membership", op: "grow", target: { kind: "leader" } } },
      {
        id: 3,
        startMs: 100,
        endMs: 120,
        spec: { kind: "partition", shape: "isolate", focus: { kind: "node", id: 4 }, mode: "drop", seed: 1 },
      },
      { id: 4, startMs: 150, endMs: 150, spec: { kind: "membership", op: "shrink", target: { kind: "node", id: 1 } } },
      {
        id: 5,
        startMs: 200,
        endMs: 220,
        spec: { kind: "partition", shape: "isolate", focus: { kind: "node", id: 1 }, mode: "drop", seed: 1 },
      },
    ];
    const control = fakeControl(3);
    const runner = new NemesisRunner({ control, plan, nowMs: clock() });
    await runner.run();
    expect(control.log).toEqual([
      "join 4",
      "net+ 3 cut 1->4 2->4 3->4 4->1 4->2 4->3",
      "net- 3",
      "remove 1",
      "net+ 5 cut 2->3 2->4 3->2 4->2",
      "net- 5",
    ]);
    expect(runner.timeline.map((e) => e.status)).toEqual(["skipped", "done", "healed", "done", "healed"]);
    expect(runner.timeline[0]?.note).toBe("the cluster has 3 members, its founding size");
    expect(runner.timeline[4]?.note).toBe("node 1 holds no member; took node 2");
    expect(control.members()).toEqual([2, 3, 4]);
  });

  it("replaces a member that lost its disk at the next membership change, once it refused to start", async () => {
    const plan: PlannedFault[] = [
      { id: 1, startMs: 0, endMs: 0, spec: { kind: "disk-loss", target: { kind: "node", id: 3 } } },
      { id: 2, startMs: 10, endMs: 10, spec: { kind: "membership", op: "grow", target: { kind: "leader" } } },
      { id: 3, startMs: 40, endMs: 40, spec: { kind: "membership", op: "grow", target: { kind: "node", id: 1 } } },
      { id: 4, startMs: 300, endMs: 320, spec: { kind: "kill", target: { kind: "node", id: 3 } } },
    ];
    const control = fakeControl(1);
    const runner = new NemesisRunner({ control, plan, nowMs: clock() });
    const running = runner.run();
    // The wiped node refuses to start (exit code 6) between the two changes.
    setTimeout(() => control.up.delete(3), 25);
    await running;
    expect(control.log).toEqual(["kill 3", "wipe 3", "restart 3", "remove 3", "join 3", "join 4", "kill 3", "restart 3"]);
    expect(runner.timeline.map((e) => [e.faultId, e.status])).toEqual([
      [1, "done"],
      [2, "done"],
      [3, "done"],
      [4, "healed"],
    ]);
    // The first change waits for the refusal, then replaces the lost node, whatever it was planned as; the
    // next one is as planned.
    expect(runner.timeline[1]?.note).toBe("replaces node 3, which lost its disk (planned: grow); removed member 3; joined as member 4");
    expect(runner.timeline[2]?.note).toBe("waited for membership change 2 to end; joined as member 5");
    expect(runner.diskLosses()).toEqual([{ id: 3, faultId: 1, atMs: runner.timeline[0]?.startMs, replaced: true }]);
  });

  it("waits for a membership change in progress before a disk loss", async () => {
    const plan: PlannedFault[] = [
      { id: 1, startMs: 0, endMs: 0, spec: { kind: "membership", op: "replace", target: { kind: "node", id: 1 } } },
      { id: 2, startMs: 5, endMs: 5, spec: { kind: "disk-loss", target: { kind: "node", id: 2 } } },
    ];
    const control = fakeControl(3);
    const runner = new NemesisRunner({ control, plan, nowMs: clock() });
    await runner.run();
    expect(control.log).toEqual(["remove 1", "join 1", "kill 2", "wipe 2", "restart 2"]);
    expect(runner.timeline[1]?.note).toBe("waited for membership change 1 to end; restarted on an empty data directory");
  });

  it("takes disk losses and membership changes one at a time, in plan order, and no change once the faulty period is over", async () => {
    const plan: PlannedFault[] = [
      { id: 1, startMs: 0, endMs: 0, spec: { kind: "membership", op: "replace", target: { kind: "node", id: 1 } } },
      { id: 2, startMs: 5, endMs: 5, spec: { kind: "disk-loss", target: { kind: "node", id: 2 } } },
      { id: 3, startMs: 10, endMs: 10, spec: { kind: "membership", op: "grow", target: { kind: "leader" } } },
    ];
    const control = fakeControl(3);
    const runner = new NemesisRunner({ control, plan, nowMs: clock() });
    const running = runner.run();
    // The wiped node refuses to start once the disk loss is done.
    const refuse = setInterval(() => {
      if (runner.diskLosses().length > 0) control.up.delete(2);
    }, 5);
    await running;
    clearInterval(refuse);
    // The grow came after both, and replaced the lost node instead (the lost voter must go first).
    expect(control.log).toEqual(["remove 1", "join 1", "kill 2", "wipe 2", "restart 2", "remove 2", "join 2"]);
    expect(runner.timeline[1]?.note).toBe("waited for membership change 1 to end; restarted on an empty data directory");
    expect(runner.timeline[2]?.note).toBe(
      "waited for membership change 1 to end; waited for disk loss 2 to end; replaces node 2, which lost its disk (planned: grow); removed member 2; joined as member 5",
    );

    const late = fakeControl(3);
    const ended = new NemesisRunner({ control: late, plan, nowMs: clock(), endMs: 20 });
    await ended.run();
    // The disk loss still happens (once per run, judged after the heal); the second change does not.
    expect(late.log).toEqual(["remove 1", "join 1", "kill 2", "wipe 2", "restart 2"]);
    expect(ended.timeline.slice(1).map((e) => [e.status, e.note])).toEqual([
      ["done", "waited for membership change 1 to end; restarted on an empty data directory"],
      ["skipped", "waited for membership change 1 to end; waited for disk loss 2 to end; the faulty period was over"],
    ]);
  });
});
