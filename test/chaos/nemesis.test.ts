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

  it("parses nemesis lists with clear errors", () => {
    expect(parseNemesisKinds("kill,pause")).toEqual(["kill", "pause"]);
    expect(parseNemesisKinds("all")).toEqual(nemesisKinds);
    expect(parseNemesisKinds("none")).toEqual([]);
    expect(parseNemesisKinds("kill,flood")).toEqual({ error: expect.stringContaining('unknown nemesis "flood"') });
  });
});

/** A cluster stand-in that records what the nemesis did to it. */
function fakeControl(leader: number | undefined): NemesisControl & { log: string[]; up: Set<number> } {
  const log: string[] = [];
  const up = new Set(three);
  return {
    ids: three,
    log,
    up,
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
    isUp: (id) => up.has(id),
    addNetworkFault: (id, fault) => log.push(`net+ ${id} ${fault.kind} ${names(fault.links).join(" ")}`),
    removeNetworkFault: (id) => log.push(`net- ${id}`),
    transferLeadership: async (to) => {
      log.push(`transfer ${to}`);
      return to;
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
    expect(runner.diskLosses()).toEqual([{ id: 2, faultId: 1, atMs: runner.timeline[0]?.startMs }]);
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
});
