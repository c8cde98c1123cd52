import type { Entry, NodeId, ProposeResult } from "../../src/core/index.js";
import { assert } from "../../src/lib/assert.js";
import type { Prng } from "../../src/lib/prng.js";
import type { KvInput, KvOutput, Operation, Outcome } from "./history.js";
import { encodeCommand, type KvCommand } from "./kv-model.js";

/**
 * The simulated clients. Each client has at most one operation outstanding (a sequential process, as
 * linearizability assumes), waits a seed-chosen think time between operations, and picks among:
 *
 * - put(key, unique value): proposed to the node it believes leads; done when that node applies the
 *   log index the proposal got. If a different entry lands at that index, the proposal certainly never
 *   took effect (it cannot move to another index) and the op failed;
 * - get(key): a linearizable read through ReadIndex, on the believed leader or on any node (followers
 *   forward it); done once that node has applied the read index, with the value it then holds;
 * - cas(key, expected, value): like put; `expected` is the value this client last saw for the key.
 *
 * A refused proposal or read fails at once. An op whose node crashes, whose index is covered by a
 * snapshot instead of being applied, or that takes longer than the timeout ends `unknown`.
 */
export interface WorkloadConfig {
  readonly clients: number;
  readonly keys: number;
  readonly thinkStepsMax: number;
  readonly opTimeoutSteps: number;
  /** Probability that a read goes to a random node instead of the believed leader. */
  readonly randomNodeReadRate: number;
}

/** How clients reach the cluster; `undefined` / false mean the node is down. */
export interface ClusterPort {
  readonly nodeIds: readonly NodeId[];
  propose(node: NodeId, data: Uint8Array): ProposeResult | undefined;
  readIndex(node: NodeId, requestId: number): boolean;
  valueOf(node: NodeId, key: string): string | null;
  /**
   * A member out of the cluster for good (it lost its disk and refused to start): once the cluster is
   * healthy, clients no longer send it reads (they would fail, and the liveness check would count them).
   */
  isGone(node: NodeId): boolean;
}

/** Told of every op the clients consider failed, so a checker can make sure it never takes effect. */
export type FailedOpListener = (opId: number, reason: string) => void;

interface Invocation {
  readonly id: number;
  readonly clientId: number;
  readonly input: KvInput;
  readonly call: number;
  readonly callStep: number;
  readonly node: NodeId;
  readonly deadline: number;
  /** For writes: where the proposal went into the log. */
  readonly index: number;
  readonly term: number;
}

interface Client {
  readonly id: number;
  pending: Invocation | undefined;
  nextAt: number;
  leaderGuess: NodeId;
  readonly lastSeen: Map<string, string | null>;
}

export type WorkloadMode =
  | { readonly kind: "chaos" }
  /** After faults heal: writes go to the known leader, and every op must succeed. */
  | { readonly kind: "liveness"; readonly leader: NodeId }
  | { readonly kind: "stopped" };

export interface WorkloadStats {
  invoked: number;
  ok: number;
  failed: number;
  unknown: number;
}

export class Workload {
  readonly history: Operation[] = [];
  readonly stats: WorkloadStats = { invoked: 0, ok: 0, failed: 0, unknown: 0 };
  mode: WorkloadMode = { kind: "chaos" };
  /** The current step; the simulation sets it at the start of every step. */
  now = 0;
  private clock = 0;
  private nextOpId = 1;
  private readonly clients: Client[] = [];
  private readonly keys: string[];

  constructor(
    private readonly config: WorkloadConfig,
    private readonly prng: Prng,
    private readonly cluster: ClusterPort,
    private readonly onFailed: FailedOpListener,
  ) {
    assert(config.clients > 0 && config.keys > 0, "workload: needs clients and keys");
    this.keys = Array.from({ length: config.keys }, (_, i) => `k${i}`);
    for (let id = 1; id <= config.clients; id++) {
      this.clients.push({
        id,
        pending: undefined,
        nextAt: prng.int(0, config.thinkStepsMax),
        leaderGuess: prng.pick(cluster.nodeIds),
        lastSeen: new Map(),
      });
    }
  }

  get outstanding(): number {
    return this.clients.filter((c) => c.pending !== undefined).length;
  }

  /** Gives up on overdue ops and starts new ones. */
  step(): void {
    const now = this.now;
    for (const client of this.clients) {
      const pending = client.pending;
      if (pending !== undefined && now >= pending.deadline)
        this.resolve(client, { status: "unknown", reason: `no answer within ${this.config.opTimeoutSteps} steps` });
      if (client.pending === undefined && now >= client.nextAt && this.mode.kind !== "stopped") this.invoke(client, now);
    }
  }

  /** A node applied an entry: it may complete the op whose proposal took that index on that node. */
  onApplied(node: NodeId, entry: Entry, command: KvCommand | undefined, output: KvOutput | undefined): void {
    const now = this.now;
    for (const client of this.clients) {
      const p = client.pending;
      if (p === undefined || p.input.kind === "get" || p.node !== node || p.index !== entry.index) continue;
      if (entry.term === p.term && command?.opId === p.id && output !== undefined) {
        this.resolve(client, { status: "ok", output, ret: ++this.clock, retStep: now });
      } else {
        this.resolve(client, { status: "fail", reason: `index ${entry.index} holds an entry of term ${entry.term} instead`, retStep: now });
      }
    }
  }

  /** A node replaced its state by a snapshot: proposals it covers can no longer be observed there. */
  onInstalled(node: NodeId, snapshotIndex: number): void {
    for (const client of this.clients) {
      const p = client.pending;
      if (p === undefined || p.input.kind === "get" || p.node !== node || p.index > snapshotIndex) continue;
      this.resolve(client, { status: "unknown", reason: `index ${p.index} arrived inside a snapshot` });
    }
  }

  onReadReady(node: NodeId, requestId: number, index: number): void {
    const now = this.now;
    for (const client of this.clients) {
      const p = client.pending;
      if (p === undefined || p.id !== requestId || p.node !== node) continue;
      assert(p.input.kind === "get", "workload: read state for a write");
      if (index === 0) {
        this.resolve(client, { status: "fail", reason: "read index refused", retStep: now });
      } else {
        const value = this.cluster.valueOf(node, p.input.key);
        this.resolve(client, { status: "ok", output: { kind: "get", value }, ret: ++this.clock, retStep: now });
      }
    }
  }

  onCrash(node: NodeId): void {
    for (const client of this.clients) {
      if (client.pending?.node === node) this.resolve(client, { status: "unknown", reason: `node ${node} crashed` });
    }
  }

  /** Ends the run: whatever is still outstanding has an unknown outcome. */
  finish(): void {
    for (const client of this.clients) {
      if (client.pending !== undefined) this.resolve(client, { status: "unknown", reason: "run ended" });
    }
  }

  private invoke(client: Client, now: number): void {
    const id = this.nextOpId++;
    const key = this.prng.pick(this.keys);
    const roll = this.prng.next();
    const mode = this.mode;
    const leader = mode.kind === "liveness" ? mode.leader : client.leaderGuess;
    let input: KvInput;
    if (roll < 0.4) input = { kind: "put", key, value: `${client.id}.${id}` };
    else if (roll < 0.75) input = { kind: "get", key };
    else input = { kind: "cas", key, expected: client.lastSeen.get(key) ?? null, value: `${client.id}.${id}` };
    const call = ++this.clock;
    this.stats.invoked++;
    const base = { id, clientId: client.id, input, call, callStep: now, deadline: now + this.config.opTimeoutSteps };
    if (input.kind === "get") {
      const targets = mode.kind === "liveness" ? this.cluster.nodeIds.filter((n) => !this.cluster.isGone(n)) : this.cluster.nodeIds;
      const node = this.prng.chance(this.config.randomNodeReadRate) ? this.prng.pick(targets) : leader;
      client.pending = { ...base, node, index: 0, term: 0 };
      if (!this.cluster.readIndex(node, id)) this.resolve(client, { status: "fail", reason: `node ${node} is down`, retStep: now });
      return;
    }
    const result = this.cluster.propose(leader, encodeCommand({ opId: id, write: input }));
    if (result === undefined) {
      client.pending = { ...base, node: leader, index: 0, term: 0 };
      client.leaderGuess = this.prng.pick(this.cluster.nodeIds);
      this.resolve(client, { status: "fail", reason: `node ${leader} is down`, retStep: now });
    } else if (!result.ok) {
      client.pending = { ...base, node: leader, index: 0, term: 0 };
      client.leaderGuess = result.leader !== 0 ? result.leader : this.prng.pick(this.cluster.nodeIds);
      this.resolve(client, { status: "fail", reason: `${result.reason} at node ${leader}`, retStep: now });
    } else {
      client.pending = { ...base, node: leader, index: result.index, term: result.term };
    }
  }

  private resolve(client: Client, outcome: Outcome): void {
    const p = client.pending;
    assert(p !== undefined, "workload: resolving an idle client");
    client.pending = undefined;
    client.nextAt = this.now + this.prng.int(1, this.config.thinkStepsMax);
    this.history.push({ id: p.id, clientId: p.clientId, input: p.input, call: p.call, callStep: p.callStep, outcome });
    if (outcome.status === "ok") {
      this.stats.ok++;
      const output = outcome.output;
      const input = p.input;
      if (output.kind === "get") client.lastSeen.set(input.key, output.value);
      else if (input.kind === "put" || (input.kind === "cas" && output.kind === "cas" && output.swapped))
        client.lastSeen.set(input.key, input.value);
    } else if (outcome.status === "fail") {
      this.stats.failed++;
      if (p.input.kind !== "get") this.onFailed(p.id, outcome.reason);
    } else {
      this.stats.unknown++;
    }
  }
}
