import { Buffer } from "node:buffer";
import { majority, type ConfState, type Entry, type HardState, type NodeId, type SnapshotMeta } from "../../src/core/index.js";
import type { MemoryStorage } from "../../src/core/index.js";

/**
 * The safety checkers the simulator runs while it goes (Raft paper, Figure 3, plus what a driver can see
 * of durability). Each `observe...` method is called at the moment the simulator sees the event; the
 * `check...` methods are called after every step. A broken property is recorded as a `Violation` with
 * the step it was seen at; the simulator stops at the first one (later ones are usually consequences).
 *
 * What "committed" means here. The checker cannot see a quorum being formed, so it learns commitment
 * from its effects: an entry is known committed once some node hands it to its state machine
 * (`Ready.committedEntries`) or installs a snapshot that covers it. For each known-committed index it
 * keeps the entry's term, its content, and an upper bound on the term in which it became committed (the
 * applying node's current term: a node learns a commit index only from a leader of its term or an
 * earlier one). `highestCommitted` is the largest such index: by log matching, the pair
 * (highestCommitted, its term) stands for the whole committed prefix.
 *
 * "Committed entries are never lost", precisely: at every step, the voters that do not durably hold the
 * highest committed pair cannot form a quorum (with an odd number of voters: a majority holds it), where
 * node v durably holds (i, t) when its storage (what survives a crash of v right now) has entry i with
 * term t, or has a snapshot whose index is >= i. This is an invariant of Raft: an entry is committed
 * only once a majority stored it durably, and durable entries are removed only by truncating a
 * conflicting suffix (never a committed one) or by compaction into a snapshot. Since
 * the log-matching check covers every entry ever persisted, holding the highest pair implies holding the
 * entire committed prefix above the node's snapshot. In addition each running node must durably hold
 * the entries it has applied (it persisted them before applying).
 *
 * Under membership changes the voters are those of the committed membership: that of the last conf
 * entry known committed (`observeCommittedConf`; the simulator reports the conf entries nodes apply and
 * the membership of the snapshots they install), at first the initial voters. The leader that committed
 * the pair counted a majority of its own membership, which is that one or differs from it by one server
 * (one uncommitted change at most, proposed once that one committed), and any majority of one overlaps
 * any majority of the other: so no quorum of the committed membership is without a holder, and it stays
 * so, since holders keep what they hold. (Half of an even number of voters may then be all the holders:
 * a leader of 5 voters commits on 3 of them, of which only 2 may be among the 4 voters once the change
 * that added the fifth is undone.) A node stopped for good after its removal is no longer a voter of it.
 *
 * A node that lost its disk (the "disk loss" fault) no longer holds anything, and what it promised is
 * gone with it: its acknowledgements and its votes. Raft's invariants still say what must hold:
 *  - votes: a node never votes for two candidates in one term, across its disk losses too (its forgotten
 *    vote is a violation only once it votes again, for another candidate, in that same term, and that
 *    candidate counts the vote: not if it refuses the voter's new incarnation); its term may go back to
 *    0 with the new disk, but never back on the same disk;
 *  - committed entries: the highest committed pair must be held by a majority, where a member that
 *    cannot take part in any quorum any more counts as holding it: no quorum can form without one of the
 *    holders, which is what durability on a majority is for. Such a member is `excluded` by the
 *    simulator: it lost its disk and has not started again (down, waiting in the bootstrap check, or
 *    refused to start), or it started again under a new incarnation that every other member refuses.
 *    A member that lost its disk and takes part again (the guards off) counts as holding nothing.
 */
export type ViolationKind =
  | "electionSafety"
  | "doubleVote"
  | "termRegressed"
  | "logMatching"
  | "leaderCompleteness"
  | "stateMachineSafety"
  | "committedLost"
  | "commitRegressed"
  | "appliedNotDurable"
  | "duplicateApply"
  | "failedOpApplied"
  | "snapshotMismatch"
  | "contract"
  | "exception"
  | "liveness"
  | "linearizability"
  /** An empty member bootstrapped a new cluster although another member held state (issue 9). */
  | "bootstrap";

export interface Violation {
  readonly step: number;
  readonly kind: ViolationKind;
  readonly message: string;
}

/** A node's log as far as the simulator can see it (its durable storage plus any write in flight). */
export interface LogView {
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** The term at index i, or undefined when the simulator cannot see it (e.g. held only in core memory). */
  termAt(i: number): number | undefined;
}

interface LogRecord {
  readonly content: string;
  readonly prevTerm: number;
  readonly source: string;
}

/** Content strings by entry object: the same entry objects are re-sent and re-persisted many times. */
const contentCache = new WeakMap<Entry, string>();

export function entryContent(entry: Entry): string {
  const cached = contentCache.get(entry);
  if (cached !== undefined) return cached;
  const content = `${entry.type}:${Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength).toString("latin1")}`;
  contentCache.set(entry, content);
  return content;
}

export class SafetyMonitor {
  readonly violations: Violation[] = [];
  step = 0;

  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Per node: its durable hard state (forgotten with its disk). */
  private readonly durableHard = new Map<NodeId, HardState>();
  /** Per node: the vote it cast in each term (survives its disk losses, as the promise does). */
  private readonly votes = new Map<NodeId, Map<number, NodeId>>();
  /** Per node: the step at which it last lost its disk. */
  private readonly diskLostAt = new Map<NodeId, number>();
  /** Members that cannot take part in any quorum (see the class comment); the simulator keeps this. */
  readonly excluded = new Set<NodeId>();
  /**
   * Whether a vote `voter` casts now for `candidate` would be counted: the simulator says no when the
   * candidate refuses the voter's incarnation (by default every vote of a member not excluded counts).
   */
  voteCounts: (voter: NodeId, candidate: NodeId) => boolean = (voter) => !this.excluded.has(voter);
  private readonly logRecords = new Map<string, LogRecord>();
  /** Per index: the term, content and commit-term bound of the committed entry (0 / "" when unknown). */
  private readonly committedTerm: number[] = [0];
  private readonly committedContent: string[] = [""];
  private readonly commitTermBound: number[] = [0];
  private highest = 0;
  /** Per node: the incarnation and the commit index last observed in it. */
  private readonly commitSeen = new Map<NodeId, { incarnation: number; commit: number }>();
  /** For each client op id: the log index its command was applied at. */
  private readonly opIndex = new Map<number, number>();
  private readonly failedOps = new Set<number>();
  private readonly snapshotBytes = new Map<number, string>();
  /** The membership of each snapshot created, by index, when it names voters (see observeSnapshotCreated). */
  private readonly snapshotConf = new Map<number, string>();
  /** The committed membership: that of the highest index whose membership is known (see the class comment). */
  private committedConfIndex = 0;
  private conf: ConfState;

  constructor(readonly voters: readonly NodeId[]) {
    this.conf = { voters: [...voters], learners: [] };
  }

  /** The membership as of the highest index whose membership is known committed. */
  get committedConf(): ConfState {
    return this.conf;
  }

  /**
   * The membership as of `index`, which is committed: a conf entry applied there, or the membership of
   * a snapshot installed there. One that names no voter is that of a snapshot a joining node took
   * before it saw any conf entry (it knew no membership), and tells nothing.
   */
  observeCommittedConf(index: number, conf: ConfState): void {
    if (index <= this.committedConfIndex || conf.voters.length === 0) return;
    this.committedConfIndex = index;
    this.conf = conf;
  }

  get highestCommitted(): number {
    return this.highest;
  }

  committedTermAt(index: number): number {
    return this.committedTerm[index] ?? 0;
  }

  record(kind: ViolationKind, message: string): void {
    this.violations.push({ step: this.step, kind, message });
  }

  /** Election safety (Figure 3): at most one leader per term, over the whole run. */
  observeLeader(node: NodeId, term: number): void {
    const known = this.leaderOfTerm.get(term);
    if (known === undefined) this.leaderOfTerm.set(term, node);
    else if (known !== node) this.record("electionSafety", `nodes ${known} and ${node} are both leader of term ${term}`);
  }

  get electedTerms(): number {
    return this.leaderOfTerm.size;
  }

  /**
   * A node's durable hard state: on one disk its term never decreases and it never changes or forgets
   * its vote within a term; across disk losses it never votes for two candidates in one term.
   */
  observeDurableHardState(node: NodeId, hs: HardState): void {
    const before = this.durableHard.get(node);
    this.durableHard.set(node, hs);
    // A vote no candidate counts (the candidate refuses the voter's incarnation) promises nothing.
    if (hs.vote !== 0 && this.voteCounts(node, hs.vote)) {
      let votes = this.votes.get(node);
      if (votes === undefined) this.votes.set(node, (votes = new Map()));
      const earlier = votes.get(hs.term);
      if (earlier === undefined) votes.set(hs.term, hs.vote);
      else if (earlier !== hs.vote) {
        const lost = this.diskLostAt.get(node);
        const why = lost === undefined ? "" : ` (it lost its disk at step ${lost})`;
        this.record("doubleVote", `node ${node} voted for ${earlier} and then ${hs.vote} in term ${hs.term}${why}`);
        return;
      }
    }
    if (before === undefined) return;
    if (hs.term < before.term) {
      this.record("termRegressed", `node ${node} persisted term ${hs.term} after term ${before.term}`);
    } else if (hs.term === before.term && before.vote !== 0 && hs.vote !== before.vote) {
      this.record("doubleVote", `node ${node} voted for ${before.vote} and then ${hs.vote} in term ${hs.term}`);
    }
  }

  /** The node lost its disk: its durable state starts again from nothing (its votes stay cast). */
  observeDiskLost(node: NodeId): void {
    this.durableHard.delete(node);
    this.diskLostAt.set(node, this.step);
  }

  /**
   * Log matching, checked incrementally: every (index, term) pair that ever appears in a log (persisted
   * by a node, or carried by an append message, which shows the leader's log) must always come with the
   * same content and the same term at index-1. By induction two logs that share (i, t) then agree on
   * every entry up to i that both still hold, which is the property of the paper. Within one log, terms
   * must not decrease.
   */
  observeLogEntries(entries: readonly Entry[], prevTerm: number, source: string): void {
    let prev = prevTerm;
    let expectedIndex = entries[0]?.index ?? 0;
    for (const entry of entries) {
      if (entry.index !== expectedIndex) {
        this.record("logMatching", `${source}: entry ${entry.index} where ${expectedIndex} was expected`);
        return;
      }
      expectedIndex++;
      if (entry.term < prev) {
        this.record("logMatching", `${source}: entry ${entry.index} has term ${entry.term} after term ${prev}`);
        return;
      }
      const key = `${entry.index}:${entry.term}`;
      const content = entryContent(entry);
      const known = this.logRecords.get(key);
      if (known === undefined) {
        this.logRecords.set(key, { content, prevTerm: prev, source });
      } else if (known.content !== content || known.prevTerm !== prev) {
        this.record(
          "logMatching",
          `entry (${entry.index}, term ${entry.term}) differs: ${source} has ${shorten(content)} after term ${prev}, ` +
            `${known.source} had ${shorten(known.content)} after term ${known.prevTerm}`,
        );
        return;
      }
      prev = entry.term;
    }
  }

  /**
   * State machine safety: no two nodes apply different entries at one index. Also learns commitment
   * (see the class comment).
   */
  observeApplied(node: NodeId, entry: Entry, nodeTerm: number): void {
    const i = entry.index;
    const term = this.committedTerm[i] ?? 0;
    const content = entryContent(entry);
    if (term === 0) {
      this.committedTerm[i] = entry.term;
      this.committedContent[i] = content;
      this.commitTermBound[i] = nodeTerm;
      if (i > this.highest) this.highest = i;
      return;
    }
    // Content "" means "known only from a snapshot's metadata": the first application fills it in.
    if (this.committedContent[i] === "" && term === entry.term) this.committedContent[i] = content;
    if (term !== entry.term || this.committedContent[i] !== content) {
      this.record(
        "stateMachineSafety",
        `node ${node} applied (${i}, term ${entry.term}) ${shorten(content)} but (${i}, term ${term}) ` +
          `${shorten(this.committedContent[i] ?? "")} was applied before`,
      );
      return;
    }
    this.commitTermBound[i] = Math.min(this.commitTermBound[i] ?? nodeTerm, nodeTerm);
  }

  /** A snapshot a node installed: its last entry is committed. */
  observeSnapshotInstalled(node: NodeId, meta: SnapshotMeta, nodeTerm: number): void {
    const term = this.committedTerm[meta.index] ?? 0;
    if (term !== 0 && term !== meta.term) {
      this.record(
        "snapshotMismatch",
        `node ${node} installed a snapshot at (${meta.index}, term ${meta.term}) but term ${term} is committed there`,
      );
      return;
    }
    if (term === 0) {
      this.committedTerm[meta.index] = meta.term;
      this.committedContent[meta.index] = "";
      this.commitTermBound[meta.index] = nodeTerm;
      if (meta.index > this.highest) this.highest = meta.index;
    }
  }

  /**
   * Two snapshots of the state machine at the same index must be byte-identical (it is deterministic),
   * and name the same membership: that as of the index. One that names no voter was taken by a joining
   * node that had not yet applied a conf entry: it knew no membership, and is not compared.
   */
  observeSnapshotCreated(node: NodeId, index: number, data: Uint8Array, conf?: ConfState): void {
    const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("latin1");
    const known = this.snapshotBytes.get(index);
    if (known === undefined) this.snapshotBytes.set(index, text);
    else if (known !== text)
      this.record("snapshotMismatch", `node ${node} built a different state at index ${index}: ${shorten(text)} vs ${shorten(known)}`);
    if (conf === undefined || conf.voters.length === 0) return;
    const members = describeConf(conf);
    const knownConf = this.snapshotConf.get(index);
    if (knownConf === undefined) this.snapshotConf.set(index, members);
    else if (knownConf !== members)
      this.record(
        "snapshotMismatch",
        `node ${node} took a snapshot at index ${index} with membership ${members}, another had ${knownConf}`,
      );
  }

  /** A client command was applied at `index`: a command (unique per client op) lives at one index only. */
  observeCommand(node: NodeId, opId: number, index: number): void {
    const at = this.opIndex.get(opId);
    if (at === undefined) this.opIndex.set(opId, index);
    else if (at !== index)
      this.record("duplicateApply", `node ${node} applied op ${opId} at index ${index}; it was applied at ${at} before`);
    if (this.failedOps.has(opId)) this.record("failedOpApplied", `node ${node} applied op ${opId}, whose client was told it failed`);
  }

  /** A client was told its op certainly failed: it must never be applied, anywhere. */
  observeFailedOp(opId: number, reason: string): void {
    this.failedOps.add(opId);
    const at = this.opIndex.get(opId);
    if (at !== undefined) this.record("failedOpApplied", `op ${opId} was reported failed (${reason}) but was applied at index ${at}`);
  }

  /** The commit index of a running node never moves backwards; after a restart never below the durable commit. */
  observeCommit(node: NodeId, incarnation: number, commit: number, durableCommitAtStart: number): void {
    const seen = this.commitSeen.get(node);
    if (seen === undefined || seen.incarnation !== incarnation) {
      if (commit < durableCommitAtStart) {
        this.record("commitRegressed", `node ${node} restarted with commit ${commit} below its durable commit ${durableCommitAtStart}`);
      }
      this.commitSeen.set(node, { incarnation, commit });
      return;
    }
    if (commit < seen.commit) this.record("commitRegressed", `node ${node} moved its commit index from ${seen.commit} back to ${commit}`);
    else seen.commit = commit;
  }

  /** Committed entries are never lost (see the class comment). */
  checkCommittedDurable(storages: ReadonlyMap<NodeId, MemoryStorage>): void {
    const i = this.highest;
    if (i === 0) return;
    const term = this.committedTerm[i] ?? 0;
    const voters = this.conf.voters;
    const holders: NodeId[] = [];
    let excluded = 0;
    for (const id of voters) {
      const storage = storages.get(id);
      if (storage !== undefined && durablyHolds(storage, i, term)) holders.push(id);
      else if (this.excluded.has(id)) excluded++;
    }
    // The others, if they could form a quorum, could elect a leader without the entry.
    if (voters.length - holders.length - excluded >= majority(voters.length)) {
      const lost = [...this.diskLostAt.keys()].filter((id) => !this.excluded.has(id));
      this.record(
        "committedLost",
        `committed entry (${i}, term ${term}) is durable on ${holders.length} of ${voters.length} voters ` +
          `(${holders.join(",") || "none"} of ${voters.join(",")}): the others are a quorum` +
          (excluded > 0 ? ` (with ${excluded} excluded member(s) counted as holders)` : "") +
          (lost.length > 0 ? `; node(s) ${lost.join(",")} lost their disk and take part again` : ""),
      );
    }
  }

  /** A running node holds durably every entry it applied, with the committed term. */
  checkAppliedDurable(node: NodeId, applied: number, storage: MemoryStorage): void {
    if (applied === 0) return;
    const term = this.committedTerm[applied] ?? 0;
    if (term === 0) return;
    if (!durablyHolds(storage, applied, term)) {
      this.record("appliedNotDurable", `node ${node} applied (${applied}, term ${term}) but its durable log does not hold it`);
    }
  }

  /**
   * Leader completeness: a leader of term T holds every entry committed in a term before T. The checker
   * knows, per committed index, an upper bound on the term it was committed in, so it checks the highest
   * committed index whose bound is below T (by log matching that covers the prefix below it). The check
   * is skipped when the entry is in a part of the leader's log the simulator cannot see yet.
   */
  checkLeaderCompleteness(node: NodeId, term: number, log: LogView): void {
    let j = this.highest;
    while (j > 0 && ((this.commitTermBound[j] ?? 0) === 0 || (this.commitTermBound[j] ?? 0) >= term)) j--;
    if (j === 0) return;
    const committed = this.committedTerm[j] ?? 0;
    if (j < log.firstIndex - 1) return;
    if (j > log.lastIndex) {
      this.record(
        "leaderCompleteness",
        `leader ${node} of term ${term} has last index ${log.lastIndex} but (${j}, term ${committed}) was committed earlier`,
      );
      return;
    }
    const held = log.termAt(j);
    if (held !== undefined && held !== committed) {
      this.record(
        "leaderCompleteness",
        `leader ${node} of term ${term} has term ${held} at index ${j} where term ${committed} was committed earlier`,
      );
    }
  }
}

function durablyHolds(storage: MemoryStorage, index: number, term: number): boolean {
  const snapIndex = storage.snapshot().meta.index;
  if (snapIndex >= index) return true;
  if (index > storage.lastIndex()) return false;
  return storage.term(index) === term;
}

export function describeConf(conf: ConfState): string {
  const voters = [...conf.voters].sort((a, b) => a - b).join(",");
  const learners = [...conf.learners].sort((a, b) => a - b).join(",");
  return learners === "" ? `{${voters}}` : `{${voters}; learners ${learners}}`;
}

function shorten(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
