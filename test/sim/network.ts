import type { Entry, Message, NodeId } from "../../src/core/index.js";
import { assert, unreachable } from "../../src/lib/assert.js";
import type { Prng } from "../../src/lib/prng.js";

/**
 * The simulated network: every message sent at step s is delivered at some step > s, or never.
 *
 * - Loss and duplication are decided when a message is sent; delay too (a random number of steps, now
 *   and then a long one), and messages due at the same step are shuffled, so any two messages can be
 *   reordered.
 * - Partitions are decided when a message is *delivered*: a link cut while a message is in flight
 *   drops it, or (`stallAcrossPartitions`, like a TCP connection that stays open and retransmits)
 *   holds it until the link is back, so that a flood of stale messages arrives when a partition heals.
 *   A partition is any grouping of the nodes (nodes talk only within their group) plus any set of
 *   one-way link cuts, which is how asymmetric failures are modelled.
 * - Replays: now and then a message sent long ago (kept in a bounded sample of past traffic) is
 *   delivered again. Raft must tolerate any duplicate after any delay; this makes messages from
 *   terms long gone arrive at every point of a run, not only right after a partition heals.
 * - Messages are copied on send, as a real wire would serialize them, so no node can see another
 *   node's objects.
 * - A message may carry a tag (a number the network keeps beside it, through copies, holds and replays):
 *   the simulator tags messages with their sender's incarnation once that is not the first one.
 */
export interface NetworkConditions {
  /** Probability that a message is dropped. */
  readonly lossRate: number;
  /** Probability that a message is delivered twice (the copy gets its own delay). */
  readonly duplicateRate: number;
  /** Ordinary delays are uniform in [1, delayStepsMax]. */
  readonly delayStepsMax: number;
  /** Probability of a long delay, uniform in [1, longDelayStepsMax]: a stale message arriving late. */
  readonly longDelayRate: number;
  readonly longDelayStepsMax: number;
  /** Hold messages on a cut link until it is restored, instead of dropping them. */
  readonly stallAcrossPartitions: boolean;
  /** Per step: probability of delivering again a message from the sample of past traffic. */
  readonly replayRate: number;
}

export const CALM_NETWORK: NetworkConditions = {
  lossRate: 0,
  duplicateRate: 0,
  delayStepsMax: 3,
  longDelayRate: 0,
  longDelayStepsMax: 3,
  stallAcrossPartitions: false,
  replayRate: 0,
};

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Dropped at delivery because the link was cut or the receiver was down. */
  cut: number;
  /** Dropped because too many messages were in flight (a bounded queue overflowing). */
  overflowed: number;
  /** Held on a cut link, to be delivered once it is restored. */
  stalled: number;
  /** Old messages delivered again. */
  replayed: number;
}

export class SimNetwork {
  conditions: NetworkConditions = CALM_NETWORK;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, cut: 0, overflowed: 0, stalled: 0, replayed: 0 };
  /** Messages due per step. Steps are consumed in order, so this never holds past steps. */
  private readonly due = new Map<number, Message[]>();
  private inFlight = 0;
  /** The group of each node (index = node id); nodes talk only to nodes of the same group. */
  private readonly group: number[];
  /** One-way cuts, keyed `from * 1000 + to` (ids are below 1000 here). */
  private readonly cutLinks = new Set<number>();
  /** Messages held on cut links (counted in `inFlight`), and whether the links changed since last looked at. */
  private stalled: Message[] = [];
  private topologyChanged = false;
  /** A uniform sample of past messages (reservoir sampling), for replays. */
  private readonly history: Message[] = [];
  private historySeen = 0;
  /** Tags of the copies in flight or in the history (see `send`); untagged messages are not looked up. */
  private readonly tags = new WeakMap<Message, number>();
  private tagging = false;

  constructor(
    readonly nodeIds: readonly NodeId[],
    private readonly prng: Prng,
    /** Bound on messages in flight; beyond it new messages are dropped like an overflowing queue. */
    readonly inFlightMax: number,
    /** Size of the sample of past messages that replays draw from. */
    readonly historyMax = 512,
  ) {
    assert(
      nodeIds.every((id) => id > 0 && id < 1000),
      "network: node ids must be in 1..999",
    );
    this.group = new Array<number>(Math.max(...nodeIds) + 1).fill(0);
  }

  get messagesInFlight(): number {
    return this.inFlight;
  }

  /** Sends a message; `tag`, if given, travels with every copy of it (`tagOf`). */
  send(message: Message, now: number, tag?: number): void {
    this.stats.sent++;
    if (tag !== undefined) {
      this.tagging = true;
      this.tags.set(message, tag);
    }
    this.remember(this.copy(message));
    if (this.prng.chance(this.conditions.lossRate)) {
      this.stats.lost++;
      return;
    }
    this.enqueue(message, now);
    if (this.prng.chance(this.conditions.duplicateRate)) {
      this.stats.duplicated++;
      this.enqueue(message, now);
    }
  }

  /**
   * The messages due at `now` whose link is up, in a seed-decided order. `isUp` says whether a node runs;
   * `onUndeliverable` hears of each message dropped because its link is cut or its receiver is down
   * (what a real transport notices, unlike a silent loss).
   */
  deliver(now: number, isUp: (id: NodeId) => boolean, onUndeliverable?: (message: Message) => void): Message[] {
    if (this.topologyChanged) this.releaseStalled(now);
    if (this.history.length > 0 && this.prng.chance(this.conditions.replayRate)) {
      this.stats.replayed++;
      this.enqueue(this.prng.pick(this.history), now);
    }
    const batch = this.due.get(now);
    if (batch === undefined) return [];
    this.due.delete(now);
    this.inFlight -= batch.length;
    // Fisher-Yates: messages due at the same step arrive in any order.
    for (let i = batch.length - 1; i > 0; i--) {
      const j = this.prng.int(0, i);
      const a = batch[i];
      const b = batch[j];
      assert(a !== undefined && b !== undefined, "network: shuffle in range");
      batch[i] = b;
      batch[j] = a;
    }
    const delivered: Message[] = [];
    for (const message of batch) {
      if (!this.connected(message.from, message.to) && this.conditions.stallAcrossPartitions && this.inFlight < this.inFlightMax) {
        this.stats.stalled++;
        this.stalled.push(message);
        this.inFlight++;
        continue;
      }
      if (!this.connected(message.from, message.to) || !isUp(message.to)) {
        this.stats.cut++;
        onUndeliverable?.(message);
        continue;
      }
      this.stats.delivered++;
      delivered.push(message);
    }
    return delivered;
  }

  /** The tag a delivered message was sent with, if any. */
  tagOf(message: Message): number | undefined {
    return this.tagging ? this.tags.get(message) : undefined;
  }

  connected(from: NodeId, to: NodeId): boolean {
    return this.group[from] === this.group[to] && !this.cutLinks.has(from * 1000 + to);
  }

  /** Splits the nodes into the given groups (every node in exactly one) and clears one-way cuts. */
  partition(groups: readonly (readonly NodeId[])[]): void {
    const seen = groups.flat();
    assert(
      seen.length === this.nodeIds.length && this.nodeIds.every((id) => seen.includes(id)),
      "network: a partition must place every node once",
    );
    this.cutLinks.clear();
    groups.forEach((members, g) => {
      for (const id of members) this.group[id] = g;
    });
    this.topologyChanged = true;
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cutLinks.add(from * 1000 + to);
  }

  heal(): void {
    this.cutLinks.clear();
    this.group.fill(0);
    this.topologyChanged = true;
  }

  private remember(message: Message): void {
    this.historySeen++;
    if (this.history.length < this.historyMax) {
      this.history.push(message);
      return;
    }
    const slot = this.prng.int(0, this.historySeen - 1);
    if (slot < this.historyMax) this.history[slot] = message;
  }

  /**
   * Drops every message that would arrive later than `now + delayStepsMax`, and every stalled one: from
   * here on the network is healthy, with no stale message still on its way. Returns how many were dropped.
   */
  dropLateMessages(now: number, delayStepsMax: number): number {
    let dropped = this.stalled.length;
    this.inFlight -= this.stalled.length;
    this.stalled = [];
    for (const at of [...this.due.keys()]) {
      if (at <= now + delayStepsMax) continue;
      const batch = this.due.get(at) ?? [];
      dropped += batch.length;
      this.inFlight -= batch.length;
      this.due.delete(at);
    }
    this.stats.cut += dropped;
    return dropped;
  }

  /** Stalled messages whose link is back go out again, each with an ordinary delay. */
  private releaseStalled(now: number): void {
    this.topologyChanged = false;
    const still: Message[] = [];
    for (const message of this.stalled) {
      if (!this.connected(message.from, message.to)) {
        still.push(message);
        continue;
      }
      this.inFlight--;
      this.schedule(message, now + this.prng.int(1, this.conditions.delayStepsMax));
    }
    this.stalled = still;
  }

  /** A description of the current partition for traces, e.g. "{1,2} {3}" plus cuts "3->1". */
  describe(): string {
    const groups = new Map<number, NodeId[]>();
    for (const id of this.nodeIds) {
      const g = this.group[id] ?? 0;
      groups.set(g, [...(groups.get(g) ?? []), id]);
    }
    const parts = [...groups.keys()].sort((a, b) => a - b).map((g) => `{${(groups.get(g) ?? []).join(",")}}`);
    const cuts = [...this.cutLinks].sort((a, b) => a - b).map((k) => `${Math.floor(k / 1000)}->${k % 1000}`);
    return [...parts, ...cuts].join(" ");
  }

  private enqueue(message: Message, now: number): void {
    if (this.inFlight >= this.inFlightMax) {
      this.stats.overflowed++;
      return;
    }
    const c = this.conditions;
    const delay = this.prng.chance(c.longDelayRate) ? this.prng.int(1, c.longDelayStepsMax) : this.prng.int(1, c.delayStepsMax);
    this.schedule(this.copy(message), now + delay);
  }

  /** A copy of a message as the wire carries it, with its tag. */
  private copy(message: Message): Message {
    const copy = cloneMessage(message);
    if (this.tagging) {
      const tag = this.tags.get(message);
      if (tag !== undefined) this.tags.set(copy, tag);
    }
    return copy;
  }

  private schedule(message: Message, at: number): void {
    const list = this.due.get(at);
    if (list === undefined) this.due.set(at, [message]);
    else list.push(message);
    this.inFlight++;
  }
}

function cloneEntry(entry: Entry): Entry {
  return { term: entry.term, index: entry.index, type: entry.type, data: entry.data.slice() };
}

/** A deep copy, as serialization over a wire would make. */
export function cloneMessage(m: Message): Message {
  switch (m.type) {
    case "append":
      return { ...m, entries: m.entries.map(cloneEntry) };
    case "snapshot":
      return {
        ...m,
        snapshot: {
          meta: { ...m.snapshot.meta, conf: { voters: [...m.snapshot.meta.conf.voters], learners: [...m.snapshot.meta.conf.learners] } },
          data: m.snapshot.data.slice(),
        },
      };
    case "readIndex":
    case "readIndexResp":
      return { ...m, requestIds: [...m.requestIds] };
    case "vote":
    case "voteResp":
    case "appendResp":
    case "heartbeat":
    case "heartbeatResp":
    case "timeoutNow":
      return { ...m };
    default:
      return unreachable(m, "message");
  }
}
