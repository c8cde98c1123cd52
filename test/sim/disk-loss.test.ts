import { describe, expect, it } from "vitest";
import { MemoryStorage, type NodeId } from "../../src/core/index.js";
import { judgeBootstrap } from "../../src/driver/bootstrap-check.js";
import { createPrng } from "../../src/lib/prng.js";
import { Incarnations, probeAnswers, type MemberPhase, type ProbeView } from "./disk-loss.js";
import type { SimParams } from "./params.js";
import { runSimulation, type DiskLossReport, type ScriptedFault, type SimResult } from "./simulation.js";

/**
 * Issue 9 in the simulator: the model of the bootstrap check's answers and of incarnations, and scripted
 * stories of a node that loses its disk, with the guards on and off.
 */

const IDS = [1, 2, 3];

function storage(term: number, entries = 0): MemoryStorage {
  const s = new MemoryStorage({ voters: IDS, learners: [] });
  s.append(
    Array.from({ length: entries }, (_, i) => ({ index: i + 1, term: Math.max(1, term), type: "noop" as const, data: new Uint8Array(0) })),
  );
  s.setHardState({ term, vote: 0, commit: 0 });
  return s;
}

function view(o: {
  phases?: Record<number, MemberPhase>;
  storages?: Record<number, MemoryStorage>;
  cut?: [NodeId, NodeId][];
  /** [receiver, sender]: receiver has seen an incarnation of sender. Default: everyone has seen everyone. */
  seen?: [NodeId, NodeId][];
}): ProbeView {
  return {
    connected: (from, to) => !(o.cut ?? []).some(([a, b]) => a === from && b === to),
    phase: (id) => o.phases?.[id] ?? "running",
    storage: (id) => o.storages?.[id] ?? storage(0),
    knows: (receiver, sender) => o.seen === undefined || o.seen.some(([r, s]) => r === receiver && s === sender),
  };
}

describe("the bootstrap check's answers, judged by the production rule", () => {
  it("a member reachable both ways that holds a term says the cluster exists", () => {
    const answers = probeAnswers(1, IDS, view({ storages: { 2: storage(3, 5) }, phases: { 3: "unavailable" } }));
    expect(answers.get(2)).toEqual({ kind: "running", term: 3, lastIndex: 5, snapshotIndex: 0, knowsAsker: true });
    expect(answers.get(3)?.kind).toBe("unreachable");
    expect(answers.has(1)).toBe(false);
    expect(judgeBootstrap(answers)).toMatchObject({ kind: "exists", evidence: { peer: 2, term: 3 } });
  });

  it("a down, paused or cut-off member is unreachable: wait, never new", () => {
    // A one-way cut in either direction is enough: a Probe call needs its answer.
    const answers = probeAnswers(1, IDS, view({ phases: { 2: "unavailable" }, cut: [[3, 1]] }));
    expect([...answers.values()].map((a) => a.kind)).toEqual(["unreachable", "unreachable"]);
    expect(judgeBootstrap(answers)).toEqual({ kind: "wait", waitingFor: [2, 3] });
    const oneWay = probeAnswers(1, IDS, view({ cut: [[1, 2]] }));
    expect(judgeBootstrap(oneWay)).toEqual({ kind: "wait", waitingFor: [2] });
  });

  it("only when every other member answers and holds nothing (or is itself bootstrapping) is the cluster new", () => {
    expect(judgeBootstrap(probeAnswers(1, IDS, view({})))).toEqual({ kind: "new" });
    expect(judgeBootstrap(probeAnswers(1, IDS, view({ phases: { 3: "bootstrapping" } })))).toEqual({ kind: "new" });
    // A member at term 0 that holds an entry or a snapshot holds something.
    expect(judgeBootstrap(probeAnswers(1, IDS, view({ storages: { 3: storage(0, 1) } }))).kind).toBe("exists");
  });

  it("a cluster that formed without the asker (no holder has seen it) lets it start late; one witness refuses it", () => {
    const storages = { 2: storage(1, 1), 3: storage(1, 1) };
    expect(
      judgeBootstrap(
        probeAnswers(
          1,
          IDS,
          view({
            storages,
            seen: [
              [2, 3],
              [3, 2],
            ],
          }),
        ),
      ).kind,
    ).toBe("late");
    expect(judgeBootstrap(probeAnswers(1, IDS, view({ storages, seen: [[3, 1]] }))).kind).toBe("exists");
  });
});

describe("incarnations", () => {
  it("the first incarnation seen of a member is the one accepted; a node forgets its record with its disk", () => {
    const inc = new Incarnations(IDS, createPrng(5));
    const old2 = inc.of(2);
    expect(old2).toBeGreaterThan(0);
    expect(inc.initialOf(2)).toBe(old2);
    expect(inc.accepts(1, 2, old2)).toBe(true);
    inc.loseDisk(2);
    const new2 = inc.create(2);
    expect(new2).not.toBe(old2);
    expect(new2).toBeGreaterThan(0);
    expect(inc.accepts(1, 2, new2)).toBe(false);
    expect(inc.accepts(1, 2, old2)).toBe(true);
    expect(inc.refused).toBe(1);
    // Node 3 never heard from node 2 before: it takes the new incarnation as the first one.
    expect(inc.refusing(2)).toBe(1);
    expect(inc.accepts(3, 2, new2)).toBe(true);
    expect(inc.refusing(2)).toBe(1);
    // Node 2's own record went with its disk: it accepts whatever it sees first again.
    expect(inc.accepts(2, 1, inc.of(1))).toBe(true);
  });

  it("a Probe answer is a first sighting too: it records the current incarnation only if none is known", () => {
    const inc = new Incarnations(IDS, createPrng(5));
    const old2 = inc.of(2);
    expect(inc.knows(1, 2)).toBe(false);
    expect(inc.learn(1, 2)).toBe(true);
    expect(inc.knows(1, 2)).toBe(true);
    expect(inc.learn(1, 2)).toBe(false);
    inc.loseDisk(2);
    const new2 = inc.create(2);
    // Node 1 probed node 2 before its disk loss: the new incarnation does not replace the old one.
    expect(inc.learn(1, 2)).toBe(false);
    expect(inc.wouldAccept(1, 2)).toBe(false);
    expect(inc.accepts(1, 2, old2)).toBe(true);
    // Node 3 never probed it before: it learns the new incarnation as the first.
    expect(inc.learn(3, 2)).toBe(true);
    expect(inc.accepts(3, 2, new2)).toBe(true);
    expect(inc.learnedByProbe).toBe(2);
    expect(inc.refusing(2)).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------------
// Scripted stories (calm, pinned environment; clients run): see scenarios.test.ts.

const TICK_STEPS = 4;

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

interface Guards {
  readonly bootstrapCheck: boolean;
  readonly incarnationCheck: boolean;
  /** Learning incarnations by Probe (src/driver/open-node.ts); on unless turned off. */
  readonly probeLearning?: boolean;
}
const GUARDS_ON: Guards = { bootstrapCheck: true, incarnationCheck: true };

function run(
  script: ScriptedFault[],
  guards: Guards,
  seed = 7,
  observe?: (step: number, diskLoss: DiskLossReport | undefined) => void,
): SimResult {
  return runSimulation(
    {
      seed,
      nodes: 3,
      steps: 1500,
      script,
      params: {
        ...pinned(3),
        unsafeNoBootstrapCheck: !guards.bootstrapCheck,
        unsafeNoIncarnationCheck: !guards.incarnationCheck,
        unsafeNoProbeLearning: guards.probeLearning === false,
      },
    },
    (view) => observe?.(view.now(), view.diskLoss()),
  );
}

/**
 * A follower is cut off at 300 and misses every entry committed after that; at 700 the other follower,
 * whose acknowledgements made those entries committed, loses its disk and restarts at once.
 */
const LAGGING_PEER_AND_DISK_LOSS: ScriptedFault[] = [
  { at: 300, action: { kind: "isolateFollower" } },
  { at: 700, action: { kind: "loseDisk", target: "follower", downSteps: 0 } },
  { at: 1000, action: { kind: "heal" } },
];

describe("a node that loses its disk", () => {
  it("refuses to start while the cluster holds data; the two others go on, and every check holds", () => {
    const result = run(LAGGING_PEER_AND_DISK_LOSS, GUARDS_ON);
    expect(result.violations).toEqual([]);
    expect(result.diskLoss).toMatchObject({ at: 700, outcome: "refused", rounds: 1 });
    expect(result.incarnationRefusals).toBe(0);
    // No violation includes liveness: after the heal the two others elected a stable leader, served
    // every client op and converged.
    expect(result.operations.ok).toBeGreaterThan(100);
  });

  it("cut off from every member, waits (never bootstraps) and refuses once it can ask", () => {
    const seen = new Map<number, DiskLossReport | undefined>();
    const result = run(
      [
        { at: 300, action: { kind: "partition", groups: [[1], [2], [3]] } },
        { at: 301, action: { kind: "loseDisk", target: "leader", downSteps: 10 } },
        { at: 900, action: { kind: "heal" } },
      ],
      GUARDS_ON,
      7,
      (step, loss) => seen.set(step, loss),
    );
    expect(result.violations).toEqual([]);
    expect(seen.get(305)?.outcome).toBe("down");
    expect(seen.get(899)?.outcome).toBe("checking");
    expect(seen.get(899)?.rounds).toBeGreaterThan(5);
    expect(result.diskLoss?.outcome).toBe("refused");
  });

  it("with both guards off, restarts empty and the checkers see committed entries no longer on a majority", () => {
    const result = run(LAGGING_PEER_AND_DISK_LOSS, { bootstrapCheck: false, incarnationCheck: false });
    expect(result.diskLoss).toMatchObject({ at: 700, outcome: "rejoined" });
    expect(result.violations[0]).toMatchObject({ step: 700, kind: "committedLost" });
  });

  it("the incarnation guard alone covers a peer that never heard from the member, once it learned its incarnation by Probe", () => {
    // Followers of a stable leader never message each other, but every member probed every other one
    // when they started (step 0, all connected): the cut-off follower knows the old incarnation of the
    // one that lost its disk and refuses the new one, like the leader. The member is out of every
    // quorum; the two others go on.
    const result = run(LAGGING_PEER_AND_DISK_LOSS, { bootstrapCheck: false, incarnationCheck: true });
    expect(result.diskLoss?.outcome).toBe("rejoined");
    expect(result.violations).toEqual([]);
    expect(result.incarnationsLearnedByProbe).toBeGreaterThanOrEqual(6);
    expect(result.incarnationRefusals).toBeGreaterThan(0);
    expect(result.operations.ok).toBeGreaterThan(100);
  });

  it("without learning by Probe (the driver before learnIncarnations), the incarnation guard alone does not cover that peer", () => {
    // The cut-off follower then knows no incarnation of the member, takes the new one as the first, and
    // would count its vote (with the leader down, the two elect a leader without the entries committed
    // since 300).
    const result = run(LAGGING_PEER_AND_DISK_LOSS, { bootstrapCheck: false, incarnationCheck: true, probeLearning: false });
    expect(result.diskLoss?.outcome).toBe("rejoined");
    expect(result.incarnationsLearnedByProbe).toBe(0);
    expect(result.violations[0]).toMatchObject({ step: 700, kind: "committedLost" });
    // The bootstrap check alone is enough.
    expect(run(LAGGING_PEER_AND_DISK_LOSS, { bootstrapCheck: true, incarnationCheck: false, probeLearning: false }).violations).toEqual([]);
  });

  it("the incarnation guard alone still does not cover a peer that could never reach the member before its disk loss", () => {
    // Node 3 is cut off from the start, so its Probe rounds never reach nodes 1 and 2 (which learn each
    // other at once). They elect a leader and commit without it; at 700 the leader's follower loses its
    // disk and restarts empty. Node 3 knows no incarnation of it: the first it can see, by Probe or by
    // message, is the new one, and it would count that member's vote. Only the bootstrap check covers this.
    const cutFromStart: ScriptedFault[] = [
      { at: 0, action: { kind: "partition", groups: [[1, 2], [3]] } },
      { at: 700, action: { kind: "loseDisk", target: "follower", downSteps: 0 } },
      { at: 1000, action: { kind: "heal" } },
    ];
    const result = run(cutFromStart, { bootstrapCheck: false, incarnationCheck: true });
    expect(result.diskLoss).toMatchObject({ at: 700, outcome: "rejoined" });
    expect(result.violations[0]).toMatchObject({ step: 700, kind: "committedLost" });
    const guarded = run(cutFromStart, GUARDS_ON);
    expect(guarded.violations).toEqual([]);
    expect(guarded.diskLoss).toMatchObject({ at: 700, outcome: "refused" });
  });

  it("a member nobody has ever seen starts late on an empty disk once it can ask everyone, and loses nothing", () => {
    // Node 3 is cut off from the start: nodes 1 and 2 elect and commit without it, and never see an
    // incarnation of it. Its disk is lost at 700 (it held only its own campaigns). After the heal every
    // member answers, none that holds state has seen it: verdict "late", it starts empty, catches up,
    // and every check (committed entries on a majority, linearizability, convergence) holds.
    const result = run(
      [
        { at: 0, action: { kind: "partition", groups: [[1, 2], [3]] } },
        { at: 700, action: { kind: "loseDisk", target: 3, downSteps: 0 } },
        { at: 1000, action: { kind: "heal" } },
      ],
      GUARDS_ON,
    );
    expect(result.violations).toEqual([]);
    expect(result.diskLoss).toMatchObject({ at: 700, outcome: "rejoined" });
    expect(result.diskLoss?.rounds).toBeGreaterThan(1);
    expect(result.operations.ok).toBeGreaterThan(100);
  });
});
