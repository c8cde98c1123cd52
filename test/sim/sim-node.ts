import {
  decodeConfEntry,
  MemoryStorage,
  RaftNode,
  waitsForDurability,
  type ConfChange,
  type ConfProposeResult,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ProposeResult,
  type Ready,
  type ReadState,
  type Snapshot,
  type SoftState,
  type Status,
} from "../../src/core/index.js";
import { assert } from "../../src/lib/assert.js";
import type { Prng } from "../../src/lib/prng.js";
import type { KvOutput } from "./history.js";
import type { LogView } from "./invariants.js";
import { decodeCommand, KvStateMachine, type KvCommand } from "./kv-model.js";

/**
 * One simulated raftkv process: a RaftNode, its durable MemoryStorage, the state machine, and a driver
 * loop that follows the Ready contract of src/core/types.ts with slow disks:
 *
 *  - a Ready's persistence (snapshot, entries, hard state) takes a seed-chosen number of steps ("fsync
 *    in flight"); only one Ready is outstanding, and the core keeps ticking and receiving meanwhile;
 *  - the Ready's messages that promise nothing about the disk (the core's `waitsForDurability` is false:
 *    everything but appendResp, voteResp and vote) leave at once, the others only once the write is
 *    durable, as src/driver/node.ts does (in the seeds with `earlySends`; the others hold every message);
 *  - while the write is in flight, a step in which inputs reached the core (messages, ticks, proposals,
 *    reads, a transfer, a campaign) ends, in most such steps, with `takeUnblocked()`: its messages leave
 *    and its read states go to the same read bookkeeping as a Ready's (production's flushUnblocked, once
 *    per turn of the event loop with inputs);
 *  - then committed entries are applied, read states answered once applied, and advance() called.
 *
 * A crash loses the write in flight, or (torn write) keeps a prefix of its records in WAL order:
 * snapshot, entries, hard state; after a crash the simulator may also take the whole disk away
 * (`loseDisk`). Everything else in memory is gone: the RaftNode, the state machine,
 * unsent messages and pending reads. A restart rebuilds the state machine from the durable snapshot
 * (and sometimes replays part of the durable committed log), then starts a RaftNode with `applied` at
 * the restored index, so the core hands out the remaining committed entries again.
 *
 * Conf entries (membership changes) are applied like no-ops, and the node keeps the membership as of
 * its applied index for the snapshots it takes. A node added by the membership nemesis starts on an
 * empty disk whose membership is empty too (`voters` []): it learns the membership from the log or a
 * snapshot, as a joining raftkv process does.
 */
export interface SimNodeConfig {
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** A write that must be synced takes 0..fsyncStepsMax steps (the initial value; see SimNode.fsyncStepsMax). */
  readonly fsyncStepsMax: number;
  /**
   * Whether the driver sends what promises nothing about its disk before its write is durable, as
   * production does: a Ready's messages for which waitsForDurability() is false, and takeUnblocked()'s
   * while the write is in flight. Off: a stricter driver that holds every message until the write is
   * durable and never calls takeUnblocked() (also allowed by the Ready contract).
   */
  readonly earlySends: boolean;
  /**
   * With earlySends: the probability that a step in which inputs reached the core while a write is in
   * flight ends with takeUnblocked() (production calls it after every such turn of its event loop; a
   * step stands for many turns, and leaving some out explores the orders in which the write completes
   * first and the Ready carries those messages instead).
   */
  readonly unblockedRate: number;
  /** Whether a crash may keep a prefix of the write in flight. */
  readonly tornWrites: boolean;
  /**
   * A deliberately broken driver that sends every message before its write is durable, breaking the
   * Ready contract. Only the simulator's self-test turns it on, to show that the checkers catch it.
   */
  readonly unsafeSendBeforeDurable: boolean;
  /** Bound on Readys handled in one step (when writes complete instantly, the loop could go on). */
  readonly readyPerStepMax: number;
}

/** What the node's takeUnblocked() calls handed out (summed into SimResult.unblocked, for the tests). */
export interface UnblockedStats {
  /** Calls of takeUnblocked(). */
  takes: number;
  messages: number;
  readStates: number;
}

/** What a node reports to the simulation: the checkers and the clients listen here. */
export interface SimNodeHooks {
  send(message: Message): void;
  /** A write reached the durable storage (all of it, or the prefix a crash kept). */
  persisted(node: SimNode, write: DurableWrite): void;
  softState(node: SimNode, soft: SoftState, term: number): void;
  /** `term` is the node's current term (an upper bound on the term the entry was committed in). */
  applied(node: SimNode, entry: Entry, command: KvCommand | undefined, output: KvOutput | undefined, term: number): void;
  /** The state machine was replaced by a snapshot the leader sent. */
  installed(node: SimNode, snapshot: Snapshot): void;
  /** A read's index is applied (index 0: the read failed). */
  readReady(node: SimNode, requestId: number, index: number): void;
  /** Something the core handed out breaks the Ready contract. */
  contractViolation(node: SimNode, message: string): void;
  /** takeUnblocked() was called while a write was in flight (its messages went through `send` already). */
  unblocked(node: SimNode, messages: number, readStates: number): void;
}

export interface DurableWrite {
  readonly snapshot: Snapshot | undefined;
  readonly entries: readonly Entry[];
  readonly hardState: HardState | undefined;
  /** The term of the entry before entries[0] in the node's log, once written. */
  readonly prevTerm: number;
}

interface Persisting {
  readonly ready: Ready;
  readonly doneAt: number;
  /** Messages that promise something about this write, sent once it is durable. */
  readonly held: readonly Message[];
}

interface Running {
  readonly kind: "up";
  readonly raft: RaftNode;
  sm: KvStateMachine;
  persisting: Persisting | undefined;
  /** Reads whose index is known, waiting for the state machine to apply it. */
  readonly pendingReads: { readonly requestId: number; readonly index: number }[];
  /**
   * The membership as of the state machine's index: the snapshot's, then that of each conf entry
   * applied (test/core/membership.test.ts, confAsApplied). A snapshot the node takes carries this one,
   * not status().conf, which may already include a later change that is not committed.
   */
  conf: ConfState;
  readonly incarnation: number;
  /** The durable commit index when this incarnation started. */
  readonly durableCommitAtStart: number;
  /** Inputs reached the core since the last `process` (what wakes production's flushUnblocked). */
  inputs: boolean;
}

type Life = Running | { readonly kind: "down" };

export class SimNode {
  private disk: MemoryStorage;
  private life: Life = { kind: "down" };
  private incarnations = 0;
  /** The current disk speed: the simulator calms the disks when it heals the cluster. */
  fsyncStepsMax: number;
  /** Crashes so far, for the run summary. */
  crashes = 0;
  readonly unblockedStats: UnblockedStats = { takes: 0, messages: 0, readStates: 0 };
  /** Its own stream, so that drawing for takeUnblocked() does not shift the disk's timing. */
  private readonly unblockedPrng: Prng;

  constructor(
    readonly id: NodeId,
    private readonly voters: readonly NodeId[],
    private readonly config: SimNodeConfig,
    private readonly prng: Prng,
    private readonly hooks: SimNodeHooks,
  ) {
    this.disk = this.emptyDisk();
    this.fsyncStepsMax = config.fsyncStepsMax;
    this.unblockedPrng = prng.fork();
  }

  /** The durable state: what survives a crash of this node right now. */
  get storage(): MemoryStorage {
    return this.disk;
  }

  /**
   * The disk of a stopped node is lost: log, hard state and snapshot. A start after this begins from an
   * empty disk (term 0, no vote, no entry), as a process does on an empty data directory.
   */
  loseDisk(): void {
    assert(this.life.kind === "down", `sim node ${this.id}: disk lost while running`);
    this.disk = this.emptyDisk();
  }

  private emptyDisk(): MemoryStorage {
    return new MemoryStorage({ voters: [...this.voters], learners: [] });
  }

  get isUp(): boolean {
    return this.life.kind === "up";
  }

  get incarnation(): number {
    return this.incarnations;
  }

  /** The running node, or undefined when it is down. */
  running(): Running | undefined {
    return this.life.kind === "up" ? this.life : undefined;
  }

  status(): Status | undefined {
    return this.life.kind === "up" ? this.life.raft.status() : undefined;
  }

  /**
   * Starts (or restarts) the process from durable state. With `replay`, the state machine first replays a
   * seed-chosen part of the durable committed log itself, and tells the core it has applied that far.
   */
  start(replay: boolean): void {
    assert(this.life.kind === "down", `sim node ${this.id}: start while running`);
    const snapshot = this.storage.snapshot();
    const sm = KvStateMachine.restore(snapshot.data);
    if (sm.index !== snapshot.meta.index) {
      this.hooks.contractViolation(this, `durable snapshot at ${snapshot.meta.index} holds state of index ${sm.index}`);
    }
    const durable = this.storage.initialState().hardState;
    const replayTo = Math.min(durable.commit, this.storage.lastIndex());
    let conf = snapshot.meta.conf;
    if (replay && replayTo > sm.index) {
      const upTo = this.prng.int(sm.index, replayTo);
      if (upTo > sm.index) {
        for (const entry of this.storage.entries(sm.index + 1, upTo + 1, Number.POSITIVE_INFINITY)) {
          conf = this.applyEntry(sm, entry, durable.term) ?? conf;
        }
      }
    }
    const raft = new RaftNode({
      id: this.id,
      storage: this.storage,
      prng: this.prng.fork(),
      electionTicks: this.config.electionTicks,
      heartbeatTicks: this.config.heartbeatTicks,
      preVote: this.config.preVote,
      checkQuorum: this.config.checkQuorum,
      applied: sm.index,
    });
    this.life = {
      kind: "up",
      raft,
      sm,
      persisting: undefined,
      pendingReads: [],
      conf,
      incarnation: ++this.incarnations,
      durableCommitAtStart: durable.commit,
      inputs: false,
    };
  }

  /** Kills the process. A write in flight is lost, or with torn writes a prefix of it survives. */
  crash(): void {
    const life = this.life;
    assert(life.kind === "up", `sim node ${this.id}: crash while down`);
    this.crashes++;
    const inFlight = life.persisting;
    this.life = { kind: "down" };
    if (inFlight === undefined) return;
    const rd = inFlight.ready;
    const records = (rd.snapshot === undefined ? 0 : 1) + rd.entries.length + (rd.hardState === undefined ? 0 : 1);
    if (records === 0) return;
    let kept: number;
    if (!this.config.tornWrites) kept = this.prng.chance(0.3) ? records : 0;
    else {
      const roll = this.prng.int(0, 2);
      kept = roll === 0 ? 0 : roll === 1 ? records : this.prng.int(0, records);
    }
    if (kept === 0) return;
    const withSnapshot = rd.snapshot !== undefined;
    const entryCount = Math.min(rd.entries.length, kept - (withSnapshot ? 1 : 0));
    this.persist({
      snapshot: rd.snapshot,
      entries: rd.entries.slice(0, Math.max(0, entryCount)),
      hardState: kept === records ? rd.hardState : undefined,
    });
  }

  // Inputs. Each marks the step as one in which the core received something, except reportUnreachable,
  // which production's driver hands to the core without waking its loop.

  tick(): void {
    const life = this.running();
    if (life === undefined) return;
    life.raft.tick();
    life.inputs = true;
  }

  deliver(message: Message): void {
    const life = this.running();
    if (life === undefined) return;
    life.raft.step(message);
    life.inputs = true;
  }

  propose(data: Uint8Array): ProposeResult | undefined {
    const life = this.running();
    if (life === undefined) return undefined;
    life.inputs = true;
    return life.raft.propose(data);
  }

  /** Proposes a membership change (the nemesis, on the node it believes leads); undefined when down. */
  proposeConfChange(cc: ConfChange, promoteLagMax: number): ConfProposeResult | undefined {
    const life = this.running();
    if (life === undefined) return undefined;
    life.inputs = true;
    return life.raft.proposeConfChange(cc, promoteLagMax);
  }

  readIndex(requestId: number): boolean {
    const life = this.running();
    if (life === undefined) return false;
    life.raft.readIndex(requestId);
    life.inputs = true;
    return true;
  }

  /** Asks a leader to hand over to `to`; false when the node is down. */
  transferLeadership(to: NodeId): boolean {
    const life = this.running();
    if (life === undefined) return false;
    life.raft.transferLeadership(to);
    life.inputs = true;
    return true;
  }

  /** Makes the node campaign now (a fault of the simulator); false when it is down. */
  campaign(): boolean {
    const life = this.running();
    if (life === undefined) return false;
    life.raft.campaign();
    life.inputs = true;
    return true;
  }

  /** The transport failed to deliver a snapshot to `to`. */
  reportSnapshotFailed(to: NodeId): void {
    const life = this.running();
    if (life === undefined) return;
    life.raft.reportSnapshotFailed(to);
    life.inputs = true;
  }

  /** The transport could not reach `to` (production does not wake its loop for this one). */
  reportUnreachable(to: NodeId): void {
    this.running()?.raft.reportUnreachable(to);
  }

  /** The current value of a key in this node's state machine (for a read being answered). */
  valueOf(key: string): string | null {
    assert(this.life.kind === "up", `sim node ${this.id}: read from a stopped node`);
    return this.life.sm.get(key);
  }

  /**
   * Ends the node's step: while a write is in flight, hands out what the inputs of this step made
   * sendable (takeUnblocked, in most such steps: before or instead of the write completing), completes
   * the write whose time has come, then takes new Readys.
   */
  process(now: number): void {
    const life = this.life;
    if (life.kind !== "up") return;
    const inputs = life.inputs;
    life.inputs = false;
    if (life.persisting !== undefined) {
      if (inputs && this.config.earlySends && this.unblockedPrng.chance(this.config.unblockedRate)) this.flushUnblocked(life);
      if (life.persisting.doneAt > now) return;
      this.complete(life, life.persisting);
    }
    for (let i = 0; i < this.config.readyPerStepMax && life.raft.hasReady(); i++) {
      const rd = life.raft.ready();
      if (rd.softState !== undefined) this.hooks.softState(this, rd.softState, life.raft.status().term);
      const early: Message[] = [];
      const held: Message[] = [];
      for (const m of rd.messages) (this.sendsEarly(m) ? early : held).push(m);
      for (const message of early) this.hooks.send(message);
      const needsSync = rd.mustSync || rd.entries.length > 0 || rd.snapshot !== undefined || rd.hardState !== undefined;
      const delay = needsSync ? this.prng.int(0, this.fsyncStepsMax) : 0;
      const persisting: Persisting = { ready: rd, doneAt: now + delay, held };
      life.persisting = persisting;
      if (delay > 0) return;
      this.complete(life, persisting);
    }
  }

  /**
   * Compacts the durable log into a snapshot of the state machine at its applied index, when no write is
   * in flight. Returns the snapshot index, or undefined when there was nothing to do.
   */
  compact(): { index: number; data: Uint8Array; conf: ConfState } | undefined {
    const life = this.life;
    if (life.kind !== "up" || life.persisting !== undefined) return undefined;
    const index = life.sm.index;
    if (index <= this.storage.snapshot().meta.index || index > this.storage.lastIndex()) return undefined;
    const data = life.sm.encode();
    this.storage.createSnapshot(index, life.conf, data);
    return { index, data, conf: life.conf };
  }

  /**
   * The log as far as the simulator can see it: the core's index range (`status`), with terms from the
   * durable storage overlaid by the write in flight.
   */
  logView(status: Status): LogView {
    return { firstIndex: status.firstIndex, lastIndex: status.lastIndex, termAt: (i) => this.visibleTerm(i) };
  }

  private visibleTerm(i: number): number | undefined {
    const storage = this.storage;
    const rd = this.life.kind === "up" ? this.life.persisting?.ready : undefined;
    if (rd !== undefined) {
      const pendingFirst = rd.entries[0]?.index;
      if (pendingFirst !== undefined && i >= pendingFirst) return rd.entries[i - pendingFirst]?.term;
      if (rd.snapshot !== undefined) return i === rd.snapshot.meta.index ? rd.snapshot.meta.term : undefined;
    }
    if (i < storage.firstIndex() - 1 || i > storage.lastIndex()) return undefined;
    return storage.term(i);
  }

  private complete(life: Running, persisting: Persisting): void {
    const rd = persisting.ready;
    life.persisting = undefined;
    this.persist({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
    for (const message of persisting.held) this.hooks.send(message);
    const term = life.raft.status().term;
    if (rd.snapshot !== undefined) {
      const sm = KvStateMachine.restore(rd.snapshot.data);
      if (sm.index !== rd.snapshot.meta.index) {
        this.hooks.contractViolation(this, `snapshot at ${rd.snapshot.meta.index} holds state of index ${sm.index}`);
      }
      life.sm = sm;
      life.conf = rd.snapshot.meta.conf;
      this.hooks.installed(this, rd.snapshot);
    }
    for (const entry of rd.committedEntries) {
      if (entry.index !== life.sm.index + 1) {
        this.hooks.contractViolation(this, `committed entry ${entry.index} handed out after applying ${life.sm.index}`);
        return;
      }
      if (!this.holdsDurably(entry)) {
        this.hooks.contractViolation(this, `committed entry (${entry.index}, term ${entry.term}) is not in the node's durable log`);
        return;
      }
      life.conf = this.applyEntry(life.sm, entry, term) ?? life.conf;
    }
    this.takeReadStates(life, rd.readStates);
    life.raft.advance(rd);
  }

  /**
   * While the write is in flight: sends what the core says needs no durable write, and hands its
   * answered reads to the read bookkeeping (production's Driver.flushUnblocked). A message that does
   * wait for durability would break the contract of takeUnblocked: it is reported, not sent.
   */
  private flushUnblocked(life: Running): void {
    const { messages, readStates } = life.raft.takeUnblocked();
    const stats = this.unblockedStats;
    stats.takes++;
    stats.messages += messages.length;
    stats.readStates += readStates.length;
    for (const message of messages) {
      if (waitsForDurability(message)) {
        this.hooks.contractViolation(this, `takeUnblocked() handed out a ${message.type} to ${message.to} while the write was in flight`);
        continue;
      }
      this.hooks.send(message);
    }
    this.takeReadStates(life, readStates);
    this.hooks.unblocked(this, messages.length, readStates.length);
  }

  /** Read states from a Ready or from takeUnblocked(), alike: failed at once, or answered once applied. */
  private takeReadStates(life: Running, readStates: readonly ReadState[]): void {
    for (const read of readStates) {
      if (read.index === 0) this.hooks.readReady(this, read.requestId, 0);
      else life.pendingReads.push(read);
    }
    this.answerReads(life);
  }

  /** The rule of src/driver/node.ts (handleReady), or a broken driver that sends everything at once. */
  private sendsEarly(m: Message): boolean {
    return this.config.unsafeSendBeforeDurable || (this.config.earlySends && !waitsForDurability(m));
  }

  private answerReads(life: Running): void {
    const waiting = life.pendingReads.splice(0);
    for (const read of waiting) {
      if (read.index <= life.sm.index) this.hooks.readReady(this, read.requestId, read.index);
      else life.pendingReads.push(read);
    }
  }

  /** Applies one committed entry; returns the membership a conf entry makes (undefined for the others). */
  private applyEntry(sm: KvStateMachine, entry: Entry, term: number): ConfState | undefined {
    switch (entry.type) {
      case "normal": {
        const command = decodeCommand(entry.data);
        const output = sm.apply(entry.index, command);
        this.hooks.applied(this, entry, command, output, term);
        break;
      }
      case "noop":
        sm.skip(entry.index);
        this.hooks.applied(this, entry, undefined, undefined, term);
        break;
      case "conf": {
        sm.skip(entry.index);
        this.hooks.applied(this, entry, undefined, undefined, term);
        const decoded = decodeConfEntry(entry.data);
        if (decoded === undefined) {
          this.hooks.contractViolation(this, `committed conf entry ${entry.index} does not decode`);
          return undefined;
        }
        return decoded.conf;
      }
    }
    return undefined;
  }

  private holdsDurably(entry: Entry): boolean {
    const storage = this.storage;
    if (entry.index <= storage.snapshot().meta.index) return true;
    if (entry.index > storage.lastIndex()) return false;
    return storage.term(entry.index) === entry.term;
  }

  private persist(write: { snapshot: Snapshot | undefined; entries: readonly Entry[]; hardState: HardState | undefined }): void {
    if (write.snapshot !== undefined) this.storage.applySnapshot(write.snapshot);
    this.storage.append(write.entries);
    if (write.hardState !== undefined) this.storage.setHardState(write.hardState);
    // Entries at or below the snapshot were not written (the storage ignores them).
    const snapIndex = this.storage.snapshot().meta.index;
    const entries = write.entries.filter((e) => e.index > snapIndex);
    const first = entries[0];
    const prevTerm = first === undefined ? 0 : this.storage.term(first.index - 1);
    this.hooks.persisted(this, { snapshot: write.snapshot, entries, hardState: write.hardState, prevTerm });
  }
}
