import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { NodeRole } from "../../gen/raftkv/v1/cluster_pb.js";
import { formatInitialCluster, type InitialMember } from "../../src/config/index.js";
import { assert } from "../../src/lib/assert.js";
import { createRaftkvClient, type EndpointStatus, type RaftkvClient } from "../../src/rpc/client/index.js";
import { freePorts } from "./free-ports.js";
import { ChaosNetwork } from "./network.js";
import { NodeProcess } from "./node-process.js";
import { allLinks, linkName } from "./partitions.js";
import type { Reaper } from "./reaper.js";
import { createTcpProxy, type TcpProxy } from "./tcp-proxy.js";

/**
 * The cluster under test: `nodes` real raftkv processes on loopback, each with its own data directory,
 * and a TCP proxy on every directed peer link. Node i's --initial-cluster names its own real peer URL
 * but, for every other node j, the URL of the proxy i->j: all of i's traffic to j goes through a link
 * the nemesis controls, and j's traffic to i through another one, so faults can be one-way. Client URLs
 * are the real ones (clients are not partitioned; a partitioned leader still hears clients, which is
 * the interesting case for stale reads).
 */
export interface ClusterOptions {
  readonly nodes: number;
  /** Names the cluster (--cluster-id chaos-SEED) so nodes of another run can never join. */
  readonly seed: number;
  readonly repoRoot: string;
  /** Where node logs go. */
  readonly logDir: string;
  /** Where the nodes' data directories go (node-1, node-2, ...). */
  readonly dataDir: string;
  readonly serveCommand: readonly string[];
  readonly reaper: Reaper;
  /** Extra `serve` flags for every node, e.g. --tick-ms 50. */
  readonly extraArgs?: readonly string[];
  readonly logLevel?: string;
  /** How long a Status call may take. Default 1000 ms. */
  readonly statusTimeoutMs?: number;
  /** The run's clock for crash times (ms after the workload started). Default: ms since create(). */
  readonly nowMs?: () => number;
}

export interface CrashRecord {
  readonly id: number;
  /** On the clock of ClusterOptions.nowMs. */
  readonly atMs: number;
  readonly code: number | null;
  readonly signal: string | null;
  readonly logTail: string;
}

export interface LeaderView {
  readonly id: number;
  readonly term: bigint;
}

export const clusterSizes = [3, 5, 7] as const;

export class ChaosCluster {
  readonly ids: readonly number[];
  readonly crashes: CrashRecord[] = [];
  private readonly processes = new Map<number, NodeProcess>();
  private readonly clientUrls = new Map<number, string>();
  private readonly proxies = new Map<string, TcpProxy>();
  private networkSlot: ChaosNetwork | undefined;
  private statusClient: RaftkvClient | undefined;
  private readonly nowMs: () => number;

  private constructor(private readonly o: ClusterOptions) {
    assert(
      clusterSizes.some((n) => n === o.nodes),
      () => `cluster: nodes must be one of ${clusterSizes.join(", ")}`,
    );
    this.ids = Array.from({ length: o.nodes }, (_, i) => i + 1);
    const createdAt = Date.now();
    this.nowMs = o.nowMs ?? (() => Date.now() - createdAt);
  }

  /** Builds proxies and processes (not started yet). Everything it opened is closed by close(). */
  static async create(o: ClusterOptions): Promise<ChaosCluster> {
    const cluster = new ChaosCluster(o);
    try {
      await cluster.build();
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  private async build(): Promise<void> {
    const ports = await freePorts(2 * this.ids.length);
    const peerPort = (id: number): number => ports[2 * (id - 1)] ?? 0;
    const clientPort = (id: number): number => ports[2 * (id - 1) + 1] ?? 0;
    for (const id of this.ids) this.clientUrls.set(id, `http://127.0.0.1:${clientPort(id)}`);
    for (const link of allLinks(this.ids)) {
      const proxy = await createTcpProxy({ name: linkName(link), targetHost: "127.0.0.1", targetPort: peerPort(link.to) });
      this.proxies.set(linkName(link), proxy);
    }
    this.networkSlot = new ChaosNetwork(this.ids, this.proxies);
    mkdirSync(this.o.logDir, { recursive: true });
    for (const id of this.ids) {
      const members: InitialMember[] = this.ids.map((other) => ({
        id: other,
        name: `node-${other}`,
        peerUrl: other === id ? `http://127.0.0.1:${peerPort(id)}` : (this.proxies.get(linkName({ from: id, to: other }))?.url ?? ""),
        clientUrl: this.clientUrls.get(other) ?? "",
      }));
      const dataDir = join(this.o.dataDir, `node-${id}`);
      mkdirSync(dataDir, { recursive: true });
      const args = [
        "--id",
        String(id),
        "--name",
        `node-${id}`,
        "--data-dir",
        dataDir,
        "--cluster-id",
        `chaos-${this.o.seed}`,
        "--initial-cluster",
        formatInitialCluster(members),
        "--log-level",
        this.o.logLevel ?? "warn",
        ...(this.o.extraArgs ?? []),
      ];
      this.processes.set(
        id,
        new NodeProcess({
          id,
          command: this.o.serveCommand,
          args,
          cwd: this.o.repoRoot,
          logPath: join(this.o.logDir, `node-${id}.log`),
          reaper: this.o.reaper,
          onCrash: (crashed, code, signal) => this.recordCrash(crashed, code, signal),
        }),
      );
    }
    this.statusClient = createRaftkvClient({
      endpoints: this.endpoints(),
      attemptTimeoutMs: this.o.statusTimeoutMs ?? 1000,
      timeoutMs: 5000,
      attemptsMax: 10,
    });
  }

  private recordCrash(id: number, code: number | null, signal: string | null): void {
    const node = this.processes.get(id);
    this.crashes.push({ id, atMs: Math.round(this.nowMs()), code, signal, logTail: node?.logTail() ?? "" });
  }

  get network(): ChaosNetwork {
    assert(this.networkSlot !== undefined, "cluster: not built");
    return this.networkSlot;
  }

  /** Client URLs, in id order. */
  endpoints(): string[] {
    return this.ids.map((id) => this.clientUrls.get(id) ?? "");
  }

  clientUrl(id: number): string {
    const url = this.clientUrls.get(id);
    assert(url !== undefined, () => `cluster: no node ${id}`);
    return url;
  }

  node(id: number): NodeProcess {
    const node = this.processes.get(id);
    assert(node !== undefined, () => `cluster: no node ${id}`);
    return node;
  }

  startAll(): void {
    for (const node of this.processes.values()) node.start();
  }

  /** Node `id`'s --data-dir. */
  dataDirOf(id: number): string {
    assert(this.processes.has(id), () => `cluster: no node ${id}`);
    return join(this.o.dataDir, `node-${id}`);
  }

  /** Node `id`'s log file (stdout and stderr of every start, appended). */
  logPath(id: number): string {
    assert(this.processes.has(id), () => `cluster: no node ${id}`);
    return join(this.o.logDir, `node-${id}.log`);
  }

  /**
   * A lost disk: deletes node `id`'s data directory and leaves an empty one in its place (as a fresh
   * volume would be). The node must be down; start() then runs it with the same flags on nothing.
   */
  wipe(id: number): void {
    const state = this.node(id).state;
    assert(state === "down" || state === "crashed", () => `cluster: wipe of node ${id} while ${state}`);
    const dir = this.dataDirOf(id);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
  }

  async statusAll(): Promise<EndpointStatus[]> {
    assert(this.statusClient !== undefined, "cluster: not built");
    return this.statusClient.statusAll();
  }

  /** The leader with the highest term among the nodes that answer, if any. */
  async leader(): Promise<LeaderView | undefined> {
    let best: LeaderView | undefined;
    for (const answer of await this.statusAll()) {
      const status = answer.status?.status;
      if (status === undefined || status.role !== NodeRole.LEADER) continue;
      if (best === undefined || status.term > best.term) best = { id: Number(status.id), term: status.term };
    }
    return best;
  }

  /**
   * Waits until every running node knows the same leader of the same term (bounded by `timeoutMs`).
   * Returns the leader, or undefined on timeout.
   */
  async awaitStableLeader(timeoutMs: number, pollMs = 200): Promise<LeaderView | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const answers = await this.statusAll();
      const statuses = answers.map((a) => a.status?.status);
      const running = this.ids.filter((id) => this.node(id).state === "running");
      const views = statuses.filter((s) => s !== undefined && running.includes(Number(s.id)));
      const first = views[0];
      if (first !== undefined && views.length === running.length && first.leader !== 0n) {
        if (views.every((s) => s?.leader === first.leader && s.term === first.term)) return { id: Number(first.leader), term: first.term };
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    return undefined;
  }

  /** One line per node: its process state and, when it answers, its Raft view. For reports. */
  async describe(): Promise<string[]> {
    const answers = await this.statusAll();
    return this.ids.map((id, i) => {
      const answer = answers[i];
      const status = answer?.status?.status;
      const process = this.node(id).state;
      if (status === undefined) return `node ${id} (${process}): no answer (${answer?.error?.rawMessage ?? "?"})`;
      return (
        `node ${id} (${process}): ${NodeRole[status.role] ?? status.role} term ${status.term} leader ${status.leader} ` +
        `commit ${status.commitIndex} applied ${status.appliedIndex} last ${status.lastLogIndex} snapshot ${status.snapshotIndex}`
      );
    });
  }

  /**
   * Each node's peer-link counters from /metrics (messages sent and dropped per peer), for a report on
   * a node that does not rejoin: a link whose counters stand still while its peer is up is stuck.
   */
  async peerCounters(timeoutMs = 2000): Promise<string[]> {
    return Promise.all(
      this.ids.map(async (id) => {
        try {
          const response = await fetch(`${this.clientUrl(id)}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
          const text = await response.text();
          const lines = text.split("\n").filter((line) => /^raftkv_peer_messages_(sent|dropped)_total\{/.test(line));
          return `node ${id}: ${lines.map((line) => line.replace("raftkv_peer_messages_", "").replace("_total", "")).join(", ") || "no peer counters"}`;
        } catch (error) {
          return `node ${id}: /metrics unavailable (${error instanceof Error ? error.message : String(error)})`;
        }
      }),
    );
  }

  async transferLeadership(to: number, timeoutMs: number): Promise<number> {
    assert(this.statusClient !== undefined, "cluster: not built");
    const response = await this.statusClient.transferLeadership({ targetId: BigInt(to) }, { signal: AbortSignal.timeout(timeoutMs) });
    return Number(response.leader);
  }

  /** Stops every node and proxy. Safe to call more than once and on a half-built cluster. */
  async close(): Promise<void> {
    this.statusClient?.close();
    this.statusClient = undefined;
    const errors: unknown[] = [];
    await Promise.all(
      [...this.processes.values()].map(async (node) => {
        node.resume();
        await node.stop().catch((error: unknown) => errors.push(error));
      }),
    );
    await Promise.all([...this.proxies.values()].map((proxy) => proxy.close()));
    this.proxies.clear();
    if (errors.length > 0) throw errors[0];
  }

  /** Synchronous SIGKILL of every node, for process exit handlers. */
  killAllNow(): void {
    for (const node of this.processes.values()) node.killNow();
  }
}
