import { create, toBinary } from "@bufbuild/protobuf";
import { CommandResultSchema, CommandSchema, type Command, type CommandResult } from "../../gen/raftkv/v1/command_pb.js";
import {
  decodeConfEntry,
  noNode,
  RaftNode,
  waitsForDurability,
  type ProposeResult,
  type ConfState,
  type Entry,
  type LogStorage,
  type Message,
  type NodeId,
  type ReadState,
  type Ready,
  type Snapshot,
  type SnapshotMeta,
  type SnapshotRequest,
} from "../core/index.js";
import { assert } from "../lib/assert.js";
import type { Logger } from "../lib/logger.js";
import { createPrng } from "../lib/prng.js";
import type { KvStore, MemberRecord, SnapshotChunks } from "../kv/index.js";
import { systemClock, type DriverClock } from "./clock.js";
import {
  InvalidRequestError,
  MembershipPendingError,
  MembershipRefusedError,
  NotLeaderError,
  OverloadedError,
  ReadFailedError,
  StoppedError,
  TooLargeError,
  UnknownOutcomeError,
} from "./errors.js";
import { decodeMemberRecords, encodeMemberRecords, memberViews } from "./membership.js";
import type { KvNode, MemberView, MembershipChange, NodeStatusView } from "./types.js";

/** The durable log the driver needs (src/storage implements it). */
export interface DriverStorage extends LogStorage {
  save(hardState: Ready["hardState"], entries: readonly Entry[]): Promise<void>;
  installSnapshot(snapshot: Snapshot): Promise<void>;
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Promise<SnapshotMeta>;
  compact(index: number): Promise<void>;
  /** The latest snapshot's metadata, whether or not its data is in memory (see releaseSnapshotData). */
  snapshotMeta(): SnapshotMeta;
  /** The size of the latest snapshot's data. */
  snapshotBytes(): number;
  /** The driver is done with the latest snapshot's data (DurableLog.releaseSnapshotData). */
  releaseSnapshotData(): void;
  readonly failure: Error | undefined;
  close(): Promise<void>;
}

/** The peer transport (src/transport implements it). */
export interface DriverTransport {
  send(messages: readonly Message[]): void;
  /** Replaces the peers (id to peer URL): new ones get a link, removed ones lose theirs. */
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
  /** Cumulative per-peer counters, for metrics. */
  stats(): ReadonlyMap<
    NodeId,
    { readonly sent: number; readonly dropped: number; readonly steps: number; readonly failures: number; readonly snapshotsSent: number }
  >;
  close(): Promise<void>;
}

/** The driver logs through the logger every layer shares (src/lib/logger.ts). */
export type DriverLogger = Logger;

/** Hooks for metrics; every one optional so tests can leave them out. */
export interface DriverObserver {
  onPersisted?(rd: Ready, persistMs: number): void;
  /** After each Ready; `applyMs` is how long its committed entries took to apply (undefined: it had none). */
  onApplied?(appliedIndex: number, commitIndex: number, applyMs: number | undefined): void;
  onSoftState?(role: string, term: number, leader: NodeId): void;
  onProposal?(outcome: "ok" | "failed", ms: number): void;
  onReadBarrier?(outcome: "ok" | "failed", ms: number): void;
  /** A snapshot was created from the local state, or installed from the leader's. */
  onSnapshot?(kind: "created" | "installed", index: number, bytes: number, ms: number): void;
}

export interface DriverOptions {
  readonly id: NodeId;
  /**
   * The members known before the log names any: the founding members (--initial-cluster), or those a
   * joining node was told of. A member's URLs come from here until a membership change in the log (or
   * a snapshot taken after one) carries them. The store does not copy them: founding members' flags
   * may differ (a proxy in front of each link), and every replica's store must hold the same.
   */
  readonly members: readonly MemberView[];
  /** A learner is promoted only when its log is within this many entries of the leader's. Default promoteLagMaxDefault. */
  readonly promoteLagMax?: number;
  /** Called once when this node applies its own removal from the cluster (it should stop). */
  readonly onRemoved?: () => void;
  readonly storage: DriverStorage;
  /** The KV state machine, already restored from the storage's latest snapshot. */
  readonly stateMachine: KvStore;
  readonly transport: DriverTransport;
  readonly logger: DriverLogger;
  readonly observer?: DriverObserver;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly msgBytesMax: number;
  /** Pending proposals and reads beyond these are refused with OverloadedError. */
  readonly proposalsMax: number;
  readonly readsMax: number;
  /** Take a snapshot once this many entries were applied since the last one. */
  readonly snapshotEntries: number;
  /**
   * Or once the commands applied since the last one carry this many bytes, whichever comes first: with
   * large values the entry count alone would let the WAL, and a restart's replay, grow without bound.
   * Absent: the entry count alone.
   */
  readonly snapshotBytes?: number;
  /** Entries kept in the log below a snapshot, so slightly lagging followers catch up without one. */
  readonly retainEntries: number;
  /** Called once everything is closed at the end of stop() (openNode releases the data directory). */
  readonly onStopped?: () => Promise<void>;
  /**
   * A write to the log that has not reached the disk after this many milliseconds marks the storage
   * stalled (gray failure): the node reports not ready and, if it leads, hands leadership to the most
   * caught-up follower, whose own disk can commit. Cleared when the write completes.
   */
  readonly storageStallMs?: number;
  /** Seed for election timeouts; defaults to one derived from the id and the clock. */
  readonly seed?: number;
  /** Timers and time; the system clock unless a simulator drives virtual time. */
  readonly clock?: DriverClock;
}

/** How much of a snapshot joinInTurns copies between two turns of the event loop. */
const joinBytesPerTurn = 1024 * 1024;

/** A learner may be promoted when at most this many entries behind the leader (about a second of writes). */
export const promoteLagMaxDefault = 1000;
/** Peer URLs learned from Step batches (Driver.learnPeerUrl) kept at most: a cluster adds a few members at a time. */
const learnedPeerUrlsMax = 16;

interface PendingProposal {
  readonly term: number;
  readonly resolve: (result: CommandResult) => void;
  readonly reject: (error: Error) => void;
}

interface PendingRead {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** The driver's lifecycle, changed only in `setState`. */
type DriverState =
  | { readonly kind: "running" }
  | { readonly kind: "stopping" }
  | { readonly kind: "stopped" }
  | { readonly kind: "failed"; readonly error: Error };

/**
 * The serialized loop (docs/design.md, "The Ready/advance contract") that owns a core, a durable log, a transport and the KV state
 * machine. Inputs (ticks, peer messages, proposals, reads) are fed to the core synchronously as they
 * arrive; one loop drains Readies one at a time: persist, send, apply, advance. JavaScript's single
 * thread serializes every access to the core.
 */
export class Driver implements KvNode {
  readonly id: NodeId;
  private readonly raft: RaftNode;
  private readonly options: DriverOptions;
  /** Records of the members named by `options.members`, for URLs the log and the store do not have yet. */
  private readonly knownMembers: ReadonlyMap<NodeId, MemberRecord>;
  /** The peers handed to the transport last (see syncPeers), and their ids for isMember. */
  private peersKey = "";
  /** The last peer URL seen for every member id (one entry per member the cluster ever had). */
  private readonly peerUrls = new Map<NodeId, string>();
  /** Peer URLs members told this node in their Step batches, for ids it has no URL for (learnPeerUrl); oldest first. */
  private readonly learnedPeerUrls = new Map<NodeId, string>();
  private peerIds: ReadonlySet<NodeId> = new Set();
  /** The highest member id this node's log and store name (see syncPeers). */
  private highestSeen = 0;
  private removalReported = false;
  private state: DriverState = { kind: "running" };
  private readonly proposals = new Map<number, PendingProposal>();
  private readonly reads = new Map<number, PendingRead>();
  /** Reads whose index is known, waiting for the state machine to apply it; ascending by index. */
  private readsWaitingApply: { index: number; read: PendingRead }[] = [];
  private nextReadId = 1;
  private readonly clock: DriverClock;
  private stopTicker: (() => void) | undefined;
  private wakeLoop: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  private lastSnapshotIndex: number;
  private conf: ConfState;
  /**
   * The index of the last entry applied, counting the no-op entries that the KV store never
   * sees (its own appliedIndex moves only with commands). Reads wait on this.
   */
  private applied: number;
  /** A Ready's entries, term or vote are being written (flushUnblocked may run meanwhile). */
  private persisting = false;
  /** When the write in flight started (clock.now()), while one is. */
  private persistStartedAt: number | undefined;
  /** The write in flight has taken longer than storageStallMs (see checkStall). */
  private stalled = false;
  /** What the last Ready's soft and hard state said, for the log lines of role, leader and term changes. */
  private shown = { role: "follower", leader: noNode, term: 0 };
  /** A snapshot's file is being written beside the loop (maybeSnapshot). */
  private snapshotInFlight = false;
  /** Command bytes applied since the last snapshot was taken or installed (the snapshotBytes trigger). */
  private appliedBytesSinceSnapshot = 0;
  private unblockedScheduled = false;

  constructor(options: DriverOptions) {
    this.options = options;
    this.id = options.id;
    this.knownMembers = new Map(options.members.map((m) => [m.id, { id: m.id, name: m.name, peerUrl: m.peerUrl, clientUrl: m.clientUrl }]));
    this.clock = options.clock ?? systemClock;
    const { conf } = options.storage.initialState();
    this.conf = conf;
    this.lastSnapshotIndex = options.storage.snapshotMeta().index;
    this.applied = Math.max(this.lastSnapshotIndex, options.stateMachine.appliedIndex);
    // The state machine restored the snapshot before we start; committed entries after it are replayed.
    this.raft = new RaftNode({
      id: options.id,
      storage: options.storage,
      prng: createPrng(options.seed ?? (options.id * 7919 + Date.now()) >>> 0),
      electionTicks: options.electionTicks,
      heartbeatTicks: options.heartbeatTicks,
      msgBytesMax: options.msgBytesMax,
      applied: this.applied,
    });
    this.syncPeers();
  }

  start(): void {
    assert(this.loopDone === undefined, "driver: started twice");
    this.stopTicker = this.clock.every(this.options.tickMs, () => {
      if (this.state.kind !== "running") return;
      this.raft.tick();
      this.checkStall();
      this.wake();
    });
    this.loopDone = this.loop();
  }

  // -------------------------------------------------------------------------------------------
  // Inputs from the transport

  /** Peer messages, already validated for cluster id and membership by the RaftService. */
  deliver(messages: readonly Message[]): void {
    if (this.state.kind !== "running") return;
    for (const m of messages) this.raft.step(m);
    this.wake();
  }

  deliverSnapshot(message: SnapshotRequest): void {
    this.deliver([message]);
  }

  reportUnreachable(id: NodeId): void {
    if (this.state.kind !== "running") return;
    this.raft.reportUnreachable(id);
  }

  reportSnapshotStatus(id: NodeId, ok: boolean): void {
    if (this.state.kind !== "running" || ok) return;
    this.raft.reportSnapshotFailed(id);
    this.wake();
  }

  /** The transport's cumulative counters per peer (messages sent and dropped, snapshots sent). */
  peerStats(): ReadonlyMap<
    NodeId,
    { readonly sent: number; readonly dropped: number; readonly steps: number; readonly failures: number; readonly snapshotsSent: number }
  > {
    return this.options.transport.stats();
  }

  /** Proposals and reads waiting for an answer (bounded by proposalsMax and readsMax). */
  pendingCounts(): { readonly proposals: number; readonly reads: number } {
    return { proposals: this.proposals.size, reads: this.reads.size + this.readsWaitingApply.length };
  }

  /** Whether a log write has waited longer than storageStallMs (the node then reports not ready). */
  get storageStalled(): boolean {
    return this.stalled;
  }

  /** The size of the latest snapshot's state machine data (what a leader sends a lagging follower). */
  snapshotBytes(): number {
    return this.options.storage.snapshotBytes();
  }

  /**
   * Whether the peer port takes messages from `id`: a member of the membership in the log or of the
   * one applied (a member being removed stays until its removal applies: a leader removing itself
   * leads until then), or a member added after everything this node's log names (ids only grow): the
   * leader of a node that joins or that was cut off across changes may be one.
   */
  isMember(id: NodeId): boolean {
    return this.peerIds.has(id) || id > this.highestSeen;
  }

  /**
   * Member `id` said in a Step batch that its peer URL is `url`. Kept only for a member this node has no
   * URL for, and used only while its id is above every id this node's log names: a member added by a
   * change this node has not received, whose vote requests this node takes (RaftNode.addedLater) and
   * must be able to answer. Without it, a member far behind could grant such a candidate its vote and
   * never deliver it (chaos seed 38). Bounded: the newest learnedPeerUrlsMax ids are kept.
   */
  learnPeerUrl(id: NodeId, url: string): void {
    if (id === this.id || this.state.kind !== "running") return;
    if (this.peerUrls.has(id) || (this.knownMembers.get(id)?.peerUrl ?? "") !== "") return;
    if (this.learnedPeerUrls.get(id) === url) return;
    this.learnedPeerUrls.delete(id);
    this.learnedPeerUrls.set(id, url);
    for (const oldest of this.learnedPeerUrls.keys()) {
      if (this.learnedPeerUrls.size <= learnedPeerUrlsMax) break;
      this.learnedPeerUrls.delete(oldest);
    }
    this.syncPeers();
  }

  /** The members as of the log (committed or not), with their names and URLs, ascending by id. */
  members(): MemberView[] {
    return memberViews(this.raft.membership().conf, (id) => this.recordOf(id));
  }

  /**
   * Proposes a membership change on the leader and resolves with the members once it applied here. A
   * new member's id must be above every id the cluster ever had (0: the next one); see RaftNode.
   * proposeConfChange for when a change is refused or must wait.
   */
  async changeMembership(change: MembershipChange, signal?: AbortSignal): Promise<MemberView[]> {
    this.checkRunning();
    const started = this.clock.now();
    if (this.proposals.size >= this.options.proposalsMax) throw new OverloadedError(`${this.proposals.size} proposals pending`);
    const { conf } = this.raft.membership();
    const adding = change.op === "addLearner" || change.op === "addVoter";
    const highest = Math.max(this.options.stateMachine.memberIdMax, ...conf.voters, ...conf.learners);
    const nodeId = adding && change.nodeId === noNode ? highest + 1 : change.nodeId;
    if (adding && nodeId <= highest && !conf.voters.includes(nodeId) && !conf.learners.includes(nodeId)) {
      throw new MembershipRefusedError(`member id ${nodeId} was used before and is never reused; the next free id is ${highest + 1}`);
    }
    const records = new Map(this.records().map((r) => [r.id, r]));
    // Every member's record rides in the context, the founders' included: no entry or snapshot holds
    // theirs before the first change (each founder has them from --initial-cluster), and a node that
    // joins, or restarts after joining, finds the URLs of the members it must talk to only here.
    for (const id of [...conf.voters, ...conf.learners]) {
      const known = records.get(id) ?? this.knownMembers.get(id);
      if (known !== undefined) records.set(id, known);
    }
    const current = records.get(nodeId) ?? this.knownMembers.get(nodeId);
    if (change.op === "remove") records.delete(nodeId);
    else if (change.member !== undefined) records.set(nodeId, { ...current, ...change.member, id: nodeId });
    else if (current !== undefined) records.set(nodeId, current);
    const result = this.raft.proposeConfChange(
      { op: change.op, nodeId, context: encodeMemberRecords([...records.values()]) },
      this.options.promoteLagMax ?? promoteLagMaxDefault,
    );
    if (!result.ok) {
      if ("detail" in result) {
        throw result.reason === "confPending" ? new MembershipPendingError(result.detail) : new MembershipRefusedError(result.detail);
      }
      throw this.proposalRefused(result, "the membership change is larger than the largest log entry");
    }
    this.wake();
    await this.awaitApplied(result.index, result.term, started, signal);
    return this.members();
  }

  // -------------------------------------------------------------------------------------------
  // KvNode

  /** The local KV state machine: reads are served from it after readBarrier() (or directly, serializable). */
  get store(): KvStore {
    return this.options.stateMachine;
  }

  async mutate(command: Command, signal?: AbortSignal): Promise<CommandResult> {
    this.checkRunning();
    const started = this.clock.now();
    if (this.proposals.size >= this.options.proposalsMax) throw new OverloadedError(`${this.proposals.size} proposals pending`);
    const data = toBinary(CommandSchema, command);
    const result = this.raft.propose(data);
    if (!result.ok) {
      throw this.proposalRefused(result, `the command is ${data.byteLength} bytes; the log takes at most ${this.options.msgBytesMax}`);
    }
    this.wake();
    return this.awaitApplied(result.index, result.term, started, signal);
  }

  /** The error for a proposal the core refused (nothing was proposed); `tooLarge` says what was too large. */
  private proposalRefused(result: Extract<ProposeResult, { ok: false }>, tooLarge: string): Error {
    switch (result.reason) {
      case "notLeader":
        return this.notLeader(result.leader);
      case "transferring":
        return new NotLeaderError(noNode, "");
      case "tooLarge":
        return new TooLargeError(tooLarge);
      case "overloaded":
        return new OverloadedError("too many uncommitted bytes; retry later");
    }
  }

  /** Waits for the proposal at `index` of `term` to apply here (or fail: overwritten, deadline, stop). */
  private awaitApplied(index: number, term: number, started: number, signal: AbortSignal | undefined): Promise<CommandResult> {
    return new Promise<CommandResult>((resolve, reject) => {
      const finish = (outcome: "ok" | "failed") => {
        this.proposals.delete(index);
        signal?.removeEventListener("abort", onAbort);
        this.options.observer?.onProposal?.(outcome, this.clock.now() - started);
      };
      const onAbort = () => {
        if (this.proposals.get(index) !== pending) return;
        finish("failed");
        reject(new UnknownOutcomeError("deadline passed before the write applied; it may still take effect"));
      };
      const pending: PendingProposal = {
        term,
        resolve: (r) => {
          finish("ok");
          resolve(r);
        },
        reject: (e) => {
          finish("failed");
          reject(e);
        },
      };
      // A proposal of an earlier term at this index was overwritten by the log we now lead.
      this.proposals.get(index)?.reject(new UnknownOutcomeError("the write was overwritten by a new leader's log"));
      this.proposals.set(index, pending);
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async readBarrier(signal?: AbortSignal): Promise<void> {
    this.checkRunning();
    const started = this.clock.now();
    const status = this.raft.status();
    if (status.leader === noNode) throw new NotLeaderError(noNode, "");
    if (this.reads.size + this.readsWaitingApply.length >= this.options.readsMax) {
      throw new OverloadedError(`${this.reads.size} reads pending`);
    }
    const requestId = this.nextReadId++;
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        if (!this.reads.delete(requestId)) {
          this.readsWaitingApply = this.readsWaitingApply.filter((w) => w.read !== read);
        }
        settle("failed");
        reject(new ReadFailedError("deadline passed before the read index was confirmed and applied"));
      };
      const settle = (outcome: "ok" | "failed") => {
        signal?.removeEventListener("abort", onAbort);
        this.options.observer?.onReadBarrier?.(outcome, this.clock.now() - started);
      };
      const read: PendingRead = {
        resolve: () => {
          settle("ok");
          resolve();
        },
        reject: (e) => {
          settle("failed");
          reject(e);
        },
      };
      this.reads.set(requestId, read);
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.raft.readIndex(requestId);
      this.wake();
    });
  }

  status(): NodeStatusView {
    const s = this.raft.status();
    let matchIndex: Map<NodeId, number> | undefined;
    if (s.progress !== undefined) {
      matchIndex = new Map();
      for (const [id, pr] of s.progress) matchIndex.set(id, pr.match);
    }
    return {
      id: this.id,
      name: this.recordOf(this.id)?.name ?? String(this.id),
      role: s.role,
      term: s.term,
      leader: s.leader,
      commitIndex: s.commit,
      appliedIndex: this.applied,
      lastIndex: s.lastIndex,
      snapshotIndex: this.options.storage.snapshotMeta().index,
      members: this.members(),
      matchIndex,
    };
  }

  async transferLeadership(to: NodeId, signal?: AbortSignal): Promise<NodeId> {
    this.checkRunning();
    const s = this.raft.status();
    if (s.role !== "leader") throw this.notLeader(s.leader);
    let target = to;
    if (target === noNode) target = this.mostCaughtUp(s.progress) ?? noNode;
    if (target === noNode || target === this.id) return this.id;
    if (!this.raft.membership().conf.voters.includes(target)) throw new InvalidRequestError(`node ${target} is not a voting member`);
    this.raft.transferLeadership(target);
    this.wake();
    const deadline = this.options.tickMs * this.options.electionTicks * 2;
    for (let waited = 0; waited < deadline; waited += this.options.tickMs) {
      if (signal?.aborted) break;
      await this.clock.sleep(this.options.tickMs);
      const now = this.raft.status();
      if (now.leader === target) return target;
      if (now.role !== "leader" && now.leader !== noNode) return now.leader;
    }
    throw new UnknownOutcomeError(`leadership did not move to node ${target} in time`);
  }

  health(): { live: boolean; ready: boolean; reason: string } {
    switch (this.state.kind) {
      case "failed":
        return { live: true, ready: false, reason: `storage failed: ${this.state.error.message}` };
      case "stopping":
      case "stopped":
        return { live: true, ready: false, reason: "shutting down" };
      case "running": {
        if (this.stalled && this.persistStartedAt !== undefined) {
          const waited = Math.round(this.clock.now() - this.persistStartedAt);
          return { live: true, ready: false, reason: `storage stalled: a write has waited ${waited} ms for the disk` };
        }
        const s = this.raft.status();
        if (s.leader === noNode) return { live: true, ready: false, reason: "no leader known" };
        return { live: true, ready: true, reason: "ok" };
      }
    }
  }

  /**
   * Graceful shutdown: a leader first hands leadership to the most caught-up follower (so clients see
   * one short election-free switch), then the loop drains the Ready in progress and everything closes.
   */
  async stop(): Promise<void> {
    if (this.state.kind === "running" && this.raft.status().role === "leader" && this.raft.membership().conf.voters.length > 1) {
      try {
        // transferLeadership gives up by itself after two election timeouts.
        await this.transferLeadership(noNode);
      } catch (error) {
        this.options.logger.warn("leadership transfer before shutdown failed", { error: String(error) });
      }
    }
    if (this.state.kind === "running") this.setState({ kind: "stopping" });
    this.stopTicker?.();
    this.wake();
    await this.loopDone;
    this.failAll(
      new StoppedError("the node is shutting down"),
      new UnknownOutcomeError("the node stopped before the write applied; it may still commit"),
    );
    await this.options.transport.close();
    await this.options.storage.close();
    await this.options.onStopped?.();
    if (this.state.kind === "stopping") this.setState({ kind: "stopped" });
  }

  // -------------------------------------------------------------------------------------------
  // The loop

  private async loop(): Promise<void> {
    while (this.state.kind === "running") {
      if (!this.raft.hasReady()) {
        await new Promise<void>((resolve) => (this.wakeLoop = resolve));
        this.wakeLoop = undefined;
        continue;
      }
      const rd = this.raft.ready();
      try {
        await this.handleReady(rd);
      } catch (error) {
        // Storage failed (ENOSPC, EIO, ...). Nothing of this Ready was acknowledged to anyone: the
        // messages that promise durability were not sent. Stop rather than risk a lie.
        this.failStorage(error);
        return;
      }
      this.raft.advance(rd);
      this.maybeSnapshot();
    }
  }

  private failStorage(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    this.options.logger.error("storage failed; the node stops accepting work", { error: err.message });
    this.setState({ kind: "failed", error: err });
    this.stopTicker?.();
    this.failAll(
      new StoppedError(`storage failed: ${err.message}`),
      new UnknownOutcomeError(`storage failed before the write applied: ${err.message}`),
    );
    // A failure beside the loop (a snapshot's write) finds the loop waiting for input: let it end.
    this.wakeLoop?.();
  }

  private async handleReady(rd: Ready): Promise<void> {
    const { storage, transport, stateMachine } = this.options;
    this.logStateChanges(rd);
    // Proposals and appends since the last Ready may have changed the membership: a new member must
    // have a link before this Ready's messages to it go out.
    this.syncPeers();
    if (rd.softState !== undefined) {
      const s = this.raft.status();
      this.options.observer?.onSoftState?.(rd.softState.role, s.term, rd.softState.leader);
    }
    const early: Message[] = [];
    const late: Message[] = [];
    for (const m of rd.messages) (waitsForDurability(m) ? late : early).push(m);
    if (early.length > 0) transport.send(early);

    const persistStarted = this.clock.now();
    if (rd.snapshot !== undefined) {
      await storage.installSnapshot(rd.snapshot);
      stateMachine.restore(rd.snapshot.data);
      // The state holds it now; the storage reads it back from its file if a follower needs it.
      storage.releaseSnapshotData();
      this.lastSnapshotIndex = rd.snapshot.meta.index;
      this.appliedBytesSinceSnapshot = 0;
      this.applied = rd.snapshot.meta.index;
      this.options.observer?.onSnapshot?.(
        "installed",
        rd.snapshot.meta.index,
        rd.snapshot.data.byteLength,
        this.clock.now() - persistStarted,
      );
      this.conf = rd.snapshot.meta.conf;
      // Proposals at or below the snapshot were overwritten or applied elsewhere; we cannot tell which.
      for (const [index, p] of this.proposals) {
        if (index <= rd.snapshot.meta.index) p.reject(new UnknownOutcomeError("this node installed a snapshot covering the write"));
      }
    }
    // Only entries, a term and a vote must be durable before what depends on them (rd.mustSync). A
    // Ready whose only change is the commit index writes nothing: the commit index is not a promise to
    // anyone, a restart relearns it from the leader (it restarts from the last one written with
    // entries, or from its snapshot), and the entries it covers are durable already. Skipping it saves
    // an fdatasync per commit, which was half of them.
    if (rd.mustSync) {
      this.persisting = true;
      this.persistStartedAt = persistStarted;
      try {
        await storage.save(rd.hardState, rd.entries);
      } finally {
        this.persisting = false;
        this.persistStartedAt = undefined;
      }
      const persistMs = this.clock.now() - persistStarted;
      if (this.stalled) {
        this.stalled = false;
        this.options.logger.warn("storage recovered: the stalled write reached the disk", { ms: Math.round(persistMs) });
      }
      // The Ready contract's durability boundary: what the messages below promise is on disk now.
      const last = rd.entries.at(-1);
      assert(
        last === undefined || storage.lastIndex() >= last.index,
        () => `driver: entry ${last?.index} saved but the log ends at ${storage.lastIndex()}`,
      );
      this.options.observer?.onPersisted?.(rd, persistMs);
    }
    if (late.length > 0) transport.send(late);

    const applyStarted = this.clock.now();
    for (const entry of rd.committedEntries) this.apply(entry);
    this.syncPeers();
    this.answerReads(rd.readStates);
    const applyMs = rd.committedEntries.length === 0 ? undefined : this.clock.now() - applyStarted;
    this.options.observer?.onApplied?.(this.applied, this.raft.status().commit, applyMs);
  }

  private apply(entry: Entry): void {
    // The core hands out committed entries once each, in order, from the `applied` it was started with
    // (or reset to by a snapshot): a gap or a repeat would make this replica diverge.
    assert(entry.index === this.applied + 1, () => `driver: applying entry ${entry.index} after ${this.applied}`);
    this.applied = entry.index;
    this.appliedBytesSinceSnapshot += entry.data.byteLength;
    const pending = this.proposals.get(entry.index);
    if (entry.type === "conf") {
      this.applyConf(entry);
      if (pending === undefined) return;
      if (pending.term !== entry.term) pending.reject(new UnknownOutcomeError("the change was overwritten by a new leader's log"));
      else pending.resolve(create(CommandResultSchema, {}));
      return;
    }
    if (entry.type !== "normal") {
      pending?.reject(new UnknownOutcomeError("the write was overwritten by a new leader's log"));
      return;
    }
    const outcome = this.options.stateMachine.apply(entry.index, entry.data);
    if (pending === undefined) return;
    if (pending.term !== entry.term) {
      // Another leader's entry took this index: ours was overwritten and will never apply here.
      pending.reject(new UnknownOutcomeError("the write was overwritten by a new leader's log"));
    } else if (outcome.kind === "error") {
      pending.reject(outcome.error);
    } else {
      pending.resolve(outcome.result);
    }
  }

  /**
   * A committed membership change: the membership as of the applied index (what a snapshot taken now
   * records) and the store's member records. A node that applies its own removal reports it once.
   */
  private applyConf(entry: Entry): void {
    const decoded = decodeConfEntry(entry.data);
    // The transport and the WAL refuse conf entries that do not decode, and the core asserted it too.
    assert(decoded !== undefined, () => `driver: conf entry ${entry.index} does not decode`);
    this.conf = decoded.conf;
    const members = new Set([...decoded.conf.voters, ...decoded.conf.learners]);
    const records = decodeMemberRecords(decoded.change.context) ?? this.options.stateMachine.members;
    this.options.stateMachine.applyMembership(
      entry.index,
      decoded.change.nodeId,
      records.filter((r) => members.has(r.id)),
    );
    const { op, nodeId } = decoded.change;
    this.options.logger.info(`membership change applied: ${op} of node ${nodeId}`, {
      index: entry.index,
      voters: decoded.conf.voters,
      learners: decoded.conf.learners,
    });
    if (op === "remove" && nodeId === this.id && !this.removalReported) {
      this.removalReported = true;
      this.options.logger.warn("this node was removed from the cluster; it stops");
      queueMicrotask(() => this.options.onRemoved?.());
    }
  }

  /** Every member's record: the latest conf entry's in the log, else the store's (the snapshot's or the founders'). */
  private records(): readonly MemberRecord[] {
    const { context } = this.raft.membership();
    return (context === undefined ? undefined : decodeMemberRecords(context)) ?? this.options.stateMachine.members;
  }

  private recordOf(id: NodeId): MemberRecord | undefined {
    return this.records().find((r) => r.id === id) ?? this.knownMembers.get(id);
  }

  /**
   * Gives the transport a link to every member of the membership in the log and of the one applied,
   * and to the members the last change removed (the leader tells them their removal committed; see
   * isMember), with the URLs the records give; only when they changed.
   */
  private syncPeers(): void {
    const { conf, departing } = this.raft.membership();
    const ids = new Set([...conf.voters, ...conf.learners, ...departing, ...this.conf.voters, ...this.conf.learners]);
    // Ids only grow: one above every id this node's log and store have named belongs to a member added
    // after them. A joining node replays old memberships that do not name the leader (which the cluster
    // listed when it joined), and must hear it and answer it all the same.
    this.highestSeen = Math.max(this.options.stateMachine.memberIdMax, ...ids);
    for (const id of this.knownMembers.keys()) if (id > this.highestSeen) ids.add(id);
    for (const id of this.learnedPeerUrls.keys()) if (id > this.highestSeen) ids.add(id);
    ids.delete(this.id);
    // A removed member has no record in the change that removed it, yet is still told of its removal:
    // its URL is the last one seen.
    for (const r of [...this.options.stateMachine.members, ...this.records()]) if (r.peerUrl !== "") this.peerUrls.set(r.id, r.peerUrl);
    const peers = new Map<NodeId, string>();
    for (const id of [...ids].sort((a, b) => a - b)) {
      const known = this.knownMembers.get(id)?.peerUrl;
      const url = this.peerUrls.get(id) ?? (known !== undefined && known !== "" ? known : undefined) ?? this.learnedPeerUrls.get(id) ?? "";
      if (url !== "") peers.set(id, url);
    }
    this.peerIds = ids;
    const key = JSON.stringify([...peers]);
    if (key === this.peersKey) return;
    this.peersKey = key;
    this.options.transport.setPeers(peers);
  }

  /** Read states from the core: each read waits until the state machine has applied its index. */
  private answerReads(readStates: readonly ReadState[]): void {
    for (const rs of readStates) {
      const read = this.reads.get(rs.requestId);
      if (read === undefined) continue;
      this.reads.delete(rs.requestId);
      if (rs.index === 0) read.reject(new ReadFailedError("leadership could not be confirmed for this read; retry"));
      else this.readsWaitingApply.push({ index: rs.index, read });
    }
    this.releaseReads();
  }

  /**
   * While a Ready's write is in flight the loop cannot take the next Ready, but what promises nothing
   * about the disk need not wait for it (etcd-io/raft's asynchronous storage writes): heartbeats and
   * their answers, a leader's appends, read rounds and answered reads go out at once. Runs once per
   * turn of the event loop in which inputs arrived.
   */
  private flushUnblocked(): void {
    this.unblockedScheduled = false;
    if (!this.persisting || this.state.kind !== "running") return;
    const { messages, readStates } = this.raft.takeUnblocked();
    if (messages.length > 0) this.options.transport.send(messages);
    this.answerReads(readStates);
  }

  private releaseReads(): void {
    if (this.readsWaitingApply.length === 0) return;
    const applied = this.applied;
    const waiting: { index: number; read: PendingRead }[] = [];
    for (const w of this.readsWaitingApply) {
      if (w.index <= applied) w.read.resolve();
      else waiting.push(w);
    }
    this.readsWaitingApply = waiting;
  }

  /**
   * Takes a snapshot every `snapshotEntries` applied entries (or `snapshotBytes` of applied commands)
   * and compacts the log behind it, beside
   * the loop, which goes on handling Readies: a snapshot of a large state used to stop every write for
   * as long as its encoding and its file's fsyncs took (p99 of 0.5 s at 64 writers). The state machine
   * captures its state now, at exactly `applied` (a copy of references to immutable records), and
   * writeSnapshot encodes it one small chunk per event-loop turn. Safe because the storage orders the
   * snapshot after the saves before it and compacts only what a durable snapshot covers
   * (src/storage/durable-log.ts), and the core reads nothing from the snapshot until it is durable. At
   * most one is in flight, so their memory is bounded by one encoded state.
   */
  private maybeSnapshot(): void {
    const { stateMachine, snapshotEntries, snapshotBytes } = this.options;
    const applied = this.applied;
    const entriesDue = applied - this.lastSnapshotIndex >= snapshotEntries;
    const bytesDue = snapshotBytes !== undefined && this.appliedBytesSinceSnapshot >= snapshotBytes;
    if (this.snapshotInFlight || applied <= this.lastSnapshotIndex || (!entriesDue && !bytesDue)) return;
    const chunks = stateMachine.snapshotChunks();
    this.lastSnapshotIndex = applied;
    this.appliedBytesSinceSnapshot = 0;
    this.snapshotInFlight = true;
    void this.writeSnapshot(applied, this.conf, chunks).finally(() => (this.snapshotInFlight = false));
  }

  private async writeSnapshot(index: number, conf: ConfState, chunks: SnapshotChunks): Promise<void> {
    const { storage } = this.options;
    const started = this.clock.now();
    try {
      const parts: (Uint8Array | undefined)[] = [];
      try {
        for (const chunk of chunks) {
          parts.push(chunk);
          await this.clock.nextTurn();
          if (this.state.kind !== "running") return;
        }
      } finally {
        chunks.close();
      }
      const data = await this.joinInTurns(parts);
      if (this.state.kind !== "running") return;
      await storage.createSnapshot(index, conf, data);
      // Written: the storage reads it back from its file if a follower needs it.
      storage.releaseSnapshotData();
      const compactTo = index - this.options.retainEntries;
      if (compactTo > storage.firstIndex()) await storage.compact(compactTo);
      this.options.observer?.onSnapshot?.("created", index, data.byteLength, this.clock.now() - started);
    } catch (error) {
      // Writing the snapshot or compacting the log failed. The log itself is intact, but the disk is
      // failing and the node must not go on silently "running" (every write would hang): fail-stop
      // like any other storage failure, as etcd does. A failure after stop() began is the closing
      // storage refusing work, not a disk fault.
      if (this.state.kind === "running") this.failStorage(error);
    }
  }

  /**
   * The snapshot's chunks as the one buffer the storage writes, copied about a MiB per event-loop turn:
   * joining 125 MB in one go stopped the loop for half a second (bench:state). Each chunk is dropped
   * once copied, so the chunks and the buffer are not both held whole.
   */
  private async joinInTurns(parts: (Uint8Array | undefined)[]): Promise<Uint8Array> {
    const first = parts[0];
    if (parts.length === 1 && first !== undefined) return first;
    let size = 0;
    for (const part of parts) size += part?.byteLength ?? 0;
    // Every byte is overwritten below: no need to zero it first.
    const out = Buffer.allocUnsafeSlow(size);
    let offset = 0;
    let sinceTurn = 0;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part === undefined) continue;
      out.set(part, offset);
      offset += part.byteLength;
      parts[i] = undefined;
      sinceTurn += part.byteLength;
      if (sinceTurn >= joinBytesPerTurn) {
        sinceTurn = 0;
        await this.clock.nextTurn();
      }
    }
    return out;
  }

  /**
   * Gray failure: a disk that stops completing writes without failing them. A stalled follower only
   * says so (not ready, so clients and load balancers go elsewhere); a stalled leader also hands
   * leadership to the most caught-up follower. It can: the leader sent its entries before writing them
   * (the Ready contract), so a follower whose disk works can match its log, and the TimeoutNow message
   * promises nothing about this node's disk, so flushUnblocked sends it while the write hangs.
   */
  private checkStall(): void {
    const started = this.persistStartedAt;
    const limitMs = this.options.storageStallMs;
    if (started === undefined || limitMs === undefined || this.stalled) return;
    const waited = this.clock.now() - started;
    if (waited < limitMs) return;
    this.stalled = true;
    const s = this.raft.status();
    const target = s.role === "leader" ? this.mostCaughtUp(s.progress) : undefined;
    this.options.logger.warn("storage stalled: a write has not reached the disk; reporting not ready", {
      waitedMs: Math.round(waited),
      limitMs,
      ...(target === undefined ? {} : { transferTo: target }),
    });
    if (target !== undefined) this.raft.transferLeadership(target);
  }

  /** One log line per change of role, leader or term, with what it changed from. */
  private logStateChanges(rd: Ready): void {
    const role = rd.softState?.role ?? this.shown.role;
    const leader = rd.softState?.leader ?? this.shown.leader;
    const term = rd.hardState?.term ?? this.shown.term;
    const was = this.shown;
    if (role === was.role && leader === was.leader && term === was.term) return;
    this.shown = { role, leader, term };
    const fields = { role, term, leader, previousRole: was.role, previousTerm: was.term, previousLeader: was.leader };
    if (role !== was.role) this.options.logger.info(`became ${role}`, fields);
    else if (leader !== was.leader) this.options.logger.info(leader === noNode ? "lost the leader" : `leader is node ${leader}`, fields);
    else this.options.logger.info(`term ${term}`, fields);
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  private wake(): void {
    this.wakeLoop?.();
    if (this.persisting && !this.unblockedScheduled) {
      this.unblockedScheduled = true;
      queueMicrotask(() => this.flushUnblocked());
    }
  }

  private setState(state: DriverState): void {
    this.state = state;
  }

  private checkRunning(): void {
    if (this.state.kind === "failed") throw new StoppedError(`storage failed: ${this.state.error.message}`);
    if (this.state.kind !== "running") throw new StoppedError("the node is shutting down");
  }

  private notLeader(leader: NodeId): NotLeaderError {
    return new NotLeaderError(leader, this.recordOf(leader)?.clientUrl ?? "");
  }

  private mostCaughtUp(progress: ReadonlyMap<NodeId, { match: number }> | undefined): NodeId | undefined {
    let best: NodeId | undefined;
    let bestMatch = -1;
    for (const [id, pr] of progress ?? []) {
      if (id === this.id || !this.raft.membership().conf.voters.includes(id)) continue;
      if (pr.match > bestMatch) {
        best = id;
        bestMatch = pr.match;
      }
    }
    return best;
  }

  /** Proposals already in the log may still commit through other nodes: their outcome is unknown. */
  private failAll(error: Error, proposalError: UnknownOutcomeError): void {
    for (const p of [...this.proposals.values()]) p.reject(proposalError);
    for (const r of [...this.reads.values()]) r.reject(error);
    for (const w of this.readsWaitingApply) w.read.reject(error);
    this.reads.clear();
    this.readsWaitingApply = [];
  }
}
