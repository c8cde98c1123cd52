import { describe, expect, it } from "vitest";
import { formatFailure, runSeeds, type Summary } from "./run-seeds.js";
import { runSimulation } from "./simulation.js";

/**
 * The simulator in CI: 500 seeds (each picks 3 or 5 nodes) in five batches, kept to a few tens of
 * seconds of CPU. `SIM_SEEDS=20000 npx vitest run test/sim/sim.test.ts` (or `npm run sim -- --seeds
 * 20000`) runs the long version on demand.
 */
const BATCHES = 5;
const SEEDS = Number(process.env.SIM_SEEDS ?? 500);
const STEPS = 2000;
const BATCH_TIMEOUT_MS = 300_000;

function expectNoFailures(summary: Summary): void {
  if (summary.failures.length > 0) {
    throw new Error(summary.failures.map((result) => formatFailure(result, STEPS)).join("\n"));
  }
}

describe("deterministic cluster simulation", () => {
  const perBatch = Math.ceil(SEEDS / BATCHES);
  for (let batch = 0; batch < BATCHES; batch++) {
    const firstSeed = 1 + batch * perBatch;
    const seeds = Math.min(perBatch, SEEDS - batch * perBatch);
    it(`seeds ${firstSeed}..${firstSeed + seeds - 1} keep every safety, liveness and linearizability check`, { timeout: BATCH_TIMEOUT_MS }, () => {
      const summary = runSeeds({ firstSeed, seeds, nodes: undefined, steps: STEPS });
      expectNoFailures(summary);
      // The runs must have done real work for "no violation" to mean anything.
      expect(summary.elections).toBeGreaterThan(seeds);
      expect(summary.commits).toBeGreaterThan(100 * seeds);
      expect(summary.faults).toBeGreaterThan(5 * seeds);
      expect(summary.okOperations).toBeGreaterThan(100 * seeds);
    });
  }

  it("is deterministic: a seed replays event for event", () => {
    const first = runSimulation({ seed: 4242, nodes: 5, steps: 1500, trace: true });
    const second = runSimulation({ seed: 4242, nodes: 5, steps: 1500, trace: true });
    expect(second).toEqual(first);
    expect(first.trace.length).toBeGreaterThan(100);
    const other = runSimulation({ seed: 4243, nodes: 5, steps: 1500, trace: true });
    expect(other.trace).not.toEqual(first.trace);
  });

  it("catches a driver that sends votes and acknowledgements before they are durable", () => {
    // The self-test of the simulator: break the Ready contract on purpose and expect the checkers to
    // notice within a few seeds (committed entries not durable on a majority, or their consequences).
    const caught: string[] = [];
    for (let seed = 1; seed <= 10; seed++) {
      const result = runSimulation({
        seed,
        nodes: 3,
        steps: 2000,
        params: { unsafeSendBeforeDurable: true, crashRate: 0.01, fsyncStepsMax: 8 },
      });
      const first = result.violations[0];
      if (first !== undefined) caught.push(first.kind);
    }
    expect(caught.length).toBeGreaterThanOrEqual(5);
    expect(caught).toContain("committedLost");
  });
});
