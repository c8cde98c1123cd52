import { createPrng, type Prng } from "../../src/lib/prng.js";
import type { NetworkConditions } from "./network.js";
import type { WorkloadConfig } from "./workload.js";

/**
 * Everything a seed decides about a run before it starts: how hostile the network and the disks are,
 * how often each kind of fault strikes, and the client workload. Drawing these per seed (rather than
 * fixing them) means that over many seeds the simulator visits calm runs, storms, and everything in
 * between; a seed that finds a bug keeps finding it, because it decides the same parameters again.
 */
export interface SimParams {
  readonly network: NetworkConditions;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** The core's optional protocol features; mostly on (the defaults), sometimes off to cover both paths. */
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Per node: a tick every this many steps (nodes' clocks run at different speeds). */
  readonly stepsPerTick: readonly number[];
  readonly fsyncStepsMax: number;
  /** See SimNodeConfig: the driver sends what promises nothing about its disk before its write is durable. */
  readonly earlySends: boolean;
  /** See SimNodeConfig: how often a step with inputs during a write in flight ends with takeUnblocked(). */
  readonly unblockedRate: number;
  readonly tornWrites: boolean;
  /** Break the driver on purpose (see SimNodeConfig); never drawn, only set by the self-test. */
  readonly unsafeSendBeforeDurable: boolean;
  /**
   * Issue 9's two guards switched off, each on its own (never drawn; `--unsafe-no-bootstrap-check`,
   * `--unsafe-no-incarnation-check` and the self-test set them): a member that lost its disk restarts
   * empty at once, without asking the others (src/driver/bootstrap-check.ts); peers accept messages from
   * a member whose incarnation changed (src/driver/peer-incarnations.ts).
   */
  readonly unsafeNoBootstrapCheck: boolean;
  readonly unsafeNoIncarnationCheck: boolean;
  /**
   * Members learn each other's incarnations only from messages, not by Probe (never drawn;
   * `--unsafe-no-probe-learning`): the driver before src/driver/open-node.ts learnIncarnations.
   */
  readonly unsafeNoProbeLearning: boolean;
  /** Per-step probabilities of each fault during the chaos phase. */
  readonly crashRate: number;
  readonly partitionRate: number;
  readonly partitionStepsMax: number;
  readonly pauseRate: number;
  readonly pauseStepsMax: number;
  readonly downStepsMax: number;
  readonly weatherRate: number;
  readonly transferRate: number;
  readonly campaignRate: number;
  /**
   * Per step: probability that one node crashes and loses its whole disk (log, hard state, snapshot, its
   * incarnation and the incarnations of its peers it knew). At most one disk loss per run: losing two
   * disks can lose two promises of a quorum, which no Raft system survives (bootstrap-check.ts).
   */
  readonly diskLossRate: number;
  /**
   * The membership nemesis (simulation.ts, "Membership changes"): per step of the chaos phase, the
   * probability of one configuration change proposed to the current leader (add a spare as learner or,
   * rarely, as voter, promote a learner, remove a member, the leader included, or replace one). 0: the
   * cluster keeps its initial members and no spare node exists (the run is then exactly the one it was
   * before the nemesis existed).
   */
  readonly membershipRate: number;
  /** The nemesis promotes a learner only when it is at most this many entries behind the leader. */
  readonly promoteLagMax: number;
  /** Per spare node (ids after the initial ones, see MEMBERSHIP_SPARES): a tick every this many steps. */
  readonly spareStepsPerTick: readonly number[];
  /** Per node per step: probability of compacting the log into a snapshot. */
  readonly compactRate: number;
  /** Probability that a message dropped on a cut link or at a down node is reported to its sender's core. */
  readonly reportUndeliverableRate: number;
  /** Probability that a restart replays part of the durable log before starting the core. */
  readonly restartReplayRate: number;
  readonly workload: WorkloadConfig;
}

/** Node ids after the initial ones that the membership nemesis may add, each at most once (never reused). */
export const MEMBERSHIP_SPARES = 4;

export function drawNetwork(prng: Prng): NetworkConditions {
  return {
    lossRate: prng.pick([0, 0, 0.01, 0.05, 0.1, 0.2]),
    duplicateRate: prng.pick([0, 0, 0.02, 0.1]),
    delayStepsMax: prng.int(1, 12),
    longDelayRate: prng.pick([0, 0.005, 0.02, 0.05]),
    // Up to many election timeouts: Raft must stay safe with arbitrarily old messages arriving.
    longDelayStepsMax: prng.int(20, 3000),
    stallAcrossPartitions: prng.chance(0.5),
    replayRate: prng.pick([0, 0, 0.01, 0.05, 0.2]),
  };
}

export function drawParams(prng: Prng, nodeCount: number): SimParams {
  // Timing keeps etcd's proportions: an election timeout is many heartbeats, and many disk writes and
  // network hops long (>= 30 steps here, against writes of <= 8 steps and ordinary hops of <= 12).
  const electionTicks = prng.pick([10, 10, 20]);
  const heartbeatTicks = prng.pick([1, 1, 2]);
  const baseStepsPerTick = prng.int(3, 6);
  const stepsPerTick = Array.from({ length: nodeCount }, () => baseStepsPerTick + prng.int(0, 2));
  const slowestTick = Math.max(...stepsPerTick);
  const electionSteps = 2 * electionTicks * slowestTick;
  return {
    network: drawNetwork(prng),
    electionTicks,
    heartbeatTicks,
    preVote: prng.chance(0.8),
    checkQuorum: prng.chance(0.8),
    stepsPerTick,
    fsyncStepsMax: prng.pick([0, 1, 2, 4, 8]),
    // Production always sends early; a fifth of the seeds hold every message until the write is durable.
    earlySends: prng.chance(0.8),
    tornWrites: prng.chance(0.7),
    unsafeSendBeforeDurable: false,
    unsafeNoBootstrapCheck: false,
    unsafeNoIncarnationCheck: false,
    unsafeNoProbeLearning: false,
    crashRate: prng.pick([0, 0.0005, 0.001, 0.003]),
    partitionRate: prng.pick([0, 0.001, 0.003, 0.008]),
    partitionStepsMax: prng.int(electionSteps, 8 * electionSteps),
    pauseRate: prng.pick([0, 0, 0.001, 0.003]),
    pauseStepsMax: prng.int(electionSteps / 2, 3 * electionSteps),
    downStepsMax: prng.int(electionSteps, 10 * electionSteps),
    weatherRate: prng.pick([0, 0.001, 0.005]),
    transferRate: prng.pick([0, 0, 0.0005, 0.002]),
    campaignRate: prng.pick([0, 0, 0.0005, 0.002]),
    compactRate: prng.pick([0, 0.002, 0.01, 0.03]),
    restartReplayRate: prng.pick([0, 0.5, 1]),
    reportUndeliverableRate: prng.pick([0, 0.1, 0.5]),
    workload: {
      clients: prng.int(2, 5),
      keys: prng.int(1, 4),
      thinkStepsMax: prng.int(1, 40),
      opTimeoutSteps: 4 * electionSteps,
      randomNodeReadRate: prng.pick([0, 0.3, 0.7]),
    },
    // Drawn last, so that adding it changed nothing else a seed draws. About a third of the seeds lose a
    // disk within 2000..3000 chaos steps (a rate of 0.0005 strikes in 63..78% of them, 0.002 in 98%+).
    diskLossRate: prng.chance(0.35) ? prng.pick([0.0005, 0.001, 0.002]) : 0,
    // 1 is production's driver exactly (takeUnblocked after every step with inputs during a write).
    unblockedRate: prng.pick([0.5, 0.8, 1]),
    // Drawn after everything else, for the same reason. On in about half the seeds: a rate of 0.001
    // asks for 2 changes in 2000 chaos steps on average, 0.004 for 8, of which a leader accepts about half
    // (one change at a time, only once it committed an entry of its term, a learner within its lag).
    membershipRate: prng.chance(0.5) ? prng.pick([0.001, 0.002, 0.004]) : 0,
    promoteLagMax: prng.pick([0, 5, 50, Number.MAX_SAFE_INTEGER]),
    spareStepsPerTick: Array.from({ length: MEMBERSHIP_SPARES }, () => baseStepsPerTick + prng.int(0, 2)),
  };
}

/**
 * The cluster size a seed picks when none is given: 3 or 5 (7 on request). Derived from the seed by its
 * own generator so that `--seed S --nodes N` replays exactly the run that `--seed S` chose N for.
 */
export function drawNodeCount(seed: number): 3 | 5 {
  return createPrng(seed ^ 0x5eed5eed).chance(0.5) ? 3 : 5;
}
