import { assert } from "../lib/assert.js";
import { hasQuorum } from "./quorum.js";
import { noNode, type NodeId, type ReadState } from "./types.js";

/** Where ReadIndex sends what is not a local answer; RaftNode turns these into messages of its term. */
export interface ReadIndexOutput {
  /** A follower asks the leader `to` for a read index on behalf of its local readers. */
  forward(to: NodeId, requestIds: readonly number[]): void;
  /** The leader answers reads that follower `to` forwarded (index 0: refused). */
  respond(to: NodeId, requestIds: readonly number[], index: number): void;
}

/** What the leader's log says when a read arrives or its commit index moves. */
export interface LeaderCommit {
  /** The leader's commit index. */
  readonly commit: number;
  /** Whether the entry at `commit` is of the leader's term: only then is `commit` known to be the latest. */
  readonly inTerm: boolean;
  readonly voters: readonly NodeId[];
}

/** A read waiting for a heartbeat round that confirms leadership (leader side). */
interface PendingRead {
  /** Local request ids, or the follower's when `from` is another node. */
  readonly requestIds: readonly number[];
  readonly from: NodeId;
  readonly index: number;
  readonly round: number;
}

/** A read that arrived before the leader committed an entry of its term: its index is not yet known. */
interface ReadAwaitingCommit {
  readonly requestIds: readonly number[];
  readonly from: NodeId;
}

/** A read forwarded to the leader, failed if no answer comes within `timeoutTicks`. */
interface ForwardedRead {
  readonly requestId: number;
  ticksLeft: number;
}

/**
 * Linearizable reads without a log entry (Raft thesis 6.4), both sides:
 *
 * - Leader: a read takes the commit index as its read index once the leader has committed an entry of
 *   its term (before that the commit index may be stale), then waits for a heartbeat round that starts
 *   after the read arrived; a quorum acknowledging that round proves the node was still leader at some
 *   moment after the read began. Reads arriving before a round starts share it; rounds start only when
 *   RaftNode hands out a Ready (or takeUnblocked), so a burst of reads costs one round.
 * - Follower: a read is forwarded to the leader and answered by its readIndexResp, or failed after an
 *   election timeout without one, or at once when the leader changes.
 *
 * Answers to local reads queue as ReadStates (index 0: failed, retry); answers to other nodes and
 * forwarded requests go out through `ReadIndexOutput`. RaftNode owns roles and terms and tells this class
 * when leadership begins and ends; it never looks inside.
 */
export class ReadIndex {
  private readStates: ReadState[] = [];
  /** The latest round started; heartbeats carry it and followers echo it back. Never goes down. */
  private round = 0;
  private roundInFlight = false;
  /** Reads wait for round `round + 1`, which starts at the next Ready. */
  private roundWanted = false;
  private pending: PendingRead[] = [];
  private awaitingCommit: ReadAwaitingCommit[] = [];
  /** Per member, the latest round it acknowledged (leader side; cleared with every new term or role). */
  private acked = new Map<NodeId, number>();
  private forwarded: ForwardedRead[] = [];

  constructor(
    private readonly self: NodeId,
    /** At most this many reads wait on each side; more are failed at once. */
    private readonly pendingMax: number,
    /** A forwarded read fails after this many ticks without an answer. */
    private readonly timeoutTicks: number,
    private readonly output: ReadIndexOutput,
  ) {}

  // Leader side --------------------------------------------------------------------------------

  /** A read on the leader: local (`from` is this node) or forwarded by a follower. */
  leaderRead(requestIds: readonly number[], from: NodeId, leader: LeaderCommit): void {
    if (this.pending.length + this.awaitingCommit.length >= this.pendingMax) {
      this.answer(requestIds, from, 0);
      return;
    }
    // Until the leader commits an entry of its term it may not know the latest commit index.
    if (!leader.inTerm) {
      this.awaitingCommit.push({ requestIds, from });
      return;
    }
    // The only voter is this leader: no one else can have been elected. (A leader removing itself is not
    // a voter, and waits for a round like any other.)
    if (leader.voters.length === 1 && leader.voters[0] === this.self) {
      this.answer(requestIds, from, leader.commit);
      return;
    }
    // Join the next round: it starts after this read arrived, so its quorum proves we were still leader at
    // some point after the read began. It starts at the next Ready (not here), so every read that arrives
    // before then shares its one heartbeat round.
    if (!this.roundInFlight) this.roundWanted = true;
    this.pending.push({ requestIds, from, index: leader.commit, round: this.round + 1 });
  }

  /** The leader's commit index moved: reads that waited for an entry of its term get their index now. */
  leaderCommitted(leader: LeaderCommit): void {
    if (this.awaitingCommit.length === 0 || !leader.inTerm) return;
    const waiting = this.awaitingCommit;
    this.awaitingCommit = [];
    for (const read of waiting) this.leaderRead(read.requestIds, read.from, leader);
  }

  /** Whether reads wait for a round that has not started. */
  wantsRound(): boolean {
    return this.roundWanted;
  }

  /** Starts the wanted round; the caller sends heartbeats carrying `currentRound()`. */
  startRound(): void {
    this.roundWanted = false;
    this.round++;
    this.roundInFlight = true;
  }

  /** The round heartbeats carry now. */
  currentRound(): number {
    return this.round;
  }

  /** Member `from` echoed round `round` in a heartbeat answer: release every read whose round has a quorum. */
  acknowledge(from: NodeId, round: number, voters: readonly NodeId[]): void {
    // A round we never started cannot have been acknowledged: without this bound one forged or corrupted
    // response would count this follower toward every future round.
    if (round <= (this.acked.get(from) ?? 0) || round > this.round) return;
    this.acked.set(from, round);
    if (this.roundInFlight) this.confirmRound(voters);
  }

  /**
   * The leader's voters changed (a conf entry reached its log): the round in flight may have a quorum of
   * the new voters already. Its members acknowledge a round once (a repeated echo counts for nothing), so
   * waiting for the next acknowledgement could wait forever: for a voter that was just removed, or when
   * every member that is up has answered.
   */
  votersChanged(voters: readonly NodeId[]): void {
    if (this.roundInFlight) this.confirmRound(voters);
  }

  /** Releases every read of the round in flight if a quorum of `voters` acknowledged it. */
  private confirmRound(voters: readonly NodeId[]): void {
    const confirmed = this.round;
    if (!hasQuorum(voters, (id) => id === this.self || (this.acked.get(id) ?? 0) >= confirmed)) return;
    this.roundInFlight = false;
    const rest: PendingRead[] = [];
    for (const read of this.pending) {
      if (read.round <= confirmed) this.answer(read.requestIds, read.from, read.index);
      else rest.push(read);
    }
    this.pending = rest;
    assert(
      rest.every((r) => r.round === confirmed + 1),
      "read index: reads queued for a round other than the next",
    );
    if (rest.length > 0) this.roundWanted = true;
  }

  /** Leadership ended: every read waiting on the leader side fails (its asker retries elsewhere). */
  failLeaderReads(): void {
    for (const read of this.pending) this.answer(read.requestIds, read.from, 0);
    for (const read of this.awaitingCommit) this.answer(read.requestIds, read.from, 0);
    this.pending = [];
    this.awaitingCommit = [];
    this.roundInFlight = false;
    this.roundWanted = false;
  }

  /**
   * A new term or role: no round is in flight or wanted any more, and acknowledgements of earlier rounds
   * count for nothing. Reads waiting on the leader side must have been failed first (failLeaderReads).
   */
  reset(): void {
    this.roundInFlight = false;
    this.roundWanted = false;
    this.acked = new Map();
  }

  // Follower side ------------------------------------------------------------------------------

  /** A read on a node that does not lead: forwarded to `leader`, or failed at once without one. */
  followerRead(requestId: number, leader: NodeId): void {
    if (leader === noNode || this.forwarded.length >= this.pendingMax) {
      this.readStates.push({ requestId, index: 0 });
      return;
    }
    this.forwarded.push({ requestId, ticksLeft: this.timeoutTicks });
    this.output.forward(leader, [requestId]);
  }

  /** The leader's answer to forwarded reads; ids this node no longer waits for are ignored. */
  leaderAnswered(requestIds: readonly number[], index: number): void {
    for (const requestId of requestIds) {
      const at = this.forwarded.findIndex((r) => r.requestId === requestId);
      if (at < 0) continue;
      this.forwarded.splice(at, 1);
      this.readStates.push({ requestId, index });
    }
  }

  /** Time passes for forwarded reads: those without an answer for `timeoutTicks` fail. */
  tick(): void {
    if (this.forwarded.length === 0) return;
    const kept: ForwardedRead[] = [];
    for (const read of this.forwarded) {
      read.ticksLeft--;
      if (read.ticksLeft <= 0) this.readStates.push({ requestId: read.requestId, index: 0 });
      else kept.push(read);
    }
    this.forwarded = kept;
  }

  /** The leader the reads were forwarded to is gone: fail them now rather than at their timeout. */
  failForwardedReads(): void {
    for (const read of this.forwarded) this.readStates.push({ requestId: read.requestId, index: 0 });
    this.forwarded = [];
  }

  // Invariants ---------------------------------------------------------------------------------

  /** Asserts the bookkeeping of both sides; `leader` is undefined unless this node leads. O(waiting reads). */
  checkInvariants(leader: LeaderCommit | undefined): void {
    if (leader === undefined) {
      // Leadership ends only through failLeaderReads and reset: nothing is left waiting on a leader side.
      assert(this.pending.length === 0 && this.awaitingCommit.length === 0, "read index: leader-side reads on a node that does not lead");
      assert(!this.roundInFlight && !this.roundWanted, "read index: a read round on a node that does not lead");
    } else {
      // A leader answers its own reads and never forwards (every path to leadership failed the forwarded ones).
      assert(this.forwarded.length === 0, "read index: forwarded reads on the leader");
      // leaderCommitted() releases reads that wait for an entry of the term as soon as one commits.
      assert(this.awaitingCommit.length === 0 || !leader.inTerm, "read index: reads still wait for a commit in the term, which happened");
    }
    // The bound on waiting reads is what protects the leader's memory from a flood of reads.
    assert(this.pending.length + this.awaitingCommit.length <= this.pendingMax, "read index: more leader-side reads than the bound");
    assert(this.forwarded.length <= this.pendingMax, "read index: more forwarded reads than the bound");
    // Someone must start the round pending reads wait for, or they wait for ever.
    assert(this.pending.length === 0 || this.roundInFlight || this.roundWanted, "read index: reads wait for a round nobody starts");
    let prev: PendingRead | undefined;
    for (const read of this.pending) {
      // A read waits for the round after the one in flight when it arrived, so only two rounds ever have
      // readers: the one in flight, and the next.
      const inFlightRound = this.roundInFlight && read.round === this.round;
      assert(
        inFlightRound || read.round === this.round + 1,
        () => `read index: a read waits for round ${read.round} (current ${this.round}, in flight ${this.roundInFlight})`,
      );
      // A read index is a commit index of the past: it cannot be beyond the present one.
      assert(read.index <= (leader?.commit ?? 0), () => `read index: read index ${read.index} beyond commit ${leader?.commit ?? 0}`);
      // Reads queue in arrival order, and commit index and round only grow.
      assert(prev === undefined || (read.round >= prev.round && read.index >= prev.index), "read index: pending reads out of order");
      prev = read;
    }
    for (const [id, round] of this.acked) {
      // acknowledge() refuses rounds never started: a forged answer must not confirm a later round.
      assert(round <= this.round, () => `read index: member ${id} acknowledged round ${round}, beyond the latest ${this.round}`);
    }
    for (const read of this.forwarded) {
      // tick() fails a forwarded read when its ticks run out, so a waiting one always has some left.
      assert(
        read.ticksLeft > 0 && read.ticksLeft <= this.timeoutTicks,
        () => `read index: forwarded read with ${read.ticksLeft} ticks left`,
      );
    }
  }

  // Output -------------------------------------------------------------------------------------

  hasReadStates(): boolean {
    return this.readStates.length > 0;
  }

  /** The answered local reads since the last call, in order. */
  takeReadStates(): ReadState[] {
    const taken = this.readStates;
    this.readStates = [];
    return taken;
  }

  private answer(requestIds: readonly number[], from: NodeId, index: number): void {
    if (from === this.self) {
      for (const requestId of requestIds) this.readStates.push({ requestId, index });
    } else {
      this.output.respond(from, requestIds, index);
    }
  }
}
