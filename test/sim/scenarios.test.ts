import { describe, expect, it } from "vitest";
import type { NodeId, Status } from "../../src/core/index.js";
import type { SimParams } from "./params.js";
import { runSimulation, type ScriptedFault, type SimResult, type SimView } from "./simulation.js";

/**
 * Targeted scenarios: scripted faults on a pinned, calm environment (clients still run), each telling
 * one story and checking what the cluster did along the way, on top of every checker of the simulator.
 * Timing: a tick every 4 steps and electionTicks 10, so an election timeout is 40..80 steps.
 */
const TICK_STEPS = 4;
const ELECTION_STEPS = 10 * TICK_STEPS;

function pinned(nodes: number): Partial<SimParams> {
  return {
    electionTicks: 10,
    heartbeatTicks: 1,
    stepsPerTick: Array.from({ length: nodes }, () => TICK_STEPS),
    fsyncStepsMax: 2,
    earlySends: true,
    unblockedRate: 0.8,
    tornWrites: true,
    preVote: true,
    checkQuorum: true,
    compactRate: 0.01,
    restartReplayRate: 0.5,
  };
}

interface Recorder {
  readonly at: Map<number, { statuses: Map<NodeId, Status | undefined>; committed: number }>;
  observe(view: SimView): void;
}

/** Keeps every node's status at each step, so a scenario can ask what happened when. */
function recorder(): Recorder {
  const at = new Map<number, { statuses: Map<NodeId, Status | undefined>; committed: number }>();
  return {
    at,
    observe(view) {
      const statuses = new Map<NodeId, Status | undefined>();
      for (const id of view.nodeIds) statuses.set(id, view.status(id));
      at.set(view.now(), { statuses, committed: view.highestCommitted() });
    },
  };
}

function run(nodes: number, steps: number, script: ScriptedFault[], seed = 7): { result: SimResult; rec: Recorder } {
  const rec = recorder();
  const result = runSimulation({ seed, nodes, steps, script, params: pinned(nodes) }, (view) => rec.observe(view));
  if (result.violations.length > 0) throw new Error(JSON.stringify(result.violations, null, 2));
  return { result, rec };
}

function leaderAt(rec: Recorder, step: number): { id: NodeId; term: number } | undefined {
  let best: { id: NodeId; term: number } | undefined;
  for (const [id, s] of rec.at.get(step)?.statuses ?? []) {
    if (s?.role === "leader" && (best === undefined || s.term > best.term)) best = { id, term: s.term };
  }
  return best;
}

function committedAt(rec: Recorder, step: number): number {
  const snapshot = rec.at.get(step);
  if (snapshot === undefined) throw new Error(`no record of step ${step}`);
  return snapshot.committed;
}

/** The first step in [from, to) where `predicate` holds, or undefined. */
function firstStep(
  rec: Recorder,
  from: number,
  to: number,
  predicate: (statuses: Map<NodeId, Status | undefined>) => boolean,
): number | undefined {
  for (let step = from; step < to; step++) {
    const snapshot = rec.at.get(step);
    if (snapshot !== undefined && predicate(snapshot.statuses)) return step;
  }
  return undefined;
}

describe("simulator scenarios", () => {
  it("a leader isolated with a minority steps down, the majority elects a new leader and keeps committing", () => {
    const { rec } = run(5, 1600, [
      { at: 500, action: { kind: "isolateLeader", withMinority: true } },
      { at: 1200, action: { kind: "heal" } },
    ]);
    const old = leaderAt(rec, 499);
    expect(old).toBeDefined();
    if (old === undefined) return;
    // isolateLeader puts the leader with the lowest other id on the minority side.
    const minority = [old.id, [1, 2, 3, 4, 5].filter((id) => id !== old.id)[0]];

    const elected = firstStep(rec, 500, 1200, (statuses) =>
      [...statuses].some(([id, s]) => s?.role === "leader" && s.term > old.term && !minority.includes(id)),
    );
    expect(elected).toBeDefined();
    expect((elected ?? Infinity) - 500).toBeLessThan(6 * ELECTION_STEPS);

    // CheckQuorum: without hearing a majority for an election timeout the old leader steps down.
    const steppedDown = firstStep(rec, 500, 1200, (statuses) => statuses.get(old.id)?.role !== "leader");
    expect(steppedDown).toBeDefined();
    expect((steppedDown ?? Infinity) - 500).toBeLessThan(3 * ELECTION_STEPS);

    expect(committedAt(rec, 1199)).toBeGreaterThan(committedAt(rec, elected ?? 0));
    // Back in the majority's term, following its leader.
    const after = rec.at.get(1300)?.statuses.get(old.id);
    expect(after?.role).toBe("follower");
    expect(after?.term).toBeGreaterThan(old.term);
  });

  it("partitions that heal: the side with a majority makes progress and everyone converges", () => {
    const { rec } = run(5, 2000, [
      {
        at: 300,
        action: {
          kind: "partition",
          groups: [
            [1, 2],
            [3, 4, 5],
          ],
        },
      },
      { at: 800, action: { kind: "heal" } },
      { at: 1100, action: { kind: "partition", groups: [[1, 5], [2, 3], [4]] } },
      { at: 1400, action: { kind: "heal" } },
      {
        at: 1500,
        action: {
          kind: "partition",
          groups: [
            [2, 4, 5],
            [1, 3],
          ],
        },
      },
    ]);
    const majorityLeader = firstStep(rec, 300, 800, (statuses) =>
      [3, 4, 5].some((id) => statuses.get(id)?.role === "leader" && statuses.get(id)?.leader === id),
    );
    expect(majorityLeader).toBeDefined();
    expect(committedAt(rec, 799)).toBeGreaterThan(committedAt(rec, 300));
    // Three groups and no majority anywhere: nothing new commits until the heal.
    expect(committedAt(rec, 1399)).toBeLessThanOrEqual(committedAt(rec, 1100 + 2 * ELECTION_STEPS));
    expect(committedAt(rec, 1999)).toBeGreaterThan(committedAt(rec, 1500));
  });

  it("a crashed majority stops progress without losing anything; restarted, the cluster recovers", () => {
    const { rec } = run(3, 1800, [
      { at: 500, action: { kind: "crash", target: "majority" } },
      { at: 1200, action: { kind: "restartAll" } },
    ]);
    const survivors = [...(rec.at.get(600)?.statuses ?? [])].filter(([, s]) => s !== undefined);
    expect(survivors).toHaveLength(1);
    expect(committedAt(rec, 1199)).toBe(committedAt(rec, 600));
    const recovered = firstStep(rec, 1200, 1800, (statuses) => [...statuses.values()].some((s) => s?.role === "leader"));
    expect(recovered).toBeDefined();
    expect(committedAt(rec, 1799)).toBeGreaterThan(committedAt(rec, 1199));
  });

  it("every node crashing at once (torn writes) loses no committed entry", () => {
    const { rec, result } = run(3, 1500, [
      { at: 400, action: { kind: "crash", target: [1, 2, 3] } },
      { at: 420, action: { kind: "restartAll" } },
      { at: 900, action: { kind: "crash", target: [1, 2, 3] } },
      { at: 901, action: { kind: "restartAll" } },
    ]);
    expect(result.crashes).toBe(6);
    expect(committedAt(rec, 1499)).toBeGreaterThan(committedAt(rec, 900));
  });

  it("a leader that can send but not hear steps down, and a new leader takes over", () => {
    const { rec } = run(3, 1400, [
      { at: 400, action: { kind: "deafenLeader" } },
      { at: 1000, action: { kind: "heal" } },
    ]);
    const old = leaderAt(rec, 399);
    expect(old).toBeDefined();
    if (old === undefined) return;
    const replaced = firstStep(rec, 400, 1000, (statuses) =>
      [...statuses].some(([id, s]) => id !== old.id && s?.role === "leader" && s.term > old.term),
    );
    expect(replaced).toBeDefined();
    expect(committedAt(rec, 999)).toBeGreaterThan(committedAt(rec, replaced ?? 0));
  });
});
