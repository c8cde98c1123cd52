import { describe, expect, it } from "vitest";
import type { NodeId } from "../../src/core/index.js";
import { formatFailure, runSeeds, type SimFlags, type Summary } from "./run-seeds.js";
import { runSimulation, type SimResult, type SimView } from "./simulation.js";

/**
 * The membership nemesis in CI (issue 12): seeds with `--membership` (every seed changes the membership,
 * about 8 changes asked for in 2000 chaos steps: spares added as learners and promoted, members removed,
 * the leader among them, replaced under new ids), interleaved with every other fault, and every checker
 * on. 300 seeds take about 35 s of CPU. `SIM_MEMBERSHIP_SEEDS=2000 npx vitest run
 * test/sim/membership.test.ts` (or `npm run sim -- --membership --seeds 2000`) runs the long version.
 */
const SEEDS = Number(process.env.SIM_MEMBERSHIP_SEEDS ?? 300);
const BATCHES = 2;
const STEPS = 2000;
const FLAGS: SimFlags = { membership: true };
const BATCH_TIMEOUT_MS = 300_000;
/**
 * Seeds left out because of a known bug: none. (Seed 102 was: two learners that joined replayed the log
 * to a membership that did not name the leader, and ignored it; fixed in ccc2631.)
 */
const KNOWN_FAILING = new Set<number>();

function expectNoFailures(summary: Summary): void {
  const failures = summary.failures.filter((result) => !KNOWN_FAILING.has(result.seed));
  if (failures.length > 0) {
    throw new Error(failures.map((result) => formatFailure(result, STEPS, FLAGS)).join("\n"));
  }
}

describe("membership nemesis", () => {
  const perBatch = Math.ceil(SEEDS / BATCHES);
  for (let batch = 0; batch < BATCHES; batch++) {
    const firstSeed = 1 + batch * perBatch;
    const seeds = Math.min(perBatch, SEEDS - batch * perBatch);
    it(`seeds ${firstSeed}..${firstSeed + seeds - 1} change the membership and keep every check`, { timeout: BATCH_TIMEOUT_MS }, () => {
      const results: SimResult[] = [];
      const summary = runSeeds({ firstSeed, seeds, nodes: undefined, steps: STEPS, flags: FLAGS }, (result) => results.push(result));
      expectNoFailures(summary);
      expect(summary.membershipSeeds).toBe(seeds);
      // The nemesis must have done real work for "no violation" to mean anything.
      expect(summary.confCommitted).toBeGreaterThan(3 * seeds);
      const total = (key: "leaderRemovals" | "added" | "retired" | "refused"): number =>
        results.reduce((sum, r) => sum + r.membership[key], 0);
      expect(total("leaderRemovals")).toBeGreaterThan(seeds / 5);
      expect(total("added")).toBeGreaterThan(seeds);
      expect(total("retired")).toBeGreaterThan(seeds);
      expect(total("refused")).toBeGreaterThan(0);
      // Runs end with every size of voting membership the nemesis makes, and with learners.
      const sizes = new Set(results.map((r) => r.finalConf.voters.length));
      for (const size of [1, 2, 3, 4, 5]) expect(sizes).toContain(size);
      expect(results.some((r) => r.finalConf.learners.length > 0)).toBe(true);
      expect(summary.okOperations).toBeGreaterThan(100 * seeds);
    });
  }

  it("is deterministic: a seed with the nemesis replays event for event", () => {
    const params = { membershipRate: 0.004 };
    const first = runSimulation({ seed: 79, nodes: 3, steps: 1500, trace: true, params });
    const second = runSimulation({ seed: 79, nodes: 3, steps: 1500, trace: true, params });
    expect(second).toEqual(first);
    expect(first.membership).toMatchObject({ committed: 6, leaderRemovals: 1 });
    expect(first.trace.some((line) => line.includes("membership:"))).toBe(true);
  });

  it("has no spare node and changes nothing when the nemesis is off", () => {
    const result = runSimulation({ seed: 77, nodes: 3, steps: 1500, trace: true, params: { membershipRate: 0 } });
    expect(result.membershipNemesis).toBe(false);
    expect(result.membership).toEqual({ proposed: 0, leaderRemovals: 0, refused: 0, committed: 0, added: 0, retired: 0 });
    expect(result.finalConf).toEqual({ voters: [1, 2, 3], learners: [] });
    expect(result.violations).toEqual([]);
  });

  it("replaces the leader: removed, a new id added as learner and promoted, the old one stopped", () => {
    // A calm, scripted run: the leader removes itself, then a spare joins and is promoted.
    let leaderAtRemoval: NodeId | undefined;
    const observe = (view: SimView): void => {
      if (view.now() !== 400) return;
      leaderAtRemoval = view.nodeIds.find((id) => view.status(id)?.role === "leader");
    };
    const result = runSimulation(
      {
        seed: 11,
        nodes: 3,
        steps: 2000,
        trace: true,
        script: [
          { at: 400, action: { kind: "conf", op: "remove", target: "leader" } },
          { at: 900, action: { kind: "conf", op: "addLearner", target: "spare" } },
          { at: 1500, action: { kind: "conf", op: "promote", target: "learner" } },
        ],
        params: { promoteLagMax: 1_000_000 },
      },
      observe,
    );
    if (result.violations.length > 0) throw new Error(formatFailure(result, 2000));
    expect(leaderAtRemoval).toBeDefined();
    const kept = [1, 2, 3].filter((id) => id !== leaderAtRemoval);
    expect(result.finalConf).toEqual({ voters: [...kept, 4], learners: [] });
    expect(result.membership).toMatchObject({ proposed: 3, leaderRemovals: 1, committed: 3, added: 1, retired: 1 });
    expect(result.trace.some((line) => line.includes(`node ${leaderAtRemoval} stopped for good`))).toBe(true);
  });
});
