import {
  decodeConfEntry,
  majority,
  type ConfChange,
  type ConfChangeOp,
  type ConfState,
  type Entry,
  type MemoryStorage,
  type Message,
  type NodeId,
  type Status,
} from "../../src/core/index.js";
import { judgeBootstrap } from "../../src/driver/bootstrap-check.js";
import { assert } from "../../src/lib/assert.js";
import { createPrng, type Prng } from "../../src/lib/prng.js";
import type { ProbeAnswer } from "../../src/transport/index.js";
import {
  BOOTSTRAP_RETRY_STEPS,
  BOOTSTRAP_RETRY_STEPS_MAX,
  durableSummary,
  holdsSomething,
  Incarnations,
  LEARN_RETRY_STEPS,
  LEARN_RETRY_STEPS_MAX,
  probeAnswers,
  type MemberPhase,
} from "./disk-loss.js";
import { describeOperation } from "./history.js";
import { describeConf, SafetyMonitor, type Violation } from "./invariants.js";
import { checkLinearizability } from "./linearizability.js";
import { CALM_NETWORK, SimNetwork, type NetworkConditions } from "./network.js";
import { drawNetwork, drawParams, MEMBERSHIP_SPARES, type SimParams } from "./params.js";
import { SimNode, type SimNodeHooks, type UnblockedStats } from "./sim-node.js";
import { Workload } from "./workload.js";

/**
 * The deterministic cluster simulator. One seed decides everything: parameters (params.ts), network
 * loss, delay, reordering, duplication and partitions (network.ts), crashes that lose unsynced writes and
 * restarts (sim-node.ts), pauses, the loss of one node's whole disk (disk-loss.ts), and the client
 * workload (workload.ts). Time is a step counter.
 *
 * A run has four phases:
 *  1. chaos: `steps` steps of faults and client traffic;
 *  2. heal: every fault is repaired at once (all nodes up, no partition, a calm network and disks) and
 *     a stable leader (every node up, in the same term, following it, for a whole election timeout)
 *     must appear within `leaderStepsMax` steps;
 *  3. liveness: clients keep working against that leader; every op invoked after a short grace period
 *     must succeed, and the leader must not change;
 *  4. drain: clients stop, and every node must apply everything the leader committed.
 * The safety checkers (invariants.ts) run after every step; the client history must be linearizable.
 *
 * Within a step the order is fixed: faults, restarts (and a round of the bootstrap check of a node that
 * lost its disk), rounds of learning incarnations by Probe, message delivery, ticks, clients, then each
 * node (by id) hands out what takeUnblocked() gives while its write is in flight, completes that write
 * when due and takes new Readys; compaction; checks.
 *
 * Disk loss (at most one node per run): the node crashes and its disk is replaced by an empty one. When
 * it restarts it runs the bootstrap check of production (the real `judgeBootstrap` on answers modelled
 * in disk-loss.ts) every few steps until the verdict is "exists" (it stays down for the rest of the run,
 * as the real process exits) or "new" (it starts empty under a new incarnation; only right when every
 * other member still holds nothing). Peers drop messages from a changed incarnation; they learn each
 * member's incarnation from its messages and by probing it after each of their starts. From its disk loss
 * until it takes part again, and for good once refused, the node is `excluded`: the checkers count it out
 * of every quorum, and the heal and liveness phases are judged on the other members (a majority of the
 * cluster is still there, since at most one node loses its disk).
 *
 * Membership changes (the nemesis; params.membershipRate, 0 in about half the seeds): MEMBERSHIP_SPARES
 * node ids after the initial ones start absent (never started, empty disk and empty membership). Now
 * and then, during the chaos phase, the current leader is asked for one change: add an unused spare as
 * learner (the node is started, at once or a little later) or rarely as voter, promote a learner (within
 * params.promoteLagMax), remove a member (the leader too), replace one (remove it, and later add a new
 * spare and promote it: an id is never reused), or an `update` of a member's context. Voters stay
 * between 1 and 7 (3 while a disk loss may still strike), and a change is not proposed if the voters
 * left that can take part would not be a majority. Once a removal commits (a node applies it), the
 * removed node is stopped for good after a while: often soon, sometimes only late in the run, so that a
 * removed node still runs (and crashes and restarts) while the cluster goes on without it; its votes
 * must be refused. The heal, liveness and drain phases wait for the members of the stable leader's
 * membership only; the checkers count the voters of the committed membership (invariants.ts).
 */
export interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
  /** Steps of the chaos phase. */
  readonly steps: number;
  /** Keep a trace of events (costly; the CLI turns it on to replay a failing seed). */
  readonly trace?: boolean;
  /**
   * Scripted faults instead of random ones: for targeted scenarios. Random faults are off when given,
   * and the network stays calm unless an action changes it.
   */
  readonly script?: readonly ScriptedFault[];
  /** Parameter overrides (scenarios use them to pin the environment). */
  readonly params?: Partial<SimParams>;
}

/** Which node a scripted membership change names (resolved at its step); see FaultAction "conf". */
export type ConfTarget = "leader" | "follower" | "spare" | "learner" | NodeId;

export type FaultAction =
  /** The current leader and `minority - 1` other nodes on one side, the rest (a majority) on the other. */
  | { readonly kind: "isolateLeader"; readonly withMinority: boolean }
  | { readonly kind: "partition"; readonly groups: readonly (readonly NodeId[])[] }
  /** Cut every link into the current leader: it can still send but hears nothing (asymmetric). */
  | { readonly kind: "deafenLeader" }
  /** The follower with the lowest id alone on one side, the rest on the other. */
  | { readonly kind: "isolateFollower" }
  | { readonly kind: "heal" }
  /** Crash the leader, a majority of nodes (the leader among them), or the given nodes. */
  | { readonly kind: "crash"; readonly target: "leader" | "majority" | readonly NodeId[] }
  /**
   * A node crashes (unless down already) and loses its disk, then restarts `downSteps` later (at once
   * when 0). "follower": one the leader reaches both ways, if any. At most once per run.
   */
  | { readonly kind: "loseDisk"; readonly target: "leader" | "follower" | NodeId; readonly downSteps: number }
  | { readonly kind: "restartAll" }
  | { readonly kind: "network"; readonly conditions: NetworkConditions }
  /**
   * A membership change proposed to the current leader: "spare" is the next unused spare id (started
   * when the change is accepted), "follower" the lowest voter that is not the leader, "learner" the
   * lowest learner. A script with such a fault has spare nodes, as runs with the nemesis do.
   */
  | { readonly kind: "conf"; readonly op: ConfChangeOp; readonly target: ConfTarget };

export interface ScriptedFault {
  readonly at: number;
  readonly action: FaultAction;
}

export interface SimResult {
  readonly seed: number;
  readonly nodes: number;
  readonly steps: number;
  /** Terms in which a leader was seen. */
  readonly elections: number;
  /** The highest committed log index. */
  readonly commits: number;
  readonly faults: number;
  readonly crashes: number;
  readonly operations: { readonly invoked: number; readonly ok: number; readonly failed: number; readonly unknown: number };
  readonly messages: { readonly sent: number; readonly delivered: number; readonly lost: number };
  /** The node that lost its disk, if one did, and how its return ended. */
  readonly diskLoss: DiskLossReport | undefined;
  /** Messages peers dropped because their sender's incarnation had changed. */
  readonly incarnationRefusals: number;
  /** Incarnations learned by Probe rather than from a message. */
  readonly incarnationsLearnedByProbe: number;
  /** What takeUnblocked() handed out while writes were in flight, summed over the nodes. */
  readonly unblocked: UnblockedStats;
  /** Whether the membership nemesis ran (params.membershipRate > 0). */
  readonly membershipNemesis: boolean;
  /** Membership changes: what the nemesis (or a script) asked for, and what became of it. */
  readonly membership: MembershipStats;
  /** The committed membership at the end of the run. */
  readonly finalConf: ConfState;
  readonly violations: readonly Violation[];
  /** The last trace lines (empty unless tracing). */
  readonly trace: readonly string[];
}

export interface MembershipStats {
  /** Changes a leader accepted (appended to its log). */
  proposed: number;
  /** Of these, removals of the leader itself. */
  leaderRemovals: number;
  /** Changes refused by the leader (one pending already, not yet committed in its term, a lagging learner...). */
  refused: number;
  /** Conf entries that committed (some node applied them). */
  committed: number;
  /** Spare nodes added (each id once). */
  added: number;
  /** Removed nodes stopped for good. */
  retired: number;
}

export interface DiskLossReport {
  readonly node: NodeId;
  readonly at: number;
  /**
   * down: not restarted yet; checking: still waiting for every member to answer; refused: verdict
   * "exists" (down for good); rejoined: started empty (verdict "new" or "late", or the bootstrap check off).
   */
  readonly outcome: DiskLossState["kind"];
  /** Rounds of the bootstrap check. */
  readonly rounds: number;
}

type DiskLossState =
  | { readonly kind: "down" }
  | { readonly kind: "checking"; nextAt: number; pause: number }
  | { readonly kind: "refused" }
  | { readonly kind: "rejoined" };

interface DiskLoss {
  readonly node: NodeId;
  readonly at: number;
  state: DiskLossState;
  rounds: number;
}

/** What a scenario test may look at after each step. */
export interface SimView {
  now(): number;
  phase(): Phase["kind"];
  status(node: NodeId): Status | undefined;
  readonly nodeIds: readonly NodeId[];
  highestCommitted(): number;
  diskLoss(): DiskLossReport | undefined;
  /** The membership as of the highest committed index the checkers know of. */
  committedConf(): ConfState;
}

type Phase =
  | { readonly kind: "chaos" }
  /** `candidate`: the leader every node has agreed on since `agreedSince`, if any. */
  | { readonly kind: "heal"; readonly since: number; candidate: { leader: NodeId; term: number; agreedSince: number } | undefined }
  | { readonly kind: "liveness"; readonly leader: NodeId; readonly term: number; readonly from: number; readonly until: number }
  | { readonly kind: "drain"; readonly leader: NodeId; readonly since: number }
  | { readonly kind: "done" };

const TRACE_LINES_MAX = 50_000;
/** Disk writes after the heal: fast relative to the election timeout, as on a healthy machine. */
const CALM_FSYNC_STEPS_MAX = 1;
const READY_PER_STEP_MAX = 8;
const IN_FLIGHT_MESSAGES_MAX = 20_000;
const PAUSE_BACKLOG_MAX = 5_000;
/** Seeds the disk-loss stream (its timing, its node, incarnations) apart from every other stream. */
const DISK_LOSS_SEED_SALT = 0x0d15c105;
/** Seeds the membership nemesis (and the spare nodes) apart from every other stream. */
const MEMBERSHIP_SEED_SALT = 0x3e3be125;
/** The most voters the nemesis makes (the brief of issue 12: 1..7). */
const VOTERS_MAX = 7;
const textEncoder = new TextEncoder();

export function runSimulation(options: SimOptions, observe?: (view: SimView) => void): SimResult {
  return new Simulation(options).run(observe);
}

class Simulation {
  private readonly prng: Prng;
  private readonly faultPrng: Prng;
  /**
   * Its own stream (not a fork of the seed's generator, which would shift every other stream), so that
   * a seed that loses no disk replays exactly the run it made before disk loss existed.
   */
  private readonly diskPrng: Prng;
  private readonly incarnations: Incarnations;
  private diskLoss: DiskLoss | undefined;
  /**
   * Nodes the heal and liveness phases do not wait for: one that lost its disk and is out of every
   * quorum (monitor.excluded), or that started again but is refused by some member (it may never catch
   * up, since that member drops what it says; only when a guard is off, or after a "new" verdict).
   */
  private readonly gone = new Set<NodeId>();
  private readonly params: SimParams;
  /** Every node id: the initial members, then the spares the membership nemesis may add. */
  private readonly ids: NodeId[];
  /** The members the cluster starts with (its --initial-cluster). */
  private readonly initialIds: NodeId[];
  /** A tick every this many steps, by node id - 1. */
  private readonly stepsPerTick: readonly number[];
  /**
   * The membership nemesis's own stream (also the spares' nodes): a seed without it replays exactly the
   * run it made before the nemesis existed.
   */
  private readonly memberPrng: Prng;
  /** Whether spare nodes exist: the nemesis is on, or the script changes the membership. */
  private readonly spares: boolean;
  /** Spares not added yet, lowest id first. */
  private readonly unusedSpares: NodeId[] = [];
  /** Nodes that belong to the run: the initial ones, and spares once added (started, or about to be). */
  private readonly joined = new Set<NodeId>();
  /** Removed nodes stopped for good, and those to be stopped (when). */
  private readonly retired = new Set<NodeId>();
  private readonly retireAt = new Map<NodeId, number>();
  /** Members removed by a replacement whose successor is not added yet. */
  private replacementsOwed = 0;
  /** Indexes of the conf entries known committed. */
  private readonly confCommitted = new Set<number>();
  private readonly membershipStats: MembershipStats = { proposed: 0, leaderRemovals: 0, refused: 0, committed: 0, added: 0, retired: 0 };
  private readonly network: SimNetwork;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly storages = new Map<NodeId, MemoryStorage>();
  private readonly monitor: SafetyMonitor;
  private readonly workload: Workload;
  private readonly trace: string[] = [];
  private readonly tracing: boolean;
  private now = 0;
  private phase: Phase = { kind: "chaos" };
  private faults = 0;
  /** Down nodes and when they come back. */
  private readonly restartAt = new Map<NodeId, number>();
  /** Paused nodes: until when, and the messages that arrived meanwhile. */
  private readonly paused = new Map<NodeId, { until: number; backlog: Message[] }>();
  /**
   * Running nodes still learning some member's incarnation by Probe: when the next round is due and the
   * pause after it (disk-loss.ts). Set at each start, dropped at a crash or once every member is known.
   */
  private readonly learning = new Map<NodeId, { nextAt: number; pause: number }>();
  private partitionUntil = 0;
  /** The longest election timeout of any node, in steps. */
  private readonly electionSteps: number;
  private readonly leaderStepsMax: number;
  private readonly livenessSteps: number;
  private readonly livenessGraceSteps: number;
  private readonly drainStepsMax: number;

  constructor(private readonly options: SimOptions) {
    assert(Number.isSafeInteger(options.seed), "sim: the seed must be an integer");
    assert([1, 3, 5, 7].includes(options.nodes), "sim: nodes must be 1, 3, 5 or 7");
    assert(Number.isSafeInteger(options.steps) && options.steps >= 0, "sim: steps must be a non-negative integer");
    this.prng = createPrng(options.seed);
    const paramsPrng = this.prng.fork();
    this.faultPrng = this.prng.fork();
    const drawn = drawParams(paramsPrng, options.nodes);
    const scripted = options.script !== undefined;
    this.params = {
      ...drawn,
      ...(scripted
        ? {
            network: CALM_NETWORK,
            crashRate: 0,
            partitionRate: 0,
            pauseRate: 0,
            weatherRate: 0,
            transferRate: 0,
            campaignRate: 0,
            diskLossRate: 0,
            membershipRate: 0,
          }
        : {}),
      ...options.params,
    };
    this.tracing = options.trace ?? false;
    this.initialIds = Array.from({ length: options.nodes }, (_, i) => i + 1);
    this.spares = this.params.membershipRate > 0 || (options.script?.some((f) => f.action.kind === "conf") ?? false);
    const spareIds = this.spares ? Array.from({ length: MEMBERSHIP_SPARES }, (_, i) => options.nodes + i + 1) : [];
    this.ids = [...this.initialIds, ...spareIds];
    this.unusedSpares.push(...spareIds);
    for (const id of this.initialIds) this.joined.add(id);
    this.stepsPerTick = [...this.params.stepsPerTick.slice(0, options.nodes), ...this.params.spareStepsPerTick.slice(0, spareIds.length)];
    assert(this.stepsPerTick.length === this.ids.length, "sim: a tick period for every node");
    this.memberPrng = createPrng(options.seed ^ MEMBERSHIP_SEED_SALT);
    this.diskPrng = createPrng(options.seed ^ DISK_LOSS_SEED_SALT);
    this.incarnations = new Incarnations(this.ids, this.diskPrng.fork());
    this.network = new SimNetwork(this.ids, this.prng.fork(), IN_FLIGHT_MESSAGES_MAX);
    this.network.conditions = this.params.network;
    this.monitor = new SafetyMonitor(this.initialIds);
    this.monitor.voteCounts = (voter, candidate) =>
      !this.monitor.excluded.has(voter) &&
      (voter === candidate || this.params.unsafeNoIncarnationCheck || this.incarnations.wouldAccept(candidate, voter));
    const electionSteps = 2 * this.params.electionTicks * Math.max(...this.stepsPerTick);
    this.electionSteps = electionSteps;
    this.leaderStepsMax = 20 * electionSteps;
    this.livenessSteps = 3 * electionSteps;
    this.livenessGraceSteps = electionSteps;
    this.drainStepsMax = 10 * electionSteps;
    const hooks = this.nodeHooks();
    const nodeConfig = {
      electionTicks: this.params.electionTicks,
      heartbeatTicks: this.params.heartbeatTicks,
      preVote: this.params.preVote,
      checkQuorum: this.params.checkQuorum,
      fsyncStepsMax: this.params.fsyncStepsMax,
      earlySends: this.params.earlySends,
      unblockedRate: this.params.unblockedRate,
      tornWrites: this.params.tornWrites,
      unsafeSendBeforeDurable: this.params.unsafeSendBeforeDurable,
      readyPerStepMax: READY_PER_STEP_MAX,
    };
    for (const id of this.initialIds) {
      const node = new SimNode(id, this.initialIds, nodeConfig, this.prng.fork(), hooks);
      this.nodes.set(id, node);
      this.storages.set(id, node.storage);
    }
    // A spare's disk starts empty with an empty membership: it learns the membership once it has joined.
    for (const id of spareIds) {
      const node = new SimNode(id, [], nodeConfig, this.memberPrng.fork(), hooks);
      this.nodes.set(id, node);
      this.storages.set(id, node.storage);
    }
    this.workload = new Workload(
      this.params.workload,
      this.prng.fork(),
      {
        nodeIds: this.ids,
        // A paused process takes no requests: to the client it looks down.
        propose: (id, data) => (this.paused.has(id) ? undefined : this.node(id).propose(data)),
        readIndex: (id, requestId) => !this.paused.has(id) && this.node(id).readIndex(requestId),
        valueOf: (id, key) => this.node(id).valueOf(key),
        // Once healthy, reads go to the stable leader's members only (not to a removed node still running).
        isGone: (id) => this.gone.has(id) || !this.liveMembers().includes(id),
      },
      (opId, reason) => this.monitor.observeFailedOp(opId, reason),
    );
  }

  run(observe?: (view: SimView) => void): SimResult {
    for (const id of this.initialIds) {
      this.node(id).start(false);
      this.started(id);
    }
    const view = this.view();
    const stepsMax = this.options.steps + this.leaderStepsMax + this.livenessSteps + this.drainStepsMax + 1;
    for (let step = 0; step < stepsMax && this.phase.kind !== "done"; step++) {
      this.now = step;
      this.monitor.step = step;
      this.workload.now = step;
      try {
        this.step();
      } catch (error) {
        const text =
          error instanceof Error
            ? `${error.name}: ${error.message}\n${(error.stack ?? "").split("\n").slice(1, 6).join("\n")}`
            : String(error);
        this.monitor.record("exception", `thrown at step ${step}: ${text}`);
      }
      observe?.(view);
      if (this.monitor.violations.length > 0) break;
    }
    this.workload.finish();
    if (this.monitor.violations.length === 0) this.checkHistory();
    const net = this.network.stats;
    return {
      seed: this.options.seed,
      nodes: this.options.nodes,
      steps: this.now + 1,
      elections: this.monitor.electedTerms,
      commits: this.monitor.highestCommitted,
      faults: this.faults,
      crashes: [...this.nodes.values()].reduce((sum, n) => sum + n.crashes, 0),
      operations: { ...this.workload.stats },
      messages: { sent: net.sent, delivered: net.delivered, lost: net.lost + net.cut + net.overflowed },
      diskLoss: this.diskLossReport(),
      incarnationRefusals: this.incarnations.refused,
      incarnationsLearnedByProbe: this.incarnations.learnedByProbe,
      unblocked: [...this.nodes.values()].reduce(
        (sum, n) => ({
          takes: sum.takes + n.unblockedStats.takes,
          messages: sum.messages + n.unblockedStats.messages,
          readStates: sum.readStates + n.unblockedStats.readStates,
        }),
        { takes: 0, messages: 0, readStates: 0 },
      ),
      membershipNemesis: this.params.membershipRate > 0,
      membership: { ...this.membershipStats },
      finalConf: this.monitor.committedConf,
      violations: this.monitor.violations,
      trace: this.trace,
    };
  }

  private step(): void {
    const now = this.now;
    this.advancePhase();
    if (this.phase.kind === "chaos") {
      if (this.options.script === undefined) {
        this.randomFaults();
        if (this.spares) this.randomConfChange();
      } else for (const fault of this.options.script) if (fault.at === now) this.applyFault(fault.action);
    }
    this.retireDue();
    this.restartDue();
    this.bootstrapDue();
    this.resumeDue();
    this.learnDue();
    const delivered = this.network.deliver(
      now,
      (id) => this.node(id).isUp,
      (message) => this.reportUndeliverable(message),
    );
    for (const message of delivered) {
      const pause = this.paused.get(message.to);
      if (pause !== undefined) {
        if (pause.backlog.length < PAUSE_BACKLOG_MAX) pause.backlog.push(message);
      } else {
        this.deliverTo(message);
      }
    }
    for (const id of this.ids) {
      const period = this.stepsPerTick[id - 1] ?? 1;
      if ((now + id) % period === 0 && !this.paused.has(id)) this.node(id).tick();
    }
    this.workload.step();
    for (const id of this.ids) if (!this.paused.has(id)) this.node(id).process(now);
    this.compactions();
    this.checkStep();
  }

  // ---------------------------------------------------------------------------------------------
  // Phases and liveness

  private advancePhase(): void {
    const phase = this.phase;
    const now = this.now;
    switch (phase.kind) {
      case "chaos":
        if (now >= this.options.steps) {
          this.healEverything();
          this.phase = { kind: "heal", since: now, candidate: undefined };
          this.log(`heal: all faults repaired`);
        }
        break;
      case "heal": {
        // Agreement must last a full election timeout: a follower cut off until the heal may still
        // name the old leader while its election timer is about to fire (without PreVote it then
        // legitimately disrupts that leader). After one timeout every such timer has fired or been
        // reset by the leader's heartbeats.
        const agreed = this.stableLeader();
        const candidate = phase.candidate;
        if (agreed === undefined) phase.candidate = undefined;
        else if (candidate === undefined || candidate.leader !== agreed.leader || candidate.term !== agreed.term) {
          phase.candidate = { ...agreed, agreedSince: now };
        } else if (now - candidate.agreedSince >= this.electionSteps) {
          this.phase = {
            kind: "liveness",
            leader: agreed.leader,
            term: agreed.term,
            from: now + this.livenessGraceSteps,
            until: now + this.livenessSteps,
          };
          this.workload.mode = { kind: "liveness", leader: agreed.leader };
          this.log(`stable leader ${agreed.leader} in term ${agreed.term} after ${now - phase.since} steps`);
          break;
        }
        if (now - phase.since > this.leaderStepsMax) {
          this.monitor.record(
            "liveness",
            `no stable leader within ${this.leaderStepsMax} steps after the faults healed (${this.describeCluster()})`,
          );
        }
        break;
      }
      case "liveness": {
        const status = this.node(phase.leader).status();
        if (status?.role !== "leader" || status.term !== phase.term) {
          this.monitor.record(
            "liveness",
            `leader ${phase.leader} of term ${phase.term} lost leadership in a healthy cluster (${this.describeCluster()})`,
          );
          return;
        }
        if (now >= phase.until) {
          this.workload.mode = { kind: "stopped" };
          this.phase = { kind: "drain", leader: phase.leader, since: now };
          this.checkLivenessOps(phase.from);
        }
        break;
      }
      case "drain":
        if (this.workload.outstanding === 0 && this.converged(phase.leader)) this.phase = { kind: "done" };
        else if (now - phase.since > this.drainStepsMax) {
          this.monitor.record("liveness", `the cluster did not converge within ${this.drainStepsMax} steps (${this.describeCluster()})`);
        }
        break;
      case "done":
        break;
    }
  }

  /**
   * A leader that knows it leads, is a voter of its membership (not one removing itself) and is not
   * handing over, followed in its term by every member of its membership (every one that takes part: one
   * that lost its disk and is out of every quorum is not waited for; nor is a node out of the membership,
   * removed or never added, even if it still runs).
   */
  private stableLeader(): { leader: NodeId; term: number } | undefined {
    for (const id of this.ids) {
      const status = this.node(id).status();
      // A leadership transfer asked for during the chaos may still be under way: wait until it is done.
      if (status?.role !== "leader" || status.leadTransferee !== 0 || !status.conf.voters.includes(id)) continue;
      const follows = (member: NodeId): boolean => {
        const s = this.node(member).status();
        return s !== undefined && s.leader === id && s.term === status.term;
      };
      if (this.membersOf(status).every(follows)) return { leader: id, term: status.term };
    }
    return undefined;
  }

  /** All proposals committed on the leader and applied by every member. */
  private converged(leader: NodeId): boolean {
    const lead = this.node(leader).status();
    if (lead === undefined || lead.commit !== lead.lastIndex) return false;
    return this.membersOf(lead).every((id) => this.node(id).running()?.sm.index === lead.commit);
  }

  /** The members of a node's membership that the heal, liveness and drain phases wait for (see `gone`). */
  private membersOf(status: Status): NodeId[] {
    return [...status.conf.voters, ...status.conf.learners].filter((id) => !this.gone.has(id));
  }

  /** In the liveness and drain phases, the members of the stable leader's membership (else every node). */
  private liveMembers(): readonly NodeId[] {
    const phase = this.phase;
    const status = phase.kind === "liveness" || phase.kind === "drain" ? this.node(phase.leader).status() : undefined;
    return status === undefined ? this.ids : [...status.conf.voters, ...status.conf.learners];
  }

  private checkLivenessOps(from: number): void {
    for (const op of this.workload.history) {
      if (op.callStep < from || op.outcome.status === "ok") continue;
      this.monitor.record("liveness", `an op invoked after the cluster healed did not succeed: ${describeOperation(op)}`);
      return;
    }
  }

  private checkHistory(): void {
    const result = checkLinearizability(this.workload.history);
    if (result.kind === "violation") {
      this.monitor.record("linearizability", `key ${result.key}: ${result.explanation}`);
    } else if (result.kind === "budgetExceeded") {
      this.monitor.record(
        "linearizability",
        `the checker gave up on key ${result.key} (${result.operations} ops, ${result.searchSteps} search steps)`,
      );
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Faults

  private randomFaults(): void {
    const p = this.params;
    const f = this.faultPrng;
    const now = this.now;
    if (now >= this.partitionUntil && this.partitionUntil > 0) {
      this.network.heal();
      this.partitionUntil = 0;
      this.log(`partition healed`);
    }
    // A new partition may also replace one in force without a heal in between: messages held on links
    // that stay cut then outlive several changes of leadership before they arrive.
    if (f.chance(p.partitionRate)) this.randomPartition();
    if (f.chance(p.crashRate)) {
      const up = this.ids.filter((id) => this.node(id).isUp);
      if (up.length > 0) this.crash(f.pick(up), now + f.int(1, p.downStepsMax));
    }
    if (f.chance(p.pauseRate)) {
      const candidates = this.ids.filter((id) => this.node(id).isUp && !this.paused.has(id));
      if (candidates.length > 0) {
        const id = f.pick(candidates);
        this.faults++;
        this.paused.set(id, { until: now + f.int(1, p.pauseStepsMax), backlog: [] });
        this.log(`node ${id} paused`);
      }
    }
    if (f.chance(p.weatherRate)) {
      this.faults++;
      this.network.conditions = drawNetwork(f);
      this.log(`network now ${JSON.stringify(this.network.conditions)}`);
    }
    if (f.chance(p.transferRate)) {
      const leader = this.currentLeader();
      if (leader !== undefined) {
        // With spares, to another voter of its membership (the core ignores any other target).
        const voters = this.spares ? (this.node(leader).status()?.conf.voters ?? []) : this.ids;
        const to = f.pick(voters.length > 1 ? voters.filter((id) => id !== leader) : this.ids.filter((id) => id !== leader));
        this.faults++;
        this.node(leader).transferLeadership(to);
        this.log(`leader ${leader} asked to transfer to ${to}`);
      }
    }
    if (f.chance(p.campaignRate)) {
      const id = f.pick(this.ids);
      if (this.node(id).campaign()) {
        this.faults++;
        this.log(`node ${id} told to campaign`);
      }
    }
    const d = this.diskPrng;
    if (this.diskLoss === undefined && p.diskLossRate > 0 && d.chance(p.diskLossRate)) {
      const candidates = this.ids.filter((id) => this.joined.has(id) && !this.retired.has(id));
      this.loseDisk(d.pick(candidates), now + d.int(1, p.downStepsMax));
    }
  }

  private randomPartition(): void {
    const f = this.faultPrng;
    const n = this.ids.length;
    const minority = Math.floor((n - 1) / 2);
    const shuffled = [...this.ids];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = f.int(0, i);
      [shuffled[i], shuffled[j]] = [shuffled[j] ?? 0, shuffled[i] ?? 0];
    }
    const style = f.int(0, 3);
    if (style === 0) {
      this.applyFault({ kind: "isolateLeader", withMinority: f.chance(0.5) });
    } else if (style === 1) {
      // Any grouping: each node joins one of up to three groups.
      const groups: NodeId[][] = [[], [], []];
      for (const id of shuffled) groups[f.int(0, 2)]?.push(id);
      this.applyFault({ kind: "partition", groups: groups.filter((g) => g.length > 0) });
    } else if (style === 2) {
      const cut = f.int(1, Math.max(1, minority));
      this.applyFault({ kind: "partition", groups: [shuffled.slice(0, cut), shuffled.slice(cut)] });
    } else {
      // Asymmetric: a few one-way links cut (on top of the current grouping).
      this.faults++;
      const count = f.int(1, n);
      const cuts: string[] = [];
      for (let i = 0; i < count; i++) {
        const from = f.pick(this.ids);
        const to = f.pick(this.ids.filter((id) => id !== from));
        this.network.cutLink(from, to);
        cuts.push(`${from}->${to}`);
      }
      this.log(`links cut: ${cuts.join(" ")}`);
    }
    this.partitionUntil = this.now + f.int(1, this.params.partitionStepsMax);
  }

  private applyFault(action: FaultAction): void {
    this.faults++;
    switch (action.kind) {
      case "isolateLeader": {
        const leader = this.currentLeader() ?? this.faultPrng.pick(this.ids);
        // A minority of its voters (with spares: of its membership, the other nodes on the other side).
        const voters = this.spares ? (this.node(leader).status()?.conf.voters ?? this.ids) : this.ids;
        const minoritySize = action.withMinority ? Math.floor((voters.length - 1) / 2) : 1;
        const others = this.ids.filter((id) => id !== leader);
        const side = [leader, ...others.filter((id) => voters.includes(id)).slice(0, minoritySize - 1)];
        this.network.partition([side, others.filter((id) => !side.includes(id))]);
        this.log(`partition ${this.network.describe()} (leader ${leader} isolated)`);
        break;
      }
      case "partition":
        this.network.partition(action.groups);
        this.log(`partition ${this.network.describe()}`);
        break;
      case "deafenLeader": {
        const leader = this.currentLeader();
        if (leader === undefined) break;
        for (const id of this.ids) if (id !== leader) this.network.cutLink(id, leader);
        this.log(`links cut: ${this.network.describe()} (leader ${leader} deafened)`);
        break;
      }
      case "isolateFollower": {
        const leader = this.currentLeader();
        const follower = this.ids.find((id) => id !== leader && this.node(id).isUp);
        if (follower === undefined) break;
        this.network.partition([[follower], this.ids.filter((id) => id !== follower)]);
        this.log(`partition ${this.network.describe()} (follower ${follower} isolated)`);
        break;
      }
      case "heal":
        this.network.heal();
        this.log(`partition healed`);
        break;
      case "crash": {
        const leader = this.currentLeader();
        let targets: NodeId[];
        if (action.target === "leader") targets = leader === undefined ? [] : [leader];
        else if (action.target === "majority") {
          const count = Math.floor(this.ids.length / 2) + 1;
          const rest = this.ids.filter((id) => id !== leader);
          targets = [...(leader === undefined ? [] : [leader]), ...rest].slice(0, count);
        } else targets = [...action.target];
        // Scripted crashes stay down until a scripted restart (or the heal phase).
        for (const id of targets) if (this.node(id).isUp) this.crash(id, Number.POSITIVE_INFINITY);
        break;
      }
      case "restartAll":
        for (const id of this.ids) if (!this.node(id).isUp && this.restartable(id)) this.restartAt.set(id, this.now);
        break;
      case "loseDisk": {
        if (this.diskLoss !== undefined) break;
        const leader = this.currentLeader();
        let target: NodeId | undefined;
        if (action.target === "leader") {
          target = leader;
        } else if (action.target === "follower") {
          const followers = this.ids.filter((id) => id !== leader && this.node(id).isUp);
          const reached = (id: NodeId): boolean =>
            leader !== undefined && this.network.connected(leader, id) && this.network.connected(id, leader);
          target = followers.find(reached) ?? followers[0];
        } else {
          target = action.target;
        }
        if (target !== undefined) this.loseDisk(target, this.now + action.downSteps);
        break;
      }
      case "network":
        this.network.conditions = action.conditions;
        this.log(`network now ${JSON.stringify(action.conditions)}`);
        break;
      case "conf":
        this.faults--; // proposeConf counts an accepted change
        this.scriptedConf(action.op, action.target);
        break;
    }
  }

  /**
   * The transport of the sender notices a failed delivery now and then and tells the core, as the real
   * driver does: a failed snapshot stream, or a peer that cannot be reached.
   */
  private reportUndeliverable(message: Message): void {
    const sender = this.paused.has(message.from) ? undefined : this.node(message.from);
    if (sender?.isUp !== true || !this.faultPrng.chance(this.params.reportUndeliverableRate)) return;
    if (message.type === "snapshot") sender.reportSnapshotFailed(message.to);
    else sender.reportUnreachable(message.to);
  }

  private crash(id: NodeId, restartAt: number): void {
    this.faults++;
    this.node(id).crash();
    this.paused.delete(id);
    this.learning.delete(id);
    this.restartAt.set(id, restartAt);
    this.workload.onCrash(id);
    this.log(`node ${id} crashed`);
  }

  private restartDue(): void {
    for (const id of this.ids) {
      const at = this.restartAt.get(id);
      if (at === undefined || at > this.now) continue;
      this.restartAt.delete(id);
      if (this.diskLoss?.node === id && this.diskLoss.state.kind === "down") {
        this.restartEmpty(this.diskLoss);
        continue;
      }
      const replay = this.faultPrng.chance(this.params.restartReplayRate);
      this.node(id).start(replay);
      this.started(id);
      const status = this.node(id).status();
      this.log(
        `node ${id} restarted (term ${status?.term}, commit ${status?.commit}, applied ${status?.applied}, last ${status?.lastIndex})`,
      );
    }
  }

  private resumeDue(): void {
    for (const id of this.ids) {
      const pause = this.paused.get(id);
      if (pause === undefined || pause.until > this.now) continue;
      this.paused.delete(id);
      this.log(`node ${id} resumed with ${pause.backlog.length} messages waiting`);
      for (const message of pause.backlog) this.deliverTo(message);
    }
  }

  /**
   * Hands a message to its (running) receiver, unless the receiver refuses its sender's incarnation.
   * Messages carry their sender's incarnation as a network tag once it is not the sender's first one.
   * Snapshots are not checked, as InstallSnapshot is not in production. The receiver records the first
   * incarnation it sees even with the check off (--unsafe-no-incarnation-check turns off the refusal
   * only): production always keeps peers.json, and the bootstrap check reads it.
   */
  private deliverTo(message: Message): void {
    if (message.type !== "snapshot") {
      const incarnation = this.network.tagOf(message) ?? this.incarnations.initialOf(message.from);
      if (!this.incarnations.accepts(message.to, message.from, incarnation) && !this.params.unsafeNoIncarnationCheck) {
        if (this.tracing)
          this.log(`node ${message.to} refused ${describeMessage(message)}: incarnation ${incarnation} of node ${message.from} changed`);
        return;
      }
    }
    this.node(message.to).deliver(message);
  }

  // ---------------------------------------------------------------------------------------------
  // Membership changes (the nemesis)

  /**
   * Now and then (params.membershipRate), one change proposed to the current leader, chosen from what
   * its membership allows: promote a learner; add a spare (as learner, rarely as voter; a replacement
   * owed first); remove a member, the leader included (the last voter too, now and then: the core must
   * refuse it); replace a member (remove it now, add a new spare later); update a member's context.
   */
  private randomConfChange(): void {
    const m = this.memberPrng;
    if (!m.chance(this.params.membershipRate)) return;
    const leader = this.currentLeader();
    if (leader === undefined || this.paused.has(leader)) return;
    const status = this.node(leader).status();
    if (status === undefined) return;
    const { voters, learners } = status.conf;
    const members = [...voters, ...learners];
    const spare = this.unusedSpares[0] !== undefined;
    const choices: [number, () => void][] = [];
    if (learners.length > 0 && voters.length < VOTERS_MAX) choices.push([4, () => this.proposeConf(leader, "promote", m.pick(learners))]);
    if (spare) {
      choices.push([this.replacementsOwed > 0 ? 6 : 2, () => this.proposeConf(leader, "addLearner", this.nextSpare())]);
      if (voters.length < VOTERS_MAX) choices.push([0.3, () => this.proposeConf(leader, "addVoter", this.nextSpare())]);
      choices.push([1.5, () => this.proposeConf(leader, "remove", m.pick(members), true)]);
    }
    choices.push([2, () => this.proposeConf(leader, "remove", m.pick(members))]);
    choices.push([0.3, () => this.proposeConf(leader, "update", m.pick(members))]);
    let roll = m.next() * choices.reduce((sum, [weight]) => sum + weight, 0);
    for (const [weight, propose] of choices) {
      roll -= weight;
      if (roll < 0) {
        propose();
        return;
      }
    }
  }

  private nextSpare(): NodeId {
    const spare = this.unusedSpares[0];
    assert(spare !== undefined, "sim: no spare left");
    return spare;
  }

  /**
   * Proposes one change to `leader`, unless it would leave too few voters (3 while a disk loss may still
   * strike: with 2, losing one disk leaves no quorum) or voters that can take part (not `gone`) that are
   * not a majority. A spare named by an accepted add is started (at once, or within an election timeout).
   * `replace`: a removal after which a new spare is owed.
   */
  private proposeConf(leader: NodeId, op: ConfChangeOp, target: NodeId, replace = false): void {
    const status = this.node(leader).status();
    if (status === undefined) return;
    const voters = status.conf.voters;
    let after = voters;
    if (op === "remove") after = voters.filter((id) => id !== target);
    else if (op === "promote" || op === "addVoter") after = [...voters, target];
    if (after !== voters) {
      const diskLossAhead = this.params.diskLossRate > 0 && this.diskLoss === undefined;
      const votersMin = diskLossAhead ? 3 : 1;
      const able = after.filter((id) => !this.gone.has(id)).length;
      // Removing the last voter is proposed all the same now and then: the core must refuse it.
      const lastVoter = op === "remove" && voters.length === 1 && voters[0] === target && this.memberPrng.chance(0.2);
      if (!lastVoter && (after.length > VOTERS_MAX || after.length < votersMin || able < majority(after.length))) return;
    }
    const context = textEncoder.encode(op === "update" ? `node ${target} at step ${this.now}` : `node ${target}`);
    const cc: ConfChange = { op, nodeId: target, context };
    const result = this.node(leader).proposeConfChange(cc, this.params.promoteLagMax);
    const what = `${op} ${target}${replace ? " (replacing it)" : ""}`;
    if (result === undefined) return;
    if (!result.ok) {
      this.membershipStats.refused++;
      this.log(`membership: leader ${leader} refused ${what}: ${result.reason}${"detail" in result ? ` (${result.detail})` : ""}`);
      return;
    }
    this.membershipStats.proposed++;
    if (op === "remove" && target === leader) this.membershipStats.leaderRemovals++;
    this.faults++;
    const conf = this.node(leader).status()?.conf;
    this.log(
      `membership: leader ${leader} proposed ${what} at index ${result.index} (term ${result.term}): ${conf === undefined ? "?" : describeConf(conf)}`,
    );
    if (replace) this.replacementsOwed++;
    const spareAt = this.unusedSpares.indexOf(target);
    if ((op === "addLearner" || op === "addVoter") && spareAt >= 0) {
      this.unusedSpares.splice(spareAt, 1);
      this.joined.add(target);
      this.membershipStats.added++;
      if (this.replacementsOwed > 0) this.replacementsOwed--;
      const delay = this.memberPrng.chance(0.5) ? 0 : this.memberPrng.int(1, this.electionSteps);
      this.restartAt.set(target, this.now + delay);
      this.log(`membership: node ${target} starts on an empty disk at step ${this.now + delay}`);
    }
  }

  /** A conf entry is committed (a node applied it): the checkers learn the membership; a removal is carried out. */
  private confApplied(entry: Entry): void {
    const decoded = decodeConfEntry(entry.data);
    if (decoded === undefined) return;
    this.monitor.observeCommittedConf(entry.index, decoded.conf);
    if (this.confCommitted.has(entry.index)) return;
    this.confCommitted.add(entry.index);
    this.membershipStats.committed++;
    const { op, nodeId } = decoded.change;
    this.log(`membership: ${op} ${nodeId} committed at index ${entry.index} (term ${entry.term}): ${describeConf(decoded.conf)}`);
    if (op === "remove") this.scheduleRetirement(nodeId);
  }

  /**
   * A removed node is stopped for good: in half the cases within an election timeout, else within ten,
   * or late (until the liveness phase), so that it still runs, crashes and restarts for a while.
   */
  private scheduleRetirement(id: NodeId): void {
    if (this.retired.has(id) || this.retireAt.has(id)) return;
    const m = this.memberPrng;
    const e = this.electionSteps;
    const roll = m.next();
    const delay = roll < 0.5 ? m.int(0, e) : roll < 0.8 ? m.int(e, 10 * e) : m.int(10 * e, Math.max(10 * e, this.options.steps + 2 * e));
    this.retireAt.set(id, this.now + delay);
    this.log(`membership: node ${id} is out; it stops for good at step ${this.now + delay}`);
  }

  private retireDue(): void {
    for (const [id, at] of this.retireAt) {
      if (at > this.now) continue;
      this.retireAt.delete(id);
      this.retired.add(id);
      this.restartAt.delete(id);
      this.membershipStats.retired++;
      const node = this.node(id);
      if (node.isUp) {
        node.crash();
        this.paused.delete(id);
        this.learning.delete(id);
        this.workload.onCrash(id);
      }
      this.log(`membership: node ${id} stopped for good`);
    }
  }

  /** A scripted change: its target resolved now (see FaultAction "conf"). */
  private scriptedConf(op: ConfChangeOp, target: ConfTarget): void {
    const leader = this.currentLeader();
    const status = leader === undefined ? undefined : this.node(leader).status();
    if (leader === undefined || status === undefined) {
      this.log(`membership: no leader for the scripted ${op}`);
      return;
    }
    let id: NodeId | undefined;
    if (target === "leader") id = leader;
    else if (target === "follower") id = [...status.conf.voters].sort((a, b) => a - b).find((v) => v !== leader);
    else if (target === "learner") id = [...status.conf.learners].sort((a, b) => a - b)[0];
    else if (target === "spare") id = this.unusedSpares[0];
    else id = target;
    if (id === undefined) {
      this.log(`membership: no ${target} for the scripted ${op}`);
      return;
    }
    this.proposeConf(leader, op, id);
  }

  // ---------------------------------------------------------------------------------------------
  // Disk loss and the bootstrap check

  /** The node crashes (unless it is down already) and its disk is replaced by an empty one. */
  private loseDisk(id: NodeId, restartAt: number): void {
    assert(this.diskLoss === undefined, "sim: at most one disk loss per run");
    const node = this.node(id);
    const before = durableSummary(node.storage);
    if (node.isUp) this.crash(id, restartAt);
    else {
      this.faults++;
      this.restartAt.set(id, restartAt);
    }
    node.loseDisk();
    this.storages.set(id, node.storage);
    this.incarnations.loseDisk(id);
    this.monitor.observeDiskLost(id);
    this.monitor.excluded.add(id);
    this.gone.add(id);
    this.diskLoss = { node: id, at: this.now, state: { kind: "down" }, rounds: 0 };
    this.log(`node ${id} lost its disk (it held term ${before.term}, last index ${before.lastIndex}, snapshot ${before.snapshotIndex})`);
  }

  /** Its restart is due: the real node runs the bootstrap check first (unless the test turned it off). */
  private restartEmpty(loss: DiskLoss): void {
    if (this.params.unsafeNoBootstrapCheck) {
      this.rejoin(loss, "without the bootstrap check (--unsafe-no-bootstrap-check)");
      return;
    }
    loss.state = { kind: "checking", nextAt: this.now, pause: BOOTSTRAP_RETRY_STEPS };
    this.log(`node ${loss.node} restarted on an empty disk: asking every other member whether the cluster exists`);
  }

  /** A round of the bootstrap check, when one is due (see disk-loss.ts for the model of the answers). */
  private bootstrapDue(): void {
    const loss = this.diskLoss;
    if (loss === undefined || loss.state.kind !== "checking" || loss.state.nextAt > this.now) return;
    const state = loss.state;
    // Production asks the members of --initial-cluster: the initial ones.
    const answers = probeAnswers(loss.node, this.initialIds, {
      connected: (from, to) => this.network.connected(from, to),
      phase: (id) => this.memberPhase(id),
      storage: (id) => this.node(id).storage,
      knows: (receiver, sender) => this.incarnations.knows(receiver, sender),
    });
    loss.rounds++;
    const verdict = judgeBootstrap(answers);
    switch (verdict.kind) {
      case "wait":
        if (this.tracing) this.log(`node ${loss.node} waits for ${verdict.waitingFor.join(",")} (${describeAnswers(answers)})`);
        state.nextAt = this.now + state.pause;
        state.pause = Math.min(BOOTSTRAP_RETRY_STEPS_MAX, 2 * state.pause);
        break;
      case "exists": {
        const e = verdict.evidence;
        loss.state = { kind: "refused" };
        this.log(
          `node ${loss.node} refuses to start: member ${e.peer} holds term ${e.term}, last index ${e.lastIndex}, snapshot ${e.snapshotIndex} (it stays down)`,
        );
        break;
      }
      case "new": {
        // The rule's promise, checked against the members' real state: "new" only if nobody holds anything.
        const holder = this.ids.find((id) => id !== loss.node && holdsSomething(this.node(id).storage));
        if (holder !== undefined) {
          const h = durableSummary(this.node(holder).storage);
          this.monitor.record(
            "bootstrap",
            `node ${loss.node} lost its disk and judgeBootstrap let it bootstrap a new cluster, but node ${holder} holds term ${h.term}, ` +
              `last index ${h.lastIndex}, snapshot ${h.snapshotIndex} (answers: ${describeAnswers(answers)})`,
          );
        }
        this.rejoin(loss, `as a new cluster after ${loss.rounds} round(s): every other member holds nothing`);
        break;
      }
      case "late": {
        // The rule's promise: "late" only if no member that holds something has seen this one.
        const witness = this.ids.find(
          (id) => id !== loss.node && holdsSomething(this.node(id).storage) && this.incarnations.knows(id, loss.node),
        );
        if (witness !== undefined) {
          this.monitor.record(
            "bootstrap",
            `node ${loss.node} lost its disk and judgeBootstrap let it start empty, but node ${witness} holds state and has seen it ` +
              `(answers: ${describeAnswers(answers)})`,
          );
        }
        this.rejoin(loss, `after ${loss.rounds} round(s): the cluster exists, but no member has seen this one`);
        break;
      }
    }
  }

  /** The node starts on its empty disk under a new incarnation. */
  private rejoin(loss: DiskLoss, how: string): void {
    const incarnation = this.incarnations.create(loss.node);
    loss.state = { kind: "rejoined" };
    this.node(loss.node).start(false);
    this.started(loss.node);
    this.updateDiskLoss();
    this.log(`node ${loss.node} started empty ${how}, incarnation ${incarnation}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Incarnations learned by Probe (src/driver/open-node.ts, learnIncarnations; model in disk-loss.ts)

  /** The node's process started: it begins probing the members whose incarnation it does not know. */
  private started(id: NodeId): void {
    this.learning.set(id, { nextAt: this.now, pause: LEARN_RETRY_STEPS });
  }

  /** A round of Probe calls of each node whose round is due: every "running" answer is learned. */
  private learnDue(): void {
    if (this.params.unsafeNoProbeLearning) return;
    for (const id of this.ids) {
      const learning = this.learning.get(id);
      // A paused process makes no call; its round runs when it resumes.
      if (learning === undefined || learning.nextAt > this.now || this.memberPhase(id) !== "running") continue;
      let unknown = 0;
      for (const peer of this.ids) {
        if (peer === id || this.incarnations.knows(id, peer)) continue;
        if (this.reachable(id, peer) && this.memberPhase(peer) === "running") {
          this.incarnations.learn(id, peer);
          this.log(`node ${id} learned incarnation ${this.incarnations.of(peer)} of node ${peer} by Probe`);
        } else {
          unknown++;
        }
      }
      if (unknown === 0) {
        this.learning.delete(id);
      } else {
        learning.nextAt = this.now + learning.pause;
        learning.pause = Math.min(LEARN_RETRY_STEPS_MAX, 2 * learning.pause);
      }
    }
  }

  /** A Probe call needs its answer: links both ways. */
  private reachable(from: NodeId, to: NodeId): boolean {
    return this.network.connected(from, to) && this.network.connected(to, from);
  }

  /** What a Probe call to `id` would find. */
  private memberPhase(id: NodeId): MemberPhase {
    if (this.diskLoss?.node === id && this.diskLoss.state.kind === "checking") return "bootstrapping";
    return this.node(id).isUp && !this.paused.has(id) ? "running" : "unavailable";
  }

  /** A down node that the heal starts again: one of the run, not stopped for good (retired, or by its disk loss). */
  private restartable(id: NodeId): boolean {
    return this.joined.has(id) && !this.retired.has(id) && !this.heldByDiskLoss(id);
  }

  /** Down because of its disk loss, and not to be restarted like a crashed node: checking, or refused. */
  private heldByDiskLoss(id: NodeId): boolean {
    const loss = this.diskLoss;
    return loss?.node === id && (loss.state.kind === "checking" || loss.state.kind === "refused");
  }

  /**
   * The node that lost its disk is out of every quorum until it starts again, and after that while
   * every other member refuses its new incarnation (see invariants.ts); it is gone for the liveness
   * checks while any member refuses it.
   */
  private updateDiskLoss(): void {
    const loss = this.diskLoss;
    if (loss?.state.kind !== "rejoined") return;
    // The other nodes of the run (a spare not added yet has never heard of it; a retired node never will).
    const others = this.ids.filter((id) => id !== loss.node && this.joined.has(id) && !this.retired.has(id));
    const refusing = this.params.unsafeNoIncarnationCheck ? 0 : others.filter((id) => !this.incarnations.wouldAccept(id, loss.node)).length;
    if (refusing === others.length) this.monitor.excluded.add(loss.node);
    else this.monitor.excluded.delete(loss.node);
    if (refusing > 0) this.gone.add(loss.node);
    else this.gone.delete(loss.node);
  }

  private diskLossReport(): DiskLossReport | undefined {
    const loss = this.diskLoss;
    return loss === undefined ? undefined : { node: loss.node, at: loss.at, outcome: loss.state.kind, rounds: loss.rounds };
  }

  private healEverything(): void {
    this.network.heal();
    this.partitionUntil = 0;
    this.network.conditions = CALM_NETWORK;
    // Healed means no fault at all from here on, long delays included: the liveness checks judge the
    // cluster on a healthy network. (Stale messages have had the whole chaos phase to do harm.)
    const dropped = this.network.dropLateMessages(this.now, CALM_NETWORK.delayStepsMax);
    this.log(`${dropped} late messages dropped`);
    for (const id of this.ids) {
      const node = this.node(id);
      node.fsyncStepsMax = CALM_FSYNC_STEPS_MAX;
      if (!node.isUp && this.restartable(id)) this.restartAt.set(id, this.now);
    }
    for (const pause of this.paused.values()) pause.until = this.now;
  }

  private compactions(): void {
    for (const id of this.ids) {
      if (!this.faultPrng.chance(this.params.compactRate)) continue;
      const made = this.node(id).compact();
      if (made !== undefined) {
        this.monitor.observeSnapshotCreated(id, made.index, made.data, made.conf);
        this.log(`node ${id} compacted its log up to ${made.index} (membership ${describeConf(made.conf)})`);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Checks

  private checkStep(): void {
    for (const id of this.ids) {
      const node = this.node(id);
      const running = node.running();
      if (running === undefined) continue;
      running.raft.checkInvariants();
      const status = running.raft.status();
      this.monitor.observeCommit(id, running.incarnation, status.commit, running.durableCommitAtStart);
      this.monitor.checkAppliedDurable(id, running.sm.index, node.storage);
      if (status.role === "leader") {
        this.monitor.observeLeader(id, status.term);
        this.monitor.checkLeaderCompleteness(id, status.term, node.logView(status));
      }
    }
    this.updateDiskLoss();
    this.monitor.checkCommittedDurable(this.storages);
  }

  private nodeHooks(): SimNodeHooks {
    return {
      send: (message) => {
        if (message.type === "append") {
          this.monitor.observeLogEntries(
            message.entries,
            message.prevTerm,
            `append from ${message.from} (term ${message.term}) to ${message.to}`,
          );
        }
        if (this.tracing) this.log(`send ${describeMessage(message)}`);
        // A node that started again on a new disk tags what it sends with its new incarnation.
        const loss = this.diskLoss;
        this.network.send(
          message,
          this.now,
          loss?.node === message.from && loss.state.kind === "rejoined" ? this.incarnations.of(message.from) : undefined,
        );
      },
      persisted: (node, write) => {
        this.monitor.observeLogEntries(write.entries, write.prevTerm, `node ${node.id} durable log`);
        if (write.hardState !== undefined) this.monitor.observeDurableHardState(node.id, write.hardState);
      },
      softState: (node, soft, term) => {
        if (soft.role === "leader") this.monitor.observeLeader(node.id, term);
        this.log(`node ${node.id} is ${soft.role} in term ${term} (leader ${soft.leader})`);
      },
      applied: (node, entry, command, output, term) => {
        this.monitor.observeApplied(node.id, entry, term);
        if (entry.type === "conf") this.confApplied(entry);
        if (command !== undefined) this.monitor.observeCommand(node.id, command.opId, entry.index);
        if (node.running() !== undefined) this.workload.onApplied(node.id, entry, command, output);
      },
      installed: (node, snapshot) => {
        const term = node.status()?.term ?? 0;
        this.monitor.observeSnapshotInstalled(node.id, snapshot.meta, term);
        this.monitor.observeCommittedConf(snapshot.meta.index, snapshot.meta.conf);
        this.workload.onInstalled(node.id, snapshot.meta.index);
        this.log(`node ${node.id} installed a snapshot at ${snapshot.meta.index} (term ${snapshot.meta.term})`);
      },
      readReady: (node, requestId, index) => {
        this.workload.onReadReady(node.id, requestId, index);
      },
      contractViolation: (node, message) => {
        this.monitor.record("contract", `node ${node.id}: ${message}`);
      },
      unblocked: (node, messages, readStates) => {
        if (this.tracing && messages + readStates > 0) {
          this.log(`node ${node.id} (write in flight) took ${messages} unblocked message(s) and ${readStates} read state(s)`);
        }
      },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  private node(id: NodeId): SimNode {
    const node = this.nodes.get(id);
    assert(node !== undefined, `sim: no node ${id}`);
    return node;
  }

  /** The leader with the highest term among running nodes that think they lead. */
  private currentLeader(): NodeId | undefined {
    let best: { id: NodeId; term: number } | undefined;
    for (const id of this.ids) {
      const status = this.node(id).status();
      if (status?.role === "leader" && (best === undefined || status.term > best.term)) best = { id, term: status.term };
    }
    return best?.id;
  }

  private describeCluster(): string {
    return this.ids
      .map((id) => {
        const s = this.node(id).status();
        const lost = this.diskLoss?.node === id ? `(disk lost, ${this.diskLoss.state.kind})` : "";
        if (!this.joined.has(id)) return `${id}:spare`;
        if (this.retired.has(id)) return `${id}:retired`;
        return s === undefined ? `${id}:down${lost}` : `${id}:${s.role}/t${s.term}/lead${s.leader}/c${s.commit}/last${s.lastIndex}${lost}`;
      })
      .join(" ")
      .concat(this.spares ? ` committed membership ${describeConf(this.monitor.committedConf)}` : "");
  }

  private log(line: string): void {
    if (!this.tracing) return;
    this.trace.push(`[${this.now}] ${line}`);
    if (this.trace.length > TRACE_LINES_MAX) this.trace.splice(0, this.trace.length - TRACE_LINES_MAX);
  }

  private view(): SimView {
    return {
      now: () => this.now,
      phase: () => this.phase.kind,
      status: (id) => this.node(id).status(),
      nodeIds: this.ids,
      highestCommitted: () => this.monitor.highestCommitted,
      diskLoss: () => this.diskLossReport(),
      committedConf: () => this.monitor.committedConf,
    };
  }
}

function describeAnswers(answers: ReadonlyMap<NodeId, ProbeAnswer>): string {
  return [...answers]
    .map(([id, a]) => `${id}:${a.kind === "running" ? `t${a.term}/last${a.lastIndex}/snap${a.snapshotIndex}` : a.kind}`)
    .join(" ");
}

function describeMessage(m: Message): string {
  const head = `${m.type} ${m.from}->${m.to} t${m.term}`;
  switch (m.type) {
    case "append":
      return `${head} prev=(${m.prevIndex},t${m.prevTerm}) entries=${m.entries.map((e) => `${e.index}/t${e.term}`).join(",") || "-"} commit=${m.commit}`;
    case "appendResp":
      return `${head} ${m.reject ? "reject" : "ok"} index=${m.index} hint=(${m.hintIndex},t${m.hintTerm})`;
    case "vote":
      return `${head}${m.preVote ? " pre" : ""} last=(${m.lastLogIndex},t${m.lastLogTerm})${m.transfer ? " transfer" : ""}`;
    case "voteResp":
      return `${head}${m.preVote ? " pre" : ""} ${m.granted ? "granted" : "rejected"}`;
    case "heartbeat":
      return `${head} commit=${m.commit} round=${m.readRound}`;
    case "heartbeatResp":
      return `${head} round=${m.readRound}`;
    case "snapshot":
      return `${head} snap=(${m.snapshot.meta.index},t${m.snapshot.meta.term})`;
    case "readIndex":
      return `${head} ids=${m.requestIds.join(",")}`;
    case "readIndexResp":
      return `${head} ids=${m.requestIds.join(",")} index=${m.index}`;
    case "timeoutNow":
      return head;
  }
}
