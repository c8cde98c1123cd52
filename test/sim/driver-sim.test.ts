import { describe, expect, it } from "vitest";
import { runDriverSimulation, type DriverSimParams } from "./driver-sim/driver-simulation.js";
import { formatDriverFailure, runDriverSeeds } from "./driver-sim/run-driver-seeds.js";

/**
 * The real Driver and KvStore in virtual time (driver-sim/, README "The real driver in virtual time").
 * DRIVER_SIM_SEEDS=500 npx vitest run test/sim/driver-sim.test.ts (or `npm run sim -- --driver --seeds
 * 500`) runs the long version on demand.
 */
const SEEDS = Number(process.env.DRIVER_SIM_SEEDS ?? 30);
const BATCHES = 2;
const BATCH_TIMEOUT_MS = 300_000;

describe("the real Driver in the deterministic simulator", () => {
  const perBatch = Math.ceil(SEEDS / BATCHES);
  for (let batch = 0; batch < BATCHES; batch++) {
    const firstSeed = 1 + batch * perBatch;
    const seeds = Math.min(perBatch, SEEDS - batch * perBatch);
    it(
      `seeds ${firstSeed}..${firstSeed + seeds - 1}: acks after durability, one state machine, linearizable`,
      { timeout: BATCH_TIMEOUT_MS },
      async () => {
        const summary = await runDriverSeeds({ firstSeed, seeds, nodes: undefined });
        if (summary.failures.length > 0) throw new Error(summary.failures.map(formatDriverFailure).join("\n"));
        // "No violation" means something only if the runs did real work under real faults.
        expect(summary.elections).toBeGreaterThan(seeds);
        expect(summary.commits).toBeGreaterThan(100 * seeds);
        expect(summary.crashes).toBeGreaterThan(seeds);
        expect(summary.okOperations).toBeGreaterThan(100 * seeds);
        expect(summary.snapshotsInstalled).toBeGreaterThan(0);
      },
    );
  }

  it("is deterministic: a seed replays event for event, with no real timer or clock", async () => {
    const realTime = watchRealTime();
    let first;
    let second;
    try {
      first = await runDriverSimulation({ seed: 4242, nodes: 5, chaosMs: 1500, trace: true });
      second = await runDriverSimulation({ seed: 4242, nodes: 5, chaosMs: 1500, trace: true });
    } finally {
      realTime.restore();
    }
    expect(realTime.calls).toEqual([]);
    expect(second.traceHash).toBe(first.traceHash);
    expect(second.trace).toEqual(first.trace);
    expect(second.history).toEqual(first.history);
    expect(first.trace.length).toBeGreaterThan(1000);
    const other = await runDriverSimulation({ seed: 4243, nodes: 5, chaosMs: 1500, trace: true });
    expect(other.traceHash).not.toBe(first.traceHash);
  });

  // The self-tests: a disk whose save() resolves before the write is durable must be caught, both by the
  // check of what leaves a process and, with that check off, by its consequences (a crash loses an
  // acknowledged write: another command lands at its index, or a client sees it vanish).
  const broken: Partial<DriverSimParams> = { unsafeResolveBeforeDurable: true, fsyncMsMax: 20, crashRate: 0.03, downMsMax: 100 };

  it("catches a disk that acknowledges writes before they are durable", async () => {
    const kinds: string[] = [];
    for (let seed = 1; seed <= 5; seed++) {
      const result = await runDriverSimulation({ seed, nodes: 3, params: broken });
      kinds.push(result.violations[0]?.kind ?? "none");
    }
    expect(kinds).toEqual(["ackBeforeDurable", "ackBeforeDurable", "ackBeforeDurable", "ackBeforeDurable", "ackBeforeDurable"]);
  });

  it("catches the data such a disk loses with the durability check off", { timeout: BATCH_TIMEOUT_MS }, async () => {
    const caught: string[] = [];
    for (let seed = 1; seed <= 10; seed++) {
      // A follower that lost entries it acknowledged can leave its leader probing it forever (the leader's
      // match index never goes back): such a run ends at its event budget as a liveness failure.
      const result = await runDriverSimulation({ seed, nodes: 3, params: { ...broken, checkDurablePromises: false, eventsMax: 100_000 } });
      const first = result.violations[0];
      if (first !== undefined) caught.push(first.kind);
    }
    const dataLoss = ["lostWrite", "stateMachineSafety", "linearizability", "divergedStores"];
    expect(caught.filter((kind) => dataLoss.includes(kind)).length).toBeGreaterThanOrEqual(1);
    for (const kind of caught) expect([...dataLoss, "liveness"]).toContain(kind);
  });
});

/**
 * Records every use of the host's clock and timers made from raftkv's own code (src/) or the simulator
 * while installed; the test runner's own uses are let through unrecorded.
 */
function watchRealTime(): { calls: string[]; restore: () => void } {
  const calls: string[] = [];
  const ours = (): boolean => {
    const stack = new Error().stack ?? "";
    return stack
      .split("\n")
      .slice(3)
      .some((line) => line.includes("/src/") || line.includes("/test/sim/driver-sim/"));
  };
  const originals = {
    setTimeout: globalThis.setTimeout,
    setInterval: globalThis.setInterval,
    dateNow: Date.now,
    perfNow: performance.now.bind(performance),
  };
  const record = (what: string): void => {
    if (ours()) calls.push(`${what}: ${(new Error().stack ?? "").split("\n").slice(3, 6).join(" | ")}`);
  };
  globalThis.setTimeout = Object.assign((...args: Parameters<typeof setTimeout>) => {
    record("setTimeout");
    return originals.setTimeout(...args);
  }, originals.setTimeout);
  globalThis.setInterval = Object.assign((...args: Parameters<typeof setInterval>) => {
    record("setInterval");
    return originals.setInterval(...args);
  }, originals.setInterval);
  Date.now = () => {
    record("Date.now");
    return originals.dateNow();
  };
  performance.now = () => {
    record("performance.now");
    return originals.perfNow();
  };
  return {
    calls,
    restore: () => {
      globalThis.setTimeout = originals.setTimeout;
      globalThis.setInterval = originals.setInterval;
      Date.now = originals.dateNow;
      performance.now = originals.perfNow;
    },
  };
}
