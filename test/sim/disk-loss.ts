import type { MemoryStorage, NodeId } from "../../src/core/index.js";
import { assert } from "../../src/lib/assert.js";
import type { Prng } from "../../src/lib/prng.js";
import type { ProbeAnswer } from "../../src/transport/index.js";

/**
 * The simulator's model of issue 9's two guards against a member that lost its disk
 * (src/driver/bootstrap-check.ts and src/driver/peer-incarnations.ts).
 *
 * The bootstrap check. A member whose disk is empty asks every other member what it holds, and the
 * production rule `judgeBootstrap` (imported as is by simulation.ts) decides. The model of one round of
 * Probe calls is `probeAnswers`: at the moment of the round, for each other member,
 *  - no link both ways (a partition or a one-way cut: a call needs its answer) -> "unreachable";
 *  - down (crashed, or refused to start) or paused (a stopped process answers no call) -> "unreachable";
 *  - itself empty and asking the same question -> "bootstrapping";
 *  - otherwise "running" with its durable term, last log index and snapshot index, and whether it has
 *    seen an incarnation of the asker (its record of incarnations below).
 * No message goes through the simulated network for this (a Probe is not a Raft message): the answers
 * are read at once from the members' state, so a round takes no time and sees a consistent cut. The
 * answer uses the durable state where the real node reports its core's (Status of the driver): the
 * durable state is never ahead of the core's, so the model's answer is the weaker one and a rule safe
 * under it is safe under the real answer too. No member is ever "starting" (a simulated start is
 * instantaneous). A round that ends in "wait" is retried after a pause that doubles from
 * BOOTSTRAP_RETRY_STEPS up to BOOTSTRAP_RETRY_STEPS_MAX, as runBootstrapCheck does (250 ms .. 5 s).
 *
 * Incarnations. Every disk gets a random incarnation (never 0) when it is created; a node sends it with
 * every message; each node remembers the incarnation each other member showed it first, and drops every
 * later message from that member that carries another one. The record survives the node's own crashes
 * (peers.json on its disk) and is lost with its disk. As in production (raft-service.ts checks Step
 * batches only), InstallSnapshot is not checked: snapshot messages are never dropped for it.
 *
 * Incarnations learned by Probe (src/driver/open-node.ts, learnIncarnations). Each time a node starts,
 * it probes every other member whose incarnation it does not know yet, at once and then after pauses
 * that double from LEARN_RETRY_STEPS up to LEARN_RETRY_STEPS_MAX (1 s up to 10 s in production, on the
 * bootstrap check's scale of 16 steps a second), until it knows them all or it stops; a member that
 * answers "running" (reachable both ways, up, not paused, not itself checking) has its current
 * incarnation recorded as a first sighting (PeerIncarnations.check: nothing changes if another one is
 * known already). Like the bootstrap check's rounds, a round takes no time and no simulated message.
 */
export const BOOTSTRAP_RETRY_STEPS = 4;
export const BOOTSTRAP_RETRY_STEPS_MAX = 64;
export const LEARN_RETRY_STEPS = 16;
export const LEARN_RETRY_STEPS_MAX = 160;

export type MemberPhase = "running" | "unavailable" | "bootstrapping";

/** What a round of Probe calls can see of the cluster at one moment. */
export interface ProbeView {
  /** Whether `from` can send to `to` now. */
  connected(from: NodeId, to: NodeId): boolean;
  phase(node: NodeId): MemberPhase;
  storage(node: NodeId): MemoryStorage;
  /** Whether `receiver` has seen an incarnation of `sender` (Incarnations.knows). */
  knows(receiver: NodeId, sender: NodeId): boolean;
}

/** The answers of every member other than `self` to one round of Probe calls (see the module comment). */
export function probeAnswers(self: NodeId, ids: readonly NodeId[], view: ProbeView): Map<NodeId, ProbeAnswer> {
  const answers = new Map<NodeId, ProbeAnswer>();
  for (const peer of ids) {
    if (peer === self) continue;
    if (!view.connected(self, peer) || !view.connected(peer, self)) {
      answers.set(peer, { kind: "unreachable", reason: "partitioned" });
      continue;
    }
    const phase = view.phase(peer);
    if (phase === "unavailable") answers.set(peer, { kind: "unreachable", reason: "down or paused" });
    else if (phase === "bootstrapping") answers.set(peer, { kind: "bootstrapping" });
    else answers.set(peer, { kind: "running", ...durableSummary(view.storage(peer)), knowsAsker: view.knows(peer, self) });
  }
  return answers;
}

/** What a member's disk holds, as a Probe answer reports it. */
export function durableSummary(storage: MemoryStorage): { term: number; lastIndex: number; snapshotIndex: number } {
  return { term: storage.initialState().hardState.term, lastIndex: storage.lastIndex(), snapshotIndex: storage.snapshot().meta.index };
}

export function holdsSomething(storage: MemoryStorage): boolean {
  const s = durableSummary(storage);
  return s.term > 0 || s.lastIndex > 0 || s.snapshotIndex > 0;
}

/**
 * The incarnation of each node's disk and, per node, the incarnation it first saw of each other member
 * (PeerIncarnations of production, kept in memory: it survives the node's crashes, not its disk loss).
 */
export class Incarnations {
  private readonly current = new Map<NodeId, number>();
  private readonly initial = new Map<NodeId, number>();
  private readonly known = new Map<NodeId, Map<NodeId, number>>();
  /** Messages from a sender whose incarnation changed (dropped, unless the check is off). */
  refused = 0;
  /** Incarnations recorded from a Probe answer (`learn`) rather than from a message. */
  learnedByProbe = 0;

  constructor(
    private readonly ids: readonly NodeId[],
    private readonly prng: Prng,
  ) {
    for (const id of ids) {
      const incarnation = this.draw(0);
      this.current.set(id, incarnation);
      this.initial.set(id, incarnation);
      this.known.set(id, new Map());
    }
  }

  /** The incarnation of the node's first disk (that of every message the simulator did not tag). */
  initialOf(node: NodeId): number {
    const incarnation = this.initial.get(node);
    assert(incarnation !== undefined, `sim: no incarnation for node ${node}`);
    return incarnation;
  }

  of(node: NodeId): number {
    const incarnation = this.current.get(node);
    assert(incarnation !== undefined, `sim: no incarnation for node ${node}`);
    return incarnation;
  }

  /**
   * The node lost its disk: its record of the others' incarnations is gone (its own is replaced by
   * `create` when the empty disk is initialized; until then the node sends nothing).
   */
  loseDisk(node: NodeId): void {
    this.known.get(node)?.clear();
  }

  /** The node's empty disk is initialized (it bootstraps): a new incarnation, never the old one nor 0. */
  create(node: NodeId): number {
    const incarnation = this.draw(this.of(node));
    this.current.set(node, incarnation);
    return incarnation;
  }

  /**
   * Whether `receiver` accepts a message from `sender` that carries `incarnation`; the first incarnation
   * it sees of a member is the one it accepts from then on (PeerIncarnations.check).
   */
  accepts(receiver: NodeId, sender: NodeId, incarnation: number): boolean {
    const known = this.known.get(receiver);
    assert(known !== undefined, `sim: no incarnation record for node ${receiver}`);
    const first = known.get(sender);
    if (first === undefined) {
      known.set(sender, incarnation);
      return true;
    }
    if (first === incarnation) return true;
    this.refused++;
    return false;
  }

  /** Whether `receiver` has seen an incarnation of `sender` (whichever). */
  knows(receiver: NodeId, sender: NodeId): boolean {
    return this.known.get(receiver)?.has(sender) ?? false;
  }

  /**
   * `receiver` probed `sender` and it answered "running": its current incarnation is recorded if
   * `receiver` knew none (a first sighting, as for a message; a known one is kept). Returns whether it
   * was recorded.
   */
  learn(receiver: NodeId, sender: NodeId): boolean {
    const known = this.known.get(receiver);
    assert(known !== undefined, `sim: no incarnation record for node ${receiver}`);
    if (known.has(sender)) return false;
    known.set(sender, this.of(sender));
    this.learnedByProbe++;
    return true;
  }

  /** Whether `receiver` would accept a message from `sender` now (without recording anything). */
  wouldAccept(receiver: NodeId, sender: NodeId): boolean {
    const first = this.known.get(receiver)?.get(sender);
    return first === undefined || first === this.of(sender);
  }

  /** How many other members know another incarnation of `node` (they drop whatever it sends). */
  refusing(node: NodeId): number {
    const mine = this.of(node);
    let count = 0;
    for (const id of this.ids) {
      if (id === node) continue;
      const first = this.known.get(id)?.get(node);
      if (first !== undefined && first !== mine) count++;
    }
    return count;
  }

  private draw(previous: number): number {
    for (;;) {
      const incarnation = this.prng.int(1, 0xffff_ffff);
      if (incarnation !== previous) return incarnation;
    }
  }
}
