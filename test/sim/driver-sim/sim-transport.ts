import type { Message, NodeId, SnapshotRequest } from "../../../src/core/index.js";
import type { DriverTransport } from "../../../src/driver/node.js";
import { assert } from "../../../src/lib/assert.js";
import type { Prng } from "../../../src/lib/prng.js";
import { cloneMessage } from "../network.js";
import type { Scheduler } from "./virtual-clock.js";

/**
 * The peer network of the driver simulator, in virtual time. Each message is its own scheduler event:
 *
 * - loss, duplication and delay (now and then a long one) are drawn when it is sent; independent delays
 *   reorder messages, which Raft tolerates (the real transport keeps order only within a lane);
 * - partitions (any grouping, plus one-way link cuts) are judged when it arrives: a message on a cut
 *   link, or to a node that is down, is dropped and the sender's Driver hears `reportUnreachable`, as
 *   the real transport does when a stream fails; a random loss is silent;
 * - a message travels between two processes, not two node ids: one from an instance that has crashed
 *   since, or to an instance that has crashed since, is never delivered (its connection died with it);
 * - snapshots follow src/transport/peer.ts: at most one streams per peer, another one sent meanwhile is
 *   dropped without a status, and the sender's Driver hears `reportSnapshotStatus` once the stream ends:
 *   ok after the receiver's Driver took it (`deliverSnapshot`), failed when it was lost or cut.
 * Messages are deep-copied on send, as the wire would serialize them.
 */
export interface NetworkConditions {
  readonly lossRate: number;
  readonly duplicateRate: number;
  /** Ordinary delays are uniform in [0, delayMsMax]. */
  readonly delayMsMax: number;
  readonly longDelayRate: number;
  readonly longDelayMsMax: number;
}

export const CALM_CONDITIONS: NetworkConditions = { lossRate: 0, duplicateRate: 0, delayMsMax: 2, longDelayRate: 0, longDelayMsMax: 2 };

/** How the network reaches the processes; `instanceOf` is undefined while a node is down. */
export interface NetworkPeers {
  instanceOf(id: NodeId): number | undefined;
  deliver(to: NodeId, message: Message): void;
  deliverSnapshot(to: NodeId, message: SnapshotRequest): void;
  reportUnreachable(at: NodeId, peer: NodeId): void;
  reportSnapshotStatus(at: NodeId, peer: NodeId, ok: boolean): void;
  /** For the trace. */
  note(line: string): void;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Dropped on arrival: cut link, receiver down, or either end restarted since. */
  cut: number;
  overflowed: number;
  snapshots: number;
}

/** The sender and receiver instances a message was sent between. */
interface InFlight {
  readonly message: Message;
  readonly fromInstance: number;
  readonly toInstance: number | undefined;
}

export class DriverNetwork {
  conditions: NetworkConditions = CALM_CONDITIONS;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, cut: 0, overflowed: 0, snapshots: 0 };
  private inFlight = 0;
  private readonly group = new Map<NodeId, number>();
  private readonly cutLinks = new Set<string>();
  /** Snapshot streams in progress, keyed "from>to" (one per peer). */
  private readonly streaming = new Set<string>();

  constructor(
    readonly nodeIds: readonly NodeId[],
    private readonly scheduler: Scheduler,
    private readonly prng: Prng,
    private readonly peers: NetworkPeers,
    /** Bound on messages in flight; beyond it a message is dropped as by an overflowing send queue. */
    private readonly inFlightMax: number,
  ) {
    for (const id of nodeIds) this.group.set(id, 0);
  }

  /** Sends one message from the given instance of its sender. */
  send(message: Message, fromInstance: number): void {
    this.stats.sent++;
    const flight: InFlight = { message: cloneMessage(message), fromInstance, toInstance: this.peers.instanceOf(message.to) };
    if (message.type === "snapshot") {
      this.sendSnapshot(flight, message);
      return;
    }
    if (this.prng.chance(this.conditions.lossRate)) {
      this.stats.lost++;
      return;
    }
    this.schedule(flight);
    if (this.prng.chance(this.conditions.duplicateRate)) {
      this.stats.duplicated++;
      this.schedule({ ...flight, message: cloneMessage(message) });
    }
  }

  connected(from: NodeId, to: NodeId): boolean {
    return this.group.get(from) === this.group.get(to) && !this.cutLinks.has(`${from}>${to}`);
  }

  /** Splits the nodes into groups (every node in exactly one) and clears one-way cuts. */
  partition(groups: readonly (readonly NodeId[])[]): void {
    const seen = groups.flat();
    assert(
      seen.length === this.nodeIds.length && this.nodeIds.every((id) => seen.includes(id)),
      "network: a partition places every node once",
    );
    this.cutLinks.clear();
    groups.forEach((members, g) => {
      for (const id of members) this.group.set(id, g);
    });
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cutLinks.add(`${from}>${to}`);
  }

  heal(): void {
    this.cutLinks.clear();
    for (const id of this.nodeIds) this.group.set(id, 0);
  }

  describe(): string {
    const groups = new Map<number, NodeId[]>();
    for (const id of this.nodeIds) {
      const g = this.group.get(id) ?? 0;
      groups.set(g, [...(groups.get(g) ?? []), id]);
    }
    return [
      ...[...groups.keys()].sort((a, b) => a - b).map((g) => `{${(groups.get(g) ?? []).join(",")}}`),
      ...[...this.cutLinks].sort(),
    ].join(" ");
  }

  private delay(): number {
    const c = this.conditions;
    return this.prng.chance(c.longDelayRate) ? this.prng.int(0, c.longDelayMsMax) : this.prng.int(0, c.delayMsMax);
  }

  /** Whether a message sent between these instances can arrive now. */
  private deliverable(flight: InFlight): boolean {
    const { from, to } = flight.message;
    return (
      this.peers.instanceOf(from) === flight.fromInstance &&
      flight.toInstance !== undefined &&
      this.peers.instanceOf(to) === flight.toInstance &&
      this.connected(from, to)
    );
  }

  private schedule(flight: InFlight): void {
    if (this.inFlight >= this.inFlightMax) {
      this.stats.overflowed++;
      // Deferred as the real transport defers every callback: the Driver is in the middle of send().
      queueMicrotask(() => this.unreachable(flight));
      return;
    }
    this.inFlight++;
    this.scheduler.after(this.delay(), () => {
      this.inFlight--;
      if (!this.deliverable(flight)) {
        this.stats.cut++;
        this.unreachable(flight);
        return;
      }
      this.stats.delivered++;
      this.peers.deliver(flight.message.to, flight.message);
    });
  }

  /** Tells the sender, if it still runs as the instance that sent, that the peer could not be reached. */
  private unreachable(flight: InFlight): void {
    const { from, to } = flight.message;
    if (this.peers.instanceOf(from) === flight.fromInstance) this.peers.reportUnreachable(from, to);
  }

  private sendSnapshot(flight: InFlight, original: SnapshotRequest): void {
    const key = `${original.from}>${original.to}`;
    if (this.streaming.has(key)) {
      this.peers.note(`snapshot ${original.from}->${original.to} at ${original.snapshot.meta.index} dropped: another is streaming`);
      return;
    }
    this.streaming.add(key);
    this.stats.snapshots++;
    const lost = this.prng.chance(this.conditions.lossRate);
    this.scheduler.after(this.delay(), () => {
      const ok = !lost && this.deliverable(flight);
      const message = flight.message;
      assert(message.type === "snapshot", "network: a snapshot flight carries a snapshot");
      if (ok) {
        this.stats.delivered++;
        this.peers.deliverSnapshot(message.to, message);
      } else {
        this.stats.cut++;
      }
      // The status travels back on the same stream: it takes its own time and needs the sender alive.
      this.scheduler.after(this.delay(), () => {
        this.streaming.delete(key);
        if (this.peers.instanceOf(message.from) === flight.fromInstance) this.peers.reportSnapshotStatus(message.from, message.to, ok);
      });
    });
  }
}

/** Per-peer counters, as DriverTransport.stats() reports them. */
interface PeerCounts {
  sent: number;
  dropped: number;
  steps: number;
  /** Calls that failed: none here (the simulated network loses messages, not calls). */
  failures: number;
  snapshotsSent: number;
}

/**
 * The DriverTransport of one process. Every message the Driver hands over passes `inspect` first (the
 * simulator's durability checker sees exactly what leaves the process, and when), then the network.
 */
export class SimTransport implements DriverTransport {
  private readonly counts = new Map<NodeId, PeerCounts>();
  private closed = false;

  constructor(
    private readonly selfId: NodeId,
    private readonly instance: number,
    private readonly network: DriverNetwork,
    private readonly inspect: (message: Message) => void,
  ) {}

  /** The simulated network routes by node id: peer URLs mean nothing to it. */
  setPeers(): void {}

  send(messages: readonly Message[]): void {
    if (this.closed) return;
    for (const m of messages) {
      assert(m.from === this.selfId, () => `transport of node ${this.selfId}: a message from ${m.from}`);
      this.inspect(m);
      const c = this.counts.get(m.to) ?? { sent: 0, dropped: 0, steps: 0, failures: 0, snapshotsSent: 0 };
      c.sent++;
      c.steps++;
      if (m.type === "snapshot") c.snapshotsSent++;
      this.counts.set(m.to, c);
      this.network.send(m, this.instance);
    }
  }

  stats(): ReadonlyMap<NodeId, PeerCounts> {
    return this.counts;
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
