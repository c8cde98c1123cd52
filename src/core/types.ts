/**
 * The data the Raft core takes in and hands out. Plain, serializable values: the transport converts
 * `Message` to and from protobuf, the storage persists `Entry`, `HardState` and `Snapshot`, and the
 * simulator copies them around. Indexes and terms are JS numbers (safe integers up to 2^53, which a
 * cluster doing a million entries per second reaches after 285 years).
 */

/** A member's id: a positive safe integer, unique in the cluster. 0 means "none". */
export type NodeId = number;
export const noNode: NodeId = 0;

/**
 * - `normal`: an application command (the KV state machine decodes `data`).
 * - `noop`: appended by every new leader so that entries of earlier terms can commit (Figure 8).
 * - `conf`: a membership change (conf-change.ts). It takes effect on every node as soon as it is in
 *   that node's log, committed or not (thesis 4.1), and is undone if the entry is overwritten.
 */
export type EntryType = "normal" | "noop" | "conf";

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** What must be durable before a node answers a vote or an append (Raft paper, Figure 2, "Persistent state"). */
export interface HardState {
  readonly term: number;
  /** The candidate voted for in `term`, or noNode. */
  readonly vote: NodeId;
  /** The highest index known committed. Persisting it is an optimisation for restart, not a safety need. */
  readonly commit: number;
}

/** Whether two hard states are equal field by field (a Ready carries one only when it changed). */
export function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** Cluster membership as of some log index. Learners receive the log but neither vote nor count for quorum. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export interface SnapshotMeta {
  /** The last log index the snapshot covers, and that entry's term. */
  readonly index: number;
  readonly term: number;
  /** Membership as of `index`. */
  readonly conf: ConfState;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  /** The state machine's encoded state; opaque to the core. */
  readonly data: Uint8Array;
}

export type Role = "follower" | "precandidate" | "candidate" | "leader";

/**
 * Messages between nodes. Every message carries the sender's term, except that a PreVote request
 * carries the term the sender *would* campaign in (its own term + 1) without having adopted it.
 *
 * Responses travel as messages of their own (not as RPC replies): the follower answers once its log
 * is durable, and the transport can batch many messages into one request.
 */
export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | SnapshotRequest
  | TimeoutNowRequest
  | ReadIndexRequest
  | ReadIndexResponse;

export type MessageType = Message["type"];

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

export interface VoteRequest extends Envelope {
  readonly type: "vote";
  /** A PreVote (Raft thesis 9.6): asks "would you vote for me?" without anyone changing term. */
  readonly preVote: boolean;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Set when campaigning because of a leadership transfer: voters skip the CheckQuorum lease. */
  readonly transfer: boolean;
}

export interface VoteResponse extends Envelope {
  readonly type: "voteResp";
  readonly preVote: boolean;
  readonly granted: boolean;
}

export interface AppendRequest extends Envelope {
  readonly type: "append";
  /** The index and term of the entry just before `entries` (the consistency check). */
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  /** The leader's commit index. */
  readonly commit: number;
}

export interface AppendResponse extends Envelope {
  readonly type: "appendResp";
  /** True when the consistency check failed. */
  readonly reject: boolean;
  /**
   * Accepted: the highest index now known to match the leader's log.
   * Rejected: the `prevIndex` that was rejected (lets the leader drop stale rejections).
   */
  readonly index: number;
  /**
   * Rejected only: a hint for fast backtracking. The follower's best guess (hintIndex, hintTerm) of the
   * largest index at which its log may match the leader's: its last entry with term <= the rejected
   * prevTerm, at or below the rejected index. The leader then skips whole terms per round trip.
   */
  readonly hintIndex: number;
  readonly hintTerm: number;
}

export interface HeartbeatRequest extends Envelope {
  readonly type: "heartbeat";
  /** min(leader commit, follower's match): a follower never learns of a commit beyond what it holds. */
  readonly commit: number;
  /** The ReadIndex round this heartbeat confirms, or 0. */
  readonly readRound: number;
}

export interface HeartbeatResponse extends Envelope {
  readonly type: "heartbeatResp";
  readonly readRound: number;
}

export interface SnapshotRequest extends Envelope {
  readonly type: "snapshot";
  readonly snapshot: Snapshot;
}

/** Leadership transfer: the leader tells a caught-up follower to campaign at once. */
export interface TimeoutNowRequest extends Envelope {
  readonly type: "timeoutNow";
}

/** A follower asks the leader for a read index on behalf of its local readers. */
export interface ReadIndexRequest extends Envelope {
  readonly type: "readIndex";
  /** The follower's request ids, answered together. */
  readonly requestIds: readonly number[];
}

export interface ReadIndexResponse extends Envelope {
  readonly type: "readIndexResp";
  readonly requestIds: readonly number[];
  /** The read index, or 0 when the leader refuses (e.g. it has not committed an entry in its term). */
  readonly index: number;
}

/**
 * A linearizable read is safe to serve once the local state machine has applied `index`.
 * `index` 0 means the read failed (leadership lost or could not be confirmed): the caller retries.
 */
export interface ReadState {
  readonly requestId: number;
  readonly index: number;
}

export interface SoftState {
  readonly leader: NodeId;
  readonly role: Role;
}

/**
 * Whether a message may leave only once the entries, term and vote of the Ready it came with (and of
 * every earlier Ready) are durable.
 *
 * - Acknowledgements of entries (appendResp) and votes (voteResp, PreVote answers included) promise
 *   what the disk holds: sent before the fsync, a crash would let the node forget what it promised.
 * - A vote request comes from a candidate that counts its own vote; sent first, a candidate could win,
 *   crash before its vote is durable, and vote for another candidate in the same term.
 * - Everything else promises nothing about the sender's disk: a leader's appends, heartbeats and
 *   snapshots (it counts itself toward a quorum only once advance() reports its own log durable,
 *   thesis 10.2.1), heartbeat answers (they say which term and leader the node follows now, which stays
 *   true for the leader's read round whatever happens to the node later), read-index requests and
 *   answers, and a leadership transfer order. The same split as etcd-io/raft's asynchronous storage
 *   writes.
 */
export function waitsForDurability(m: Message): boolean {
  return m.type === "appendResp" || m.type === "voteResp" || m.type === "vote";
}

/** What RaftNode.takeUnblocked() hands out while a Ready is being made durable. */
export interface Unblocked {
  /** Messages that promise nothing about this node's disk (see waitsForDurability). */
  readonly messages: readonly Message[];
  /** Answered read requests: each may be served once the state machine has applied its index. */
  readonly readStates: readonly ReadState[];
}

/**
 * Everything the core wants done, handed out by `RaftNode.ready()`. The driver must, in this order:
 *  1. durably persist `snapshot` (if any), `entries` and `hardState` (if any) when `mustSync`; a Ready
 *     whose only change is the commit index need not be written at all;
 *  2. send `messages`;
 *  3. apply `committedEntries` to the state machine, and answer `readStates` once their index is applied;
 *  4. call `advance(ready)`.
 *
 * Messages for which waitsForDurability() is false (a leader's appends, heartbeats and snapshots, as
 * Raft thesis 10.2.1 allows, and everything else that promises nothing about the sender's disk) may be
 * sent before step 1 completes; the rest (acknowledgements, votes and vote requests) must wait for it.
 * While step 1 runs, takeUnblocked() hands out what has become sendable since.
 */
export interface Ready {
  readonly softState: SoftState | undefined;
  readonly hardState: HardState | undefined;
  readonly snapshot: Snapshot | undefined;
  readonly entries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  readonly mustSync: boolean;
}
