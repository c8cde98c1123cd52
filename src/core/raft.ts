import { assert } from "../lib/assert.js";
import type { Prng } from "../lib/prng.js";
import { applyConfChange, confChangeRefusal, decodeConfEntry, encodeConfEntry, type ConfChange } from "./conf-change.js";
import { Progress } from "./progress.js";
import { committedIndex, hasQuorum, voteResult } from "./quorum.js";
import { RaftLog } from "./raft-log.js";
import { ReadIndex, type LeaderCommit } from "./read-index.js";
import { entryOverheadBytes, entrySize, type LogStorage } from "./storage.js";
import {
  noNode,
  sameHardState,
  waitsForDurability,
  type AppendRequest,
  type AppendResponse,
  type ConfState,
  type Entry,
  type EntryType,
  type HardState,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type Message,
  type NodeId,
  type Ready,
  type Role,
  type SnapshotRequest,
  type SoftState,
  type Unblocked,
  type VoteRequest,
  type VoteResponse,
} from "./types.js";

/** The defaults of RaftConfig's limits; each field of RaftConfig says what its limit bounds. */
const msgBytesMaxDefault = 1024 * 1024;
const inflightMsgsMaxDefault = 256;
const inflightBytesMaxDefault = 32 * 1024 * 1024;
const uncommittedBytesMaxDefault = 64 * 1024 * 1024;
const applyBytesMaxDefault = 16 * 1024 * 1024;
const pendingReadsMaxDefault = 65_536;

/**
 * How many election timeouts a leader waits for a follower to report a snapshot installed before it
 * probes again: a lost snapshot (or a lost answer) must not stall the follower for good, yet a large
 * snapshot needs time to stream, and each retry sends it whole again.
 */
const snapshotWaitElections = 4;

export interface RaftConfig {
  readonly id: NodeId;
  readonly storage: LogStorage;
  readonly prng: Prng;
  /** A follower campaigns after a random timeout in [electionTicks, 2 * electionTicks) without a leader. */
  readonly electionTicks: number;
  /** A leader sends heartbeats every heartbeatTicks; must be well below electionTicks. */
  readonly heartbeatTicks: number;
  /** PreVote (thesis 9.6): a partitioned node rejoining does not force a term change. Default true. */
  readonly preVote?: boolean;
  /** CheckQuorum (thesis 6.2): a leader steps down without a live quorum; followers ignore disruptive votes. Default true. */
  readonly checkQuorum?: boolean;
  /** The maximum size of the entries in one append message; also the largest proposal. Default msgBytesMaxDefault. */
  readonly msgBytesMax?: number;
  /** Per follower: at most this many append messages in flight in replicate state. Default inflightMsgsMaxDefault. */
  readonly inflightMsgsMax?: number;
  /** Per follower: at most this many entry bytes in flight. Default inflightBytesMaxDefault. */
  readonly inflightBytesMax?: number;
  /** The leader refuses proposals while this many bytes are appended but not committed. Default uncommittedBytesMaxDefault. */
  readonly uncommittedBytesMax?: number;
  /** At most this many bytes of committed entries per Ready. Default applyBytesMaxDefault. */
  readonly applyBytesMax?: number;
  /** At most this many linearizable reads waiting in the core; more are failed at once. Default pendingReadsMaxDefault. */
  readonly pendingReadsMax?: number;
  /** The index the state machine has already applied (its snapshot index after a restart). */
  readonly applied?: number;
}

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: "notLeader" | "transferring" | "tooLarge" | "overloaded"; readonly leader: NodeId };

export type ConfProposeResult =
  | ProposeResult
  | {
      /**
       * A membership change refused: `confPending` while an earlier change is not committed or this
       * leader has not yet committed an entry of its term (retry shortly); `confRefused` when the
       * change does not fit the membership (`detail` says why) or a learner lags too far to be promoted.
       */
      readonly ok: false;
      readonly reason: "confPending" | "confRefused";
      readonly leader: NodeId;
      readonly detail: string;
    };

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: Progress["state"];
  readonly recentActive: boolean;
}

export interface Status {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId;
  readonly leader: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly conf: ConfState;
  readonly leadTransferee: NodeId;
  /** Only on the leader: replication progress per member. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus> | undefined;
}

const emptyData = new Uint8Array(0);

/**
 * The Raft state machine (Ongaro & Ousterhout; structure after etcd-io/raft). Synchronous and
 * deterministic: time is `tick()`, randomness comes from the injected PRNG, and every effect is reported
 * through `ready()` for the driver to carry out.
 *
 * All input goes through `step()` (messages from peers) or the local methods; the term check runs first,
 * then the handler of the current role.
 */
export class RaftNode {
  readonly id: NodeId;
  private readonly prng: Prng;
  private readonly log: RaftLog;
  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly msgBytesMax: number;
  private readonly inflightMsgsMax: number;
  private readonly inflightBytesMax: number;
  private readonly uncommittedBytesMax: number;
  private readonly applyBytesMax: number;

  private term = 0;
  private vote: NodeId = noNode;
  private leader: NodeId = noNode;
  private role: Role = "follower";
  /** The membership in effect: that of the last conf entry in the log, else confBase. */
  private conf: ConfState;
  /** The membership as of the entry just before the log (the snapshot's). */
  private confBase: ConfState;
  /** Every conf entry in the log (above the snapshot), ascending by index, with the membership it makes. */
  private confEntries: { readonly index: number; readonly conf: ConfState; readonly context: Uint8Array }[] = [];
  private progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private leadTransferee: NodeId = noNode;
  private uncommittedBytes = 0;

  private messages: Message[] = [];
  /** Set when new entries or a new commit index should be broadcast; flushed once per Ready. */
  private broadcastPending = false;

  private readonly reads: ReadIndex;

  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: Ready | undefined;

  constructor(config: RaftConfig) {
    assert(Number.isSafeInteger(config.id) && config.id > 0, "raft: id must be a positive integer");
    assert(config.heartbeatTicks > 0 && config.electionTicks > config.heartbeatTicks, "raft: need 0 < heartbeatTicks < electionTicks");
    this.id = config.id;
    this.prng = config.prng;
    this.electionTicks = config.electionTicks;
    this.heartbeatTicks = config.heartbeatTicks;
    this.preVote = config.preVote ?? true;
    this.checkQuorum = config.checkQuorum ?? true;
    this.msgBytesMax = config.msgBytesMax ?? msgBytesMaxDefault;
    this.inflightMsgsMax = config.inflightMsgsMax ?? inflightMsgsMaxDefault;
    this.inflightBytesMax = config.inflightBytesMax ?? inflightBytesMaxDefault;
    this.uncommittedBytesMax = config.uncommittedBytesMax ?? uncommittedBytesMaxDefault;
    this.applyBytesMax = config.applyBytesMax ?? applyBytesMaxDefault;
    this.reads = new ReadIndex(this.id, config.pendingReadsMax ?? pendingReadsMaxDefault, this.electionTicks, {
      forward: (to, requestIds) => this.send({ type: "readIndex", from: this.id, to, term: this.term, requestIds }),
      respond: (to, requestIds, index) => this.send({ type: "readIndexResp", from: this.id, to, term: this.term, requestIds, index }),
    });

    const { hardState, conf } = config.storage.initialState();
    this.log = new RaftLog(config.storage, hardState.commit, config.applied ?? 0);
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.confBase = conf;
    this.conf = conf;
    // The membership is the log's last conf entry, committed or not: a restart finds it again here.
    this.rescanConf(this.log.firstIndex());
    this.prevHardState = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.resetProgress();
    this.becomeFollower(this.term, noNode);
    this.prevSoftState = { leader: noNode, role: "follower" };
  }

  // ---------------------------------------------------------------------------------------------
  // Local inputs

  tick(): void {
    this.electionElapsed++;
    this.reads.tick();
    if (this.role === "leader") {
      this.tickLeader();
    } else if (this.electionElapsed >= this.randomizedElectionTimeout && this.campaignable()) {
      this.electionElapsed = 0;
      this.campaign();
    }
  }

  /** Starts an election now (with PreVote first when enabled). */
  campaign(): void {
    if (this.role === "leader" || !this.campaignable()) return;
    if (this.preVote) this.becomePreCandidate();
    else this.becomeCandidate(false);
  }

  propose(data: Uint8Array): ProposeResult {
    return this.proposeEntry("normal", data);
  }

  /**
   * Proposes a membership change. One server at a time, so any majority of the old membership overlaps
   * any majority of the new one, and only:
   *  - when no earlier change is uncommitted: two pending single-server changes could together change
   *    the membership by two, whose majorities need not overlap;
   *  - once this leader committed an entry of its own term. Without it a change of a deposed leader's
   *    term, never committed, can be overwritten after a new leader's change took effect on some nodes
   *    and two leaders can be elected in one term (Ongaro, raft-dev, "bug in single-server membership
   *    changes", 2015); the fix is this rule.
   * A learner is promoted only when its log is within `promoteLagMax` entries of the leader's.
   */
  proposeConfChange(cc: ConfChange, promoteLagMax: number): ConfProposeResult {
    if (this.role !== "leader") return { ok: false, reason: "notLeader", leader: this.leader };
    if (this.leadTransferee !== noNode) return { ok: false, reason: "transferring", leader: this.leader };
    const pending = this.confEntries.at(-1);
    if (pending !== undefined && pending.index > this.log.committed) {
      return { ok: false, reason: "confPending", leader: this.leader, detail: `the change at index ${pending.index} is not committed yet` };
    }
    if (!this.committedInTerm()) {
      return { ok: false, reason: "confPending", leader: this.leader, detail: "the leader has not committed an entry of its term yet" };
    }
    const refusal = confChangeRefusal(this.conf, cc);
    if (refusal !== undefined) return { ok: false, reason: "confRefused", leader: this.leader, detail: refusal };
    if (cc.op === "promote") {
      const pr = this.progress.get(cc.nodeId);
      const match = pr?.match ?? 0;
      const lag = this.log.lastIndex() - match;
      // A learner that never answered, or went quiet, would be a dead voter the moment it is promoted:
      // on a young cluster its lag alone (the whole short log) can be within the limit.
      if (pr === undefined || match === 0 || !pr.recentActive) {
        return {
          ok: false,
          reason: "confRefused",
          leader: this.leader,
          detail: `learner ${cc.nodeId} has not answered the leader lately (is it running and reachable?)`,
        };
      }
      if (lag > promoteLagMax) {
        return {
          ok: false,
          reason: "confRefused",
          leader: this.leader,
          detail: `learner ${cc.nodeId} is ${lag} entries behind the leader (at most ${promoteLagMax} to be promoted)`,
        };
      }
    }
    return this.proposeEntry("conf", encodeConfEntry({ change: cc, conf: applyConfChange(this.conf, cc) }));
  }

  /**
   * Requests a linearizable read. A Ready later carries {requestId, index}: once the state machine has
   * applied `index`, the read may be served locally. Index 0 means it failed and should be retried.
   */
  readIndex(requestId: number): void {
    if (this.role === "leader") this.reads.leaderRead([requestId], this.id, this.leaderCommit());
    else this.reads.followerRead(requestId, this.leader);
  }

  /** Hands leadership to `to` (thesis 3.10): stop taking proposals, catch it up, tell it to campaign now. */
  transferLeadership(to: NodeId): void {
    if (this.role !== "leader" || to === this.id || !this.conf.voters.includes(to)) return;
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    // The transfer must complete within one election timeout, or it is abandoned (see tickLeader).
    this.electionElapsed = 0;
    const pr = this.progress.get(to);
    assert(pr !== undefined, "raft: transferee without progress");
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, true);
  }

  /** The transport failed to deliver a snapshot to `to`: probe again rather than wait for the timeout. */
  reportSnapshotFailed(to: NodeId): void {
    const pr = this.progress.get(to);
    if (this.role === "leader" && pr !== undefined && pr.state === "snapshot") pr.becomeProbe();
  }

  /** A peer is unreachable: fall back to probing so the leader stops streaming into the void. */
  reportUnreachable(to: NodeId): void {
    const pr = this.progress.get(to);
    if (this.role === "leader" && pr !== undefined && pr.state === "replicate") pr.becomeProbe();
  }

  // ---------------------------------------------------------------------------------------------
  // Messages from peers

  step(m: Message): void {
    if (!this.acceptable(m)) return;

    if (m.term > this.term) {
      if (m.type === "vote" && !m.transfer && this.inLease()) {
        // CheckQuorum lease (thesis 4.2.3): we heard from a live leader less than an election timeout
        // ago, so this candidate is disruptive (e.g. just rejoined from a partition). Ignore it.
        return;
      }
      if (m.type === "vote" && m.preVote) {
        // A PreVote does not change our term.
      } else if (m.type === "voteResp" && m.preVote && m.granted) {
        // Granted PreVotes carry the term we would campaign in: no term change until we win.
      } else if (m.type === "append" || m.type === "heartbeat" || m.type === "snapshot") {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, noNode);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === "append" || m.type === "heartbeat")) {
        // A stale leader (e.g. one that was partitioned) learns our term from this and steps down.
        // Without it, with PreVote or CheckQuorum, a stale leader whose votes are ignored could never
        // learn it was deposed and the cluster could stay split. The answer acknowledges index 0 only:
        // by the time it arrives its addressee may lead our term with another log, and must not count
        // it as a replica of anything.
        this.send(this.appendResponse(m.from, { reject: false, index: 0, hintIndex: 0, hintTerm: 0 }));
      } else if (m.type === "vote" && m.preVote) {
        this.send({ type: "voteResp", from: this.id, to: m.from, term: this.term, preVote: true, granted: false });
      }
      return;
    }

    if (m.type === "vote") {
      this.handleVote(m);
      return;
    }

    switch (this.role) {
      case "leader":
        this.stepLeader(m);
        break;
      case "precandidate":
      case "candidate":
        this.stepCandidate(m);
        break;
      case "follower":
        this.stepFollower(m);
        break;
    }
  }

  /** Drops messages that are not for us, come from strangers, or are malformed. Never throws. */
  private acceptable(m: Message): boolean {
    if (m.to !== this.id || m.from === this.id || m.from === noNode) return false;
    if (!isIndex(m.term)) return false;
    if (!this.knows(m.from) && !this.mayBeLeader(m) && !(m.type === "vote" && this.addedLater(m.from))) return false;
    switch (m.type) {
      case "vote":
        // Only voters campaign; a removed member's vote request is a bug or an attack, refused before
        // its term can disrupt us. But a node that knows no voter yet (it is joining) takes votes as it
        // takes any message: it may be a voter already, and the one a candidate lacks. The member that
        // our pending change removed may campaign until it commits (campaignable). And a learner in our
        // membership may have been promoted by a change our log does not hold yet: a cluster of four
        // voters with one down may need our vote for it (chaos seed 34), as etcd-io/raft, which never
        // asks whether a candidate is a voter, would give it. Granting it costs nothing in safety: the
        // candidate counts votes by its own membership, and a learner that truly is one never campaigns
        // (promotable), so its request could only come from a bug or an attacker, as a voter's could.
        return (
          (this.conf.voters.length === 0 ||
            this.conf.voters.includes(m.from) ||
            this.conf.learners.includes(m.from) ||
            this.removedByPendingChange(m.from) ||
            this.addedLater(m.from)) &&
          isIndex(m.lastLogIndex) &&
          isIndex(m.lastLogTerm) &&
          m.lastLogTerm <= m.term
        );
      case "append": {
        if (!isIndex(m.prevIndex) || !isIndex(m.prevTerm) || !isIndex(m.commit) || m.prevTerm > m.term) return false;
        let prevTerm = m.prevTerm;
        for (let i = 0; i < m.entries.length; i++) {
          const entry = m.entries[i];
          if (entry === undefined || entry.index !== m.prevIndex + 1 + i || !isIndex(entry.term)) return false;
          if (entry.term < prevTerm || entry.term > m.term) return false;
          prevTerm = entry.term;
        }
        return true;
      }
      case "appendResp":
        return isIndex(m.index) && isIndex(m.hintIndex) && isIndex(m.hintTerm);
      case "heartbeat":
        return isIndex(m.commit) && isIndex(m.readRound);
      case "heartbeatResp":
        return isIndex(m.readRound);
      case "snapshot":
        return isIndex(m.snapshot.meta.index) && isIndex(m.snapshot.meta.term) && m.snapshot.meta.term <= m.term;
      case "readIndexResp":
        return isIndex(m.index);
      case "voteResp":
      case "timeoutNow":
      case "readIndex":
        return true;
    }
  }

  private handleVote(m: VoteRequest): void {
    // We may grant when we already voted for this candidate in this term, when we have neither voted nor
    // know a leader, or for a PreVote of a future term (it changes nothing for us).
    const canVote = this.vote === m.from || (this.vote === noNode && this.leader === noNode) || (m.preVote && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm)) {
      // A granted PreVote answers in the term the candidate asked about, so it can count it.
      this.send({ type: "voteResp", from: this.id, to: m.from, term: m.term, preVote: m.preVote, granted: true });
      if (!m.preVote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: "voteResp", from: this.id, to: m.from, term: this.term, preVote: m.preVote, granted: false });
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case "append":
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleAppend(m);
        break;
      case "heartbeat":
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleHeartbeat(m);
        break;
      case "snapshot":
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleSnapshot(m);
        break;
      case "timeoutNow":
        // Leadership transfer: campaign at once, skipping PreVote, and tell voters to ignore their lease.
        if (this.promotable()) this.becomeCandidate(true);
        break;
      case "readIndexResp":
        this.reads.leaderAnswered(m.requestIds, m.index);
        break;
      case "readIndex":
        // Not the leader (any more): the asker's forwarded read times out and is retried.
        break;
      case "voteResp":
      case "appendResp":
      case "heartbeatResp":
        break;
      case "vote":
        break;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case "append":
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        break;
      case "heartbeat":
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        break;
      case "snapshot":
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        break;
      case "voteResp":
        this.handleVoteResponse(m);
        break;
      default:
        break;
    }
  }

  private handleVoteResponse(m: VoteResponse): void {
    // Only responses to the current phase count.
    if (m.preVote !== (this.role === "precandidate")) return;
    this.votes.set(m.from, m.granted);
    switch (voteResult(this.conf.voters, this.votes)) {
      case "won":
        if (this.role === "precandidate") this.becomeCandidate(false);
        else this.becomeLeader();
        break;
      case "lost":
        // The term is unchanged for a PreVote; for a real vote we stay in our (new) term as follower.
        this.becomeFollower(this.term, noNode);
        break;
      case "pending":
        break;
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case "appendResp":
        this.handleAppendResponse(m);
        break;
      case "heartbeatResp":
        this.handleHeartbeatResponse(m);
        break;
      case "readIndex":
        this.reads.leaderRead(m.requestIds, m.from, this.leaderCommit());
        break;
      default:
        // Votes and vote responses of our term, appends from a second leader of our term (impossible:
        // at most one leader per term), and so on.
        break;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Follower handlers

  private handleAppend(m: AppendRequest): void {
    if (m.prevIndex < this.log.committed) {
      // Everything up to our commit index already matches the leader (Leader Completeness).
      this.send(this.appendResponse(m.from, { reject: false, index: this.log.committed, hintIndex: 0, hintTerm: 0 }));
      return;
    }
    const lastNew = this.log.maybeAppend(m.prevIndex, m.prevTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      // The entries after prevIndex may have replaced a conf entry or brought one.
      const replacedConf = (this.confEntries.at(-1)?.index ?? 0) > m.prevIndex;
      if (replacedConf || m.entries.some((e) => e.type === "conf")) this.rescanConf(m.prevIndex + 1);
      this.send(this.appendResponse(m.from, { reject: false, index: lastNew, hintIndex: 0, hintTerm: 0 }));
      return;
    }
    // The consistency check failed. Hint at the largest index whose term is <= prevTerm: the leader can
    // skip every entry of a newer divergent term in one round trip.
    const hint = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    this.send(this.appendResponse(m.from, { reject: true, index: m.prevIndex, hintIndex: hint.index, hintTerm: hint.term }));
  }

  private handleHeartbeat(m: HeartbeatRequest): void {
    // The leader sends min(its commit, our match), so the index is in our log and matches; a larger one
    // (from a buggy or malicious peer) is ignored rather than trusted.
    if (m.commit <= this.log.lastIndex()) this.log.commitTo(m.commit);
    this.send({ type: "heartbeatResp", from: this.id, to: m.from, term: this.term, readRound: m.readRound });
  }

  private handleSnapshot(m: SnapshotRequest): void {
    const { index, term } = m.snapshot.meta;
    if (index <= this.log.committed) {
      this.send(this.appendResponse(m.from, { reject: false, index: this.log.committed, hintIndex: 0, hintTerm: 0 }));
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // Our log already holds the snapshot's last entry: keep the log and commit up to it. Entries after
      // it may still diverge from the leader's, so acknowledge only the snapshot index.
      this.log.commitTo(index);
    } else {
      this.log.restore(m.snapshot);
      this.confBase = m.snapshot.meta.conf;
      this.confEntries = [];
      this.conf = this.confBase;
      this.resetProgress();
    }
    this.send(this.appendResponse(m.from, { reject: false, index, hintIndex: 0, hintTerm: 0 }));
  }

  // ---------------------------------------------------------------------------------------------
  // Leader

  private tickLeader(): void {
    this.heartbeatElapsed++;
    for (const pr of this.progress.values()) {
      if (pr.state === "snapshot" && ++pr.snapshotTicks > snapshotWaitElections * this.electionTicks) pr.becomeProbe();
    }
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        // CheckQuorum: without a live quorum over the last election timeout, another leader may exist;
        // step down so clients go elsewhere instead of waiting on us.
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, noNode);
          return;
        }
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
      }
      if (this.leadTransferee !== noNode) this.leadTransferee = noNode;
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private quorumActive(): boolean {
    return hasQuorum(this.conf.voters, (id) => id === this.id || this.progress.get(id)?.recentActive === true);
  }

  private proposeEntry(type: EntryType, data: Uint8Array): ProposeResult {
    if (this.role !== "leader") return { ok: false, reason: "notLeader", leader: this.leader };
    if (this.leadTransferee !== noNode) return { ok: false, reason: "transferring", leader: this.leader };
    // Measured as entrySize() will measure the entry once appended, so a proposal that fits here fits in one append.
    const size = data.byteLength + entryOverheadBytes;
    if (size > this.msgBytesMax) return { ok: false, reason: "tooLarge", leader: this.leader };
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + size > this.uncommittedBytesMax) {
      return { ok: false, reason: "overloaded", leader: this.leader };
    }
    const index = this.appendEntry(type, data);
    return { ok: true, index, term: this.term };
  }

  private appendEntry(type: EntryType, data: Uint8Array): number {
    const index = this.log.lastIndex() + 1;
    const entry: Entry = { term: this.term, index, type, data };
    this.log.append([entry]);
    this.uncommittedBytes += entrySize(entry);
    this.broadcastPending = true;
    if (type === "conf") this.rescanConf(index);
    return index;
  }

  private handleAppendResponse(m: AppendResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (m.reject) {
      // Fast backtracking: jump to the largest index where our log may match the follower's hint. A
      // hint term of 0 (an empty or compacted follower log) needs no search: probe at the hint index.
      let probeHint = m.hintIndex;
      if (m.hintTerm > 0) probeHint = this.log.findConflictByTerm(m.hintIndex, m.hintTerm).index;
      if (pr.maybeDecrTo(m.index, probeHint)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    // An acknowledgement beyond our log cannot be genuine; never let it move the commit index.
    if (m.index > this.log.lastIndex()) return;
    if (pr.maybeUpdate(m.index)) {
      if (pr.state === "probe") pr.becomeReplicate();
      else if (pr.state === "snapshot" && pr.match + 1 >= this.log.firstIndex()) {
        // The follower installed the snapshot, or caught up some other way to where our log can
        // continue: replicate from there.
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === "replicate") pr.inflights.freeLE(m.index);
      if (this.maybeCommit()) this.broadcastPending = true;
      // The window may have opened by several messages (probe -> replicate, or an ack covering many
      // inflights): fill it now rather than one message per round trip.
      this.sendAppendsTo(m.from);
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
    } else if (pr.state === "replicate") {
      pr.inflights.freeLE(m.index);
    }
  }

  private handleHeartbeatResponse(m: HeartbeatResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
    this.reads.acknowledge(m.from, m.readRound, this.conf.voters);
  }

  /**
   * Sends appends to `to` until its window is full or it is caught up (bounded by the window size).
   * Returns whether anything was sent.
   */
  private sendAppendsTo(to: NodeId): boolean {
    let sent = 0;
    while (sent < this.inflightMsgsMax && this.sendAppend(to, false)) sent++;
    return sent > 0;
  }

  /**
   * Sends one append (or a snapshot when the needed entries are compacted). With `sendIfEmpty` an empty
   * append goes out too (probing, or carrying a new commit index). Returns whether a message was sent.
   */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const lastIndex = this.log.lastIndex();
    const entries = prevTerm === undefined ? undefined : this.log.slice(pr.next, lastIndex + 1, this.msgBytesMax);
    if (prevTerm === undefined || entries === undefined) return this.sendSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: "append", from: this.id, to, term: this.term, prevIndex, prevTerm, entries, commit: this.log.committed });
    const last = entries[entries.length - 1];
    if (pr.state === "replicate") {
      if (last !== undefined) {
        pr.optimisticUpdate(last.index);
        pr.inflights.add(
          last.index,
          entries.reduce((sum, e) => sum + entrySize(e), 0),
        );
      }
    } else if (pr.state === "probe") {
      pr.probeSent = true;
    }
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    // Only to a follower we heard from lately: a snapshot to a dead node is wasted work.
    if (!pr.recentActive) return false;
    const snapshot = this.log.snapshotToSend();
    // Its data is being read back from disk: nothing to send yet; the follower's next answer tries again.
    if (snapshot === undefined) return false;
    assert(snapshot.meta.index > 0, "raft: entries compacted without a snapshot");
    pr.becomeSnapshot(snapshot.meta.index);
    this.send({ type: "snapshot", from: this.id, to, term: this.term, snapshot });
    return true;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: "timeoutNow", from: this.id, to, term: this.term });
  }

  /** New entries to every follower as far as its window allows; an empty append carries a new commit index. */
  private broadcastAppend(): void {
    for (const id of this.peers()) {
      if (!this.sendAppendsTo(id)) this.sendAppend(id, true);
    }
  }

  /** Starts the heartbeat round that waiting reads need (see ReadIndex): its heartbeats carry the round. */
  private startReadRound(): void {
    this.reads.startRound();
    this.broadcastHeartbeat();
  }

  private broadcastHeartbeat(): void {
    for (const id of this.peers()) {
      const pr = this.progress.get(id);
      assert(pr !== undefined, "raft: peer without progress");
      this.send({
        type: "heartbeat",
        from: this.id,
        to: id,
        term: this.term,
        commit: Math.min(pr.match, this.log.committed),
        readRound: this.reads.currentRound(),
      });
    }
  }

  /** Advances the commit index to what a majority holds, if that entry is of our term; false if it did not, or if we stepped down. */
  private maybeCommit(): boolean {
    const before = this.log.committed;
    const index = committedIndex(this.conf.voters, (id) => this.progress.get(id)?.match ?? 0);
    if (!this.log.maybeCommit(index, this.term)) return false;
    // Only entries of this term were counted in uncommittedBytes (it resets with the term).
    for (const entry of this.log.slice(before + 1, this.log.committed + 1, Infinity) ?? []) {
      if (entry.term === this.term) this.uncommittedBytes = Math.max(0, this.uncommittedBytes - entrySize(entry));
    }
    this.reads.leaderCommitted(this.leaderCommit());
    this.maybeStepDownRemoved();
    // A leader that just stepped down has nothing to broadcast: its successor carries the commit on.
    return this.role === "leader";
  }

  /**
   * A leader that removed itself leads until the change commits (it replicates it, and counts toward no
   * quorum meanwhile: maybeCommit counts voters only), then hands off: TimeoutNow to the most caught-up
   * voter, which campaigns at once, and steps down. It never campaigns again (campaignable() is false).
   */
  private maybeStepDownRemoved(): void {
    if (this.role !== "leader" || this.promotable()) return;
    const last = this.confEntries.at(-1);
    if (last === undefined || last.index > this.log.committed) return;
    let successor: NodeId = noNode;
    let best = -1;
    for (const id of this.conf.voters) {
      const match = this.progress.get(id)?.match ?? 0;
      if (match > best) [successor, best] = [id, match];
    }
    if (successor !== noNode && best === this.log.lastIndex()) this.sendTimeoutNow(successor);
    this.becomeFollower(this.term, noNode);
  }

  private committedInTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  /** What ReadIndex needs to know of the leader's log (see LeaderCommit). */
  private leaderCommit(): LeaderCommit {
    return { commit: this.log.committed, inTerm: this.committedInTerm(), voters: this.conf.voters };
  }

  // ---------------------------------------------------------------------------------------------
  // Role transitions

  private becomeFollower(term: number, leader: NodeId): void {
    if (this.role === "leader") this.reads.failLeaderReads();
    this.reset(term);
    // Reads forwarded under the old term or leader may never be answered: fail them now, so their
    // clients retry, rather than at their timeout. (This compared the new leader with the one reset()
    // had just cleared, so a leader that became unknown left them waiting out the timeout.)
    this.reads.failForwardedReads();
    this.leader = leader;
    this.role = "follower";
  }

  private becomePreCandidate(): void {
    assert(this.role !== "leader", "raft: a leader cannot become a pre-candidate");
    // PreVote changes neither term nor vote: a node cut off from the cluster can retry forever
    // without inflating its term and disrupting the cluster when it returns.
    this.role = "precandidate";
    this.votes = new Map();
    this.leader = noNode;
    this.reads.failForwardedReads();
    this.requestVotes(true, false);
  }

  private becomeCandidate(transfer: boolean): void {
    assert(this.role !== "leader", "raft: a leader cannot become a candidate");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = "candidate";
    this.reads.failForwardedReads();
    this.requestVotes(false, transfer);
  }

  private requestVotes(preVote: boolean, transfer: boolean): void {
    const term = preVote ? this.term + 1 : this.term;
    this.votes.set(this.id, true);
    if (voteResult(this.conf.voters, this.votes) === "won") {
      // A single-voter cluster wins at once.
      if (preVote) this.becomeCandidate(transfer);
      else this.becomeLeader();
      return;
    }
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    for (const id of this.conf.voters) {
      if (id === this.id) continue;
      this.send({ type: "vote", from: this.id, to: id, term, preVote, lastLogIndex, lastLogTerm, transfer });
    }
  }

  private becomeLeader(): void {
    assert(this.role === "candidate", "raft: only a candidate becomes leader");
    this.reset(this.term);
    this.leader = this.id;
    this.role = "leader";
    const self = this.progress.get(this.id);
    // A leader that the pending change removed (campaignable) is no member: it counts toward no quorum.
    assert(self !== undefined || this.campaignable(), "raft: leader is not a member");
    if (self !== undefined) {
      // The leader counts only what it has durably stored; advance() raises this as writes complete.
      self.match = this.log.stableLastIndex();
      self.becomeReplicate();
      self.recentActive = true;
    }
    // A no-op of the new term lets entries of earlier terms commit (paper 5.4.2 and 8).
    this.appendEntry("noop", emptyData);
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = noNode;
    }
    this.leader = noNode;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.prng.int(this.electionTicks, 2 * this.electionTicks - 1);
    this.leadTransferee = noNode;
    this.votes = new Map();
    this.uncommittedBytes = 0;
    this.broadcastPending = false;
    this.reads.reset();
    this.resetProgress();
  }

  /**
   * Recomputes the membership from the conf entries of the log from `from` on (they may have been
   * replaced, or be new), and keeps progress for exactly the members: a new member is probed from the
   * end of the log, a removed one is forgotten. Entries below the log's first index are compacted into
   * the snapshot, whose membership becomes the base.
   */
  private rescanConf(from: number): void {
    const first = this.log.firstIndex();
    this.confEntries = this.confEntries.filter((c) => c.index < from);
    while (this.confEntries[0] !== undefined && this.confEntries[0].index < first) {
      this.confBase = this.confEntries[0].conf;
      this.confEntries.shift();
    }
    const last = this.log.lastIndex();
    const lo = Math.max(from, first);
    let conf = this.confEntries.at(-1)?.conf ?? this.confBase;
    for (const entry of lo <= last ? (this.log.slice(lo, last + 1, Infinity) ?? []) : []) {
      if (entry.type !== "conf") continue;
      const decoded = decodeConfEntry(entry.data);
      assert(decoded !== undefined, () => `raft: conf entry ${entry.index} that does not decode reached the log`);
      conf = decoded.conf;
      this.confEntries.push({ index: entry.index, conf, context: decoded.change.context });
    }
    if (conf === this.conf) return;
    this.conf = conf;
    const next = this.log.lastIndex() + 1;
    const members = this.replicatedTo();
    for (const id of [...this.progress.keys()]) if (!members.includes(id)) this.progress.delete(id);
    for (const id of members) {
      if (this.progress.has(id)) continue;
      const pr = new Progress(next, this.inflightMsgsMax, this.inflightBytesMax);
      if (this.role === "leader" && id === this.id) {
        pr.match = this.log.stableLastIndex();
        pr.becomeReplicate();
        pr.recentActive = true;
      }
      this.progress.set(id, pr);
    }
    if (this.leadTransferee !== noNode && !conf.voters.includes(this.leadTransferee)) this.leadTransferee = noNode;
    if (this.role === "leader") this.reads.votersChanged(conf.voters);
  }

  private resetProgress(): void {
    const next = this.log.lastIndex() + 1;
    const progress = new Map<NodeId, Progress>();
    for (const id of this.replicatedTo()) {
      progress.set(id, new Progress(next, this.inflightMsgsMax, this.inflightBytesMax));
    }
    this.progress = progress;
  }

  /**
   * Whom a leader replicates to: the members, and the members the last change removed. A removed node
   * learns of its removal only from the log: without the commit index of that change it would wait
   * forever (not campaigning, as its log no longer names it a voter) instead of stopping. It counts
   * toward no quorum (they are over voters only), and the next change drops it.
   */
  private replicatedTo(): NodeId[] {
    const ids = [...this.conf.voters, ...this.conf.learners];
    for (const id of this.departing()) ids.push(id);
    return ids;
  }

  /** Members of the membership before the last conf entry in the log that it removed. */
  private departing(): NodeId[] {
    const previous = this.confEntries.at(-2)?.conf ?? (this.confEntries.length > 0 ? this.confBase : undefined);
    if (previous === undefined) return [];
    return [...previous.voters, ...previous.learners].filter((id) => !isMember(this.conf, id));
  }

  // ---------------------------------------------------------------------------------------------
  // Ready / advance

  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    return (
      this.broadcastPending ||
      this.reads.wantsRound() ||
      this.messages.length > 0 ||
      this.reads.hasReadStates() ||
      this.log.hasUnstable() ||
      this.log.hasNextCommittedEntries() ||
      this.leader !== this.prevSoftState.leader ||
      this.role !== this.prevSoftState.role ||
      this.term !== this.prevHardState.term ||
      this.vote !== this.prevHardState.vote ||
      this.log.committed !== this.prevHardState.commit
    );
  }

  /** What the driver must do next (see `Ready`). Call advance() before asking again. */
  ready(): Ready {
    assert(this.outstanding === undefined, "raft: ready() before advance() of the previous Ready");
    if (this.broadcastPending) {
      this.broadcastPending = false;
      if (this.role === "leader") this.broadcastAppend();
    }
    if (this.reads.wantsRound() && this.role === "leader") this.startReadRound();
    const softState = this.softState();
    const hardState = this.hardState();
    const unstable = this.log.unstable();
    const hardChanged = !sameHardState(hardState, this.prevHardState);
    const rd: Ready = {
      softState: sameSoftState(softState, this.prevSoftState) ? undefined : softState,
      hardState: hardChanged ? hardState : undefined,
      snapshot: unstable.snapshot,
      entries: unstable.entries.slice(),
      messages: this.messages,
      committedEntries: this.log.nextCommittedEntries(this.applyBytesMax),
      readStates: this.reads.takeReadStates(),
      mustSync:
        unstable.entries.length > 0 ||
        unstable.snapshot !== undefined ||
        hardState.term !== this.prevHardState.term ||
        hardState.vote !== this.prevHardState.vote,
    };
    this.messages = [];
    this.outstanding = rd;
    return rd;
  }

  /**
   * What may go out while the outstanding Ready is still being made durable: the messages produced since
   * that need not wait for any write (waitsForDurability), and answered reads. A leader also starts the
   * heartbeat round that reads are waiting for, so a linearizable read never waits behind a write's
   * fsync. Messages that must wait stay queued for the next Ready, in their order.
   */
  takeUnblocked(): Unblocked {
    if (this.reads.wantsRound() && this.role === "leader") this.startReadRound();
    const early: Message[] = [];
    const waiting: Message[] = [];
    for (const m of this.messages) (waitsForDurability(m) ? waiting : early).push(m);
    this.messages = waiting;
    return { messages: early, readStates: this.reads.takeReadStates() };
  }

  /** The driver carried out `rd`: its entries, hard state and snapshot are durable and it applied what it carried. */
  advance(rd: Ready): void {
    assert(this.outstanding === rd, "raft: advance() of a Ready that is not the outstanding one");
    this.outstanding = undefined;
    if (rd.softState !== undefined) this.prevSoftState = rd.softState;
    if (rd.hardState !== undefined) this.prevHardState = rd.hardState;
    if (rd.snapshot !== undefined) {
      this.log.stableSnapTo(rd.snapshot.meta.index);
      this.log.appliedTo(rd.snapshot.meta.index);
    }
    const last = rd.entries[rd.entries.length - 1];
    if (last !== undefined) this.log.stableTo(last.index, last.term);
    const applied = rd.committedEntries[rd.committedEntries.length - 1];
    if (applied !== undefined) this.log.appliedTo(applied.index);
    // A leader counts its own durable log toward commit, unless it removed itself (it is then no voter).
    const self = this.role === "leader" ? this.progress.get(this.id) : undefined;
    if (self !== undefined && self.maybeUpdate(this.log.stableLastIndex()) && this.maybeCommit()) this.broadcastPending = true;
  }

  // ---------------------------------------------------------------------------------------------
  // Introspection

  /**
   * The membership in effect and the context of the conf entry that made it (the driver keeps every
   * member's name and URLs there), or no context when it comes from the snapshot or the bootstrap; and
   * the members that entry removed, whom a leader still replicates to (replicatedTo).
   */
  membership(): { readonly conf: ConfState; readonly context: Uint8Array | undefined; readonly departing: readonly NodeId[] } {
    return { conf: this.conf, context: this.confEntries.at(-1)?.context, departing: this.departing() };
  }

  status(): Status {
    let progress: Map<NodeId, ProgressStatus> | undefined;
    if (this.role === "leader") {
      progress = new Map();
      for (const [id, pr] of this.progress) {
        progress.set(id, { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive });
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      conf: this.conf,
      leadTransferee: this.leadTransferee,
      progress,
    };
  }

  /**
   * Asserts every invariant the core relies on that it can check locally (AssertionError on the first
   * broken one). Cheap enough to call after every input: O(members + unstable tail + waiting reads +
   * inflight messages), no walk of the stable log. Tests and the simulator call it; production does not.
   */
  checkInvariants(): void {
    this.log.checkInvariants(this.term);
    const lastIndex = this.log.lastIndex();
    // What a Ready reported stays reported: the term and the commit index never go back.
    assert(this.prevHardState.term <= this.term, "raft: term below the one handed out");
    assert(this.prevHardState.commit <= this.log.committed, "raft: commit index below the one handed out");
    this.checkOutstanding();
    this.checkRole();
    this.checkTimers();
    this.checkProgress(lastIndex);
    this.reads.checkInvariants(this.role === "leader" ? this.leaderCommit() : undefined);
  }

  /** The Ready being carried out hands out each committed entry once, in order, and only committed ones. */
  private checkOutstanding(): void {
    if (this.outstanding === undefined) return;
    const entries = this.outstanding.committedEntries;
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (first === undefined || last === undefined) return;
    // applied moves only in advance(), so this Ready's entries start right after it: none twice, none skipped.
    assert(first.index === this.log.applied + 1, () => `raft: Ready applies from ${first.index} after applying ${this.log.applied}`);
    assert(last.index - first.index === entries.length - 1, "raft: Ready's committed entries are not contiguous");
    // Only committed entries may reach the state machine.
    assert(last.index <= this.log.committed, () => `raft: Ready applies ${last.index} beyond commit ${this.log.committed}`);
  }

  /** What each role implies about leader, vote, votes and transfer. */
  private checkRole(): void {
    switch (this.role) {
      case "leader":
        assert(this.leader === this.id, "raft: a leader that does not know itself as leader");
        // A leader won an election in its term, with its own vote (becomeCandidate voted before it won).
        assert(this.vote === this.id, () => `raft: leader of term ${this.term} voted for ${this.vote}`);
        // Only voters campaign. A leader stops being a voter only by removing itself, and steps down once
        // that change commits (maybeStepDownRemoved).
        assert(
          this.promotable() || (this.confEntries.at(-1)?.index ?? 0) > this.log.committed,
          "raft: a leader that is not a voter, past the commit of its removal",
        );
        break;
      case "candidate":
        // A candidate votes for itself before asking anyone (becomeCandidate) and counts that vote.
        assert(this.vote === this.id && this.votes.get(this.id) === true, "raft: a candidate that did not vote for itself");
        assert(this.leader === noNode && this.campaignable(), "raft: a candidate with a leader, or not a voter");
        break;
      case "precandidate":
        // A PreVote counts our own would-be vote too, and asks only while no leader is known.
        assert(this.votes.get(this.id) === true, "raft: a pre-candidate that does not count itself");
        assert(this.leader === noNode && this.campaignable(), "raft: a pre-candidate with a leader, or not a voter");
        break;
      case "follower":
        // Votes are counted only while campaigning; a follower starts every campaign afresh.
        assert(this.votes.size === 0, "raft: a follower holding election votes");
        assert(this.leader !== this.id, "raft: a follower that names itself leader");
        break;
    }
    if (this.role !== "leader") {
      // Transfers, uncommitted bytes and pending broadcasts are leader state, dropped by reset() on every role change.
      assert(
        this.leadTransferee === noNode && this.uncommittedBytes === 0 && !this.broadcastPending,
        "raft: leader state on a node that does not lead",
      );
    } else if (this.leadTransferee !== noNode) {
      // transferLeadership() accepts only another voter.
      assert(
        this.leadTransferee !== this.id && this.conf.voters.includes(this.leadTransferee),
        "raft: transfer to a node that cannot lead",
      );
    }
  }

  private checkTimers(): void {
    // reset() draws the timeout from [electionTicks, 2 * electionTicks): randomized, never shorter than one timeout.
    assert(
      this.randomizedElectionTimeout >= this.electionTicks && this.randomizedElectionTimeout < 2 * this.electionTicks,
      () => `raft: election timeout ${this.randomizedElectionTimeout} outside [${this.electionTicks}, ${2 * this.electionTicks})`,
    );
    // tickLeader() sends heartbeats and restarts the count as it reaches heartbeatTicks; other roles never count.
    assert(
      this.heartbeatElapsed >= 0 && this.heartbeatElapsed < this.heartbeatTicks,
      () => `raft: heartbeat elapsed ${this.heartbeatElapsed}`,
    );
    assert(this.role === "leader" || this.heartbeatElapsed === 0, "raft: heartbeat ticks counted on a node that does not lead");
    // A leader checks its quorum (and abandons a transfer) every election timeout and restarts the count.
    assert(
      this.role !== "leader" || this.electionElapsed < this.electionTicks,
      () => `raft: leader ${this.electionElapsed} ticks into its quorum check`,
    );
  }

  /** Progress exists for exactly the members (and those departing); only a leader's means anything, and it must be consistent. */
  private checkProgress(lastIndex: number): void {
    // resetProgress() tracks exactly the members and the departing: a stranger's progress could count
    // toward nothing, a member without one would never be replicated to.
    assert(this.progress.size === this.replicatedTo().length, "raft: progress for other nodes than the members and the departing");
    for (const id of this.conf.voters) assert(this.progress.has(id), () => `raft: no progress for voter ${id}`);
    for (const id of this.conf.learners) assert(this.progress.has(id), () => `raft: no progress for learner ${id}`);
    for (const [id, pr] of this.progress) {
      if (this.role !== "leader") {
        // resetProgress() runs on every role change: no replication state survives leadership.
        assert(
          pr.match === 0 && pr.state === "probe" && pr.inflights.count === 0,
          () => `raft: replication progress for ${id} on a node that does not lead`,
        );
        continue;
      }
      if (id === this.id) {
        // The leader counts toward a quorum exactly what it has durably stored (becomeLeader and advance).
        assert(
          pr.match === this.log.stableLastIndex(),
          () => `raft: leader's own match ${pr.match}, durable last index ${this.log.stableLastIndex()}`,
        );
      }
      pr.checkInvariants(lastIndex);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  private send(m: Message): void {
    this.messages.push(m);
  }

  private appendResponse(to: NodeId, fields: Pick<AppendResponse, "reject" | "index" | "hintIndex" | "hintTerm">): AppendResponse {
    return { type: "appendResp", from: this.id, to, term: this.term, ...fields };
  }

  private peers(): NodeId[] {
    const ids: NodeId[] = [];
    for (const id of this.progress.keys()) if (id !== this.id) ids.push(id);
    return ids;
  }

  private promotable(): boolean {
    return this.conf.voters.includes(this.id);
  }

  /**
   * Whether this node campaigns: as a voter, or as the member that the last change in its log removed
   * while that change is not known committed. Such a node may be needed to commit it (thesis 4.2.2): a
   * leader of two voters that removed itself, and lost its leadership before the other held the
   * change, is the only one that can: the other cannot win without its vote, which it refuses (its own
   * log is ahead). It counts its own vote for nothing (voteResult counts voters); elected, it leads as a
   * leader that removed itself does, and steps down once the change commits (maybeStepDownRemoved).
   * Nodes that hold the change take its vote requests as long as they do not know it committed (else
   * it could not win where a voter that holds the change needs its vote, and without PreVote it would
   * only raise the terms of those that do not hold it).
   */
  private campaignable(): boolean {
    return this.promotable() || this.removedByPendingChange(this.id);
  }

  /** Whether `id` is the voter that the last change in our log removed, and that change is not known committed. */
  private removedByPendingChange(id: NodeId): boolean {
    const last = this.confEntries.at(-1);
    if (last === undefined || last.index <= this.log.committed || this.conf.voters.includes(id)) return false;
    const previous = this.confEntries.at(-2)?.conf ?? this.confBase;
    return previous.voters.includes(id);
  }

  /**
   * Whether messages from `id` are taken: from a member; from a member that the last change removed (a
   * leader that removes itself leads, and is followed, until that change commits); and from anyone
   * while this node knows no voter (it is joining: it learns the membership from the leader's log or
   * snapshot). Votes are checked apart, against the voters.
   */
  private knows(id: NodeId): boolean {
    if (id === noNode) return false;
    return this.conf.voters.length === 0 || isMember(this.conf, id) || this.departing().includes(id);
  }

  /**
   * Whether a leader's message from a node this node does not know may be from the leader all the
   * same: one added by a change after the end of this node's log. A node that joins replays the log
   * from an old membership, and a member cut off across changes comes back with one; ignoring the
   * leader, they would never catch up (the simulator's membership nemesis found both). At most one
   * leader is elected per term, so a leader's message of a newer term, or of our term while we know no
   * other leader, is the leader's; a stranger's message in the term of the leader we follow is not.
   */
  private mayBeLeader(m: Message): boolean {
    if (m.type !== "append" && m.type !== "heartbeat" && m.type !== "snapshot") return false;
    return m.term > this.term || (m.term === this.term && (this.leader === noNode || this.leader === m.from));
  }

  /**
   * Whether `id` is above every id of every membership this node's log and snapshot name: a member added
   * after the end of its log (ids only grow; the driver never reuses one). Its vote requests are taken:
   * a member whose log lags may be the vote that a voter added later needs (simulator seed 435), and a
   * removed member's id is never above them.
   */
  private addedLater(id: NodeId): boolean {
    let highest = 0;
    for (const conf of [this.confBase, ...this.confEntries.map((c) => c.conf)]) {
      for (const member of [...conf.voters, ...conf.learners]) highest = Math.max(highest, member);
    }
    return id > highest;
  }

  private inLease(): boolean {
    return this.checkQuorum && this.leader !== noNode && this.electionElapsed < this.electionTicks;
  }

  private softState(): SoftState {
    return { leader: this.leader, role: this.role };
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }
}

function isMember(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || conf.learners.includes(id);
}

function isIndex(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}
