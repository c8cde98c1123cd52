import { mkdtempSync, rmSync } from "node:fs";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ClusterService, NodeRole, type NodeStatus } from "../../gen/raftkv/v1/cluster_pb.js";
import { KvService } from "../../gen/raftkv/v1/kv_pb.js";
import { assert } from "../../src/lib/assert.js";
import { createRaftkvClient, type ClientProtocol, type RaftkvClient } from "../../src/rpc/client/index.js";
import { errorReason } from "../../src/rpc/index.js";
// The harness's own modules rather than its index: the index also loads the chaos workload and checkers.
import { ChaosCluster, type LeaderView } from "../chaos/cluster.js";
import { defaultServeCommand } from "../chaos/node-process.js";
import { startReaper, type Reaper } from "../chaos/reaper.js";

/**
 * A real 3-node raftkv cluster for end-to-end tests, built on the chaos harness (ChaosCluster,
 * NodeProcess, the reaper): real `raftkv serve` processes on loopback ports picked free, each with its
 * own data directory under a fresh temporary folder, peer traffic through the harness's (healthy) link
 * proxies. What this file adds is what an e2e test needs on top: a graceful SIGTERM stop with its exit
 * code (NodeProcess only knows SIGKILL), clients bound to one node, a leader that every node agrees on,
 * and waiting for a condition with a message that shows the cluster when it does not hold.
 *
 * Every child is killed on every way out: close() on the normal path, a process "exit" handler when
 * the test worker exits, and the reaper when the worker itself is killed.
 */
export const repoRoot = resolve(fileURLToPath(import.meta.url), "..", "..", "..");

/**
 * Short Raft timings so that elections take a few hundred milliseconds: one tick is 20 ms, a follower
 * campaigns after 10 to 20 ticks without a leader, the leader heartbeats every tick.
 */
export const fastTiming = ["--tick-ms", "20", "--election-ticks", "10", "--heartbeat-ticks", "1"] as const;

/** How long a fresh cluster (three processes starting through tsx on a loaded machine) may take to elect. */
const startTimeoutMs = 40_000;
/** How long a SIGTERMed node may take to hand off, drain and exit (its --shutdown-timeout-ms is below). */
const terminateWaitMs = 15_000;
const shutdownTimeoutMs = 8_000;
/** RAFTKV_E2E_KEEP_DATA=1 keeps each cluster's node logs and data directories for a post-mortem. */
const keepData = process.env.RAFTKV_E2E_KEEP_DATA === "1";
/** Poll period of waitFor and of the retries. */
const pollMs = 50;

export interface E2eClusterOptions {
  /** Extra `serve` flags for every node (after the fast timings, so they may override them). */
  readonly extraArgs?: readonly string[];
}

export interface E2eCluster {
  readonly cluster: ChaosCluster;
  /** The nodes' --cluster-id. */
  readonly clusterId: string;
  readonly ids: readonly number[];
  /** Client URLs in id order. */
  readonly endpoints: readonly string[];
  /** The bundled client over every endpoint (leader discovery, redirects, exactly-once retries). */
  readonly client: RaftkvClient;
  /**
   * Waits until every running node names the same leader in the same term and that leader is running and
   * leads (with `after`, in a later term than it); throws with the cluster's state otherwise.
   */
  stableLeader(timeoutMs?: number, after?: LeaderView): Promise<LeaderView>;
  /**
   * Runs `call` on the current leader, again on the next one when the answer proves that nothing was
   * applied (not the leader, no leader, connection refused): safe for writes without a session.
   */
  onLeader<T>(call: (leaderId: number) => Promise<T>, timeoutMs?: number): Promise<T>;
  /** A KvService client bound to one node (no redirection, no retries). */
  kv(id: number, protocol?: ClientProtocol): Client<typeof KvService>;
  /** One node's own status. */
  status(id: number): Promise<NodeStatus>;
  /** SIGTERM and wait for the exit; resolves to the exit code (null when a signal ended it). */
  terminate(id: number): Promise<number | null>;
  /** Starts a node that was killed or terminated, on the same ports and data directory. */
  restart(id: number): void;
  /** A bundled client of its own (another protocol, or endpoints in another order); closed with the cluster. */
  newClient(protocol: ClientProtocol, endpoints?: readonly string[]): RaftkvClient;
  /** The cluster's state, one line per node, for failure messages. */
  describe(): Promise<string>;
  close(): Promise<void>;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}

/** Resolves once `probe` returns a value other than undefined; throws with `what` and `context()` on timeout. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  context?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(pollMs);
  }
  const detail = lastError === undefined ? "" : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}${context === undefined ? "" : `\n${await context()}`}`);
}

/** `promise`, or a rejection naming `what` when it has not settled within `timeoutMs`. */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** The gRPC status code of a failed call of connect-es (ConnectError) or of @grpc/grpc-js (ServiceError). */
export function statusCode(error: unknown): Code {
  if (error instanceof ConnectError) return error.code;
  const code = (error as { code?: unknown } | undefined)?.code;
  // grpc-js reports the numeric gRPC status, the same numbers as connect-es's Code.
  return typeof code === "number" && code in Code ? (code as Code) : Code.Unknown;
}

/**
 * Retries a read (or a write with an exactly-once session) bound to one node while that node answers
 * Unavailable or DeadlineExceeded, as during an election or when a follower's ReadIndex round outlives
 * its election timeout on a loaded machine; any other failure is the test's answer.
 */
export async function retryUnavailable<T>(what: string, call: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const code = statusCode(error);
      const retryable = code === Code.Unavailable || code === Code.DeadlineExceeded;
      if (!retryable || Date.now() >= deadline) {
        throw new Error(`${what} failed after ${attempt} attempts: ${error instanceof Error ? error.message : String(error)}`, {
          cause: error,
        });
      }
    }
    await sleep(pollMs);
  }
}

/** True when a failed call was certainly not applied: refused before proposing, or never delivered. */
export function certainlyNotApplied(error: unknown): boolean {
  const connectError = ConnectError.from(error);
  if (connectError.code !== Code.Unavailable) return false;
  const reason = errorReason(connectError);
  // No raftkv reason on Unavailable: the connection failed before any answer; only a refused one is sure.
  return reason === "not-leader" || reason === "no-leader" || (reason === undefined && connectError.message.includes("ECONNREFUSED"));
}

export async function startE2eCluster(options: E2eClusterOptions = {}): Promise<E2eCluster> {
  const serveCommand = defaultServeCommand(repoRoot);
  assert(serveCommand !== undefined, "e2e: no bin/raftkv.js or src/cli/main.ts to run");
  const dir = mkdtempSync(join(tmpdir(), "raftkv-e2e-"));
  const reaper = startReaper();
  let cluster: ChaosCluster | undefined;
  const killOnExit = (): void => cluster?.killAllNow();
  process.once("exit", killOnExit);
  let fixture: Fixture | undefined;
  try {
    // The cluster id is chaos-SEED: a random one keeps clusters of concurrent runs from ever mixing.
    const seed = Math.floor(Math.random() * 1_000_000_000);
    cluster = await ChaosCluster.create({
      nodes: 3,
      seed,
      repoRoot,
      logDir: join(dir, "logs"),
      dataDir: join(dir, "data"),
      serveCommand,
      reaper,
      extraArgs: [...fastTiming, "--shutdown-timeout-ms", String(shutdownTimeoutMs), ...(options.extraArgs ?? [])],
    });
    fixture = new Fixture(cluster, `chaos-${seed}`, reaper, dir, () => process.removeListener("exit", killOnExit));
    cluster.startAll();
    await fixture.stableLeader(startTimeoutMs);
    return fixture;
  } catch (error) {
    if (fixture !== undefined) await fixture.close().catch(() => undefined);
    else {
      await cluster?.close().catch(() => undefined);
      reaper.close();
      process.removeListener("exit", killOnExit);
      rmSync(dir, { recursive: true, force: true });
    }
    throw error;
  }
}

interface Opened {
  readonly transport: Transport;
  close(): void;
}

class Fixture implements E2eCluster {
  readonly ids: readonly number[];
  readonly endpoints: readonly string[];
  readonly client: RaftkvClient;
  private readonly clients: RaftkvClient[] = [];
  private readonly transports = new Map<string, Opened>();

  constructor(
    readonly cluster: ChaosCluster,
    readonly clusterId: string,
    private readonly reaper: Reaper,
    private readonly dir: string,
    private readonly unregister: () => void,
  ) {
    this.ids = cluster.ids;
    this.endpoints = cluster.endpoints();
    this.client = this.newClient("grpc");
  }

  newClient(protocol: ClientProtocol, endpoints: readonly string[] = this.endpoints): RaftkvClient {
    // Attempts short enough that a killed leader is left quickly, a budget long enough for an election
    // on a loaded machine.
    const client = createRaftkvClient({ endpoints, protocol, attemptTimeoutMs: 2_000, timeoutMs: 20_000, attemptsMax: 200 });
    this.clients.push(client);
    return client;
  }

  async stableLeader(timeoutMs = 15_000, after?: LeaderView): Promise<LeaderView> {
    return waitFor(
      after === undefined ? "a stable leader" : `a stable leader after node ${after.id} of term ${after.term}`,
      timeoutMs,
      async () => {
        const running = this.ids.filter((id) => this.cluster.node(id).state === "running");
        const views = await Promise.all(running.map((id) => this.status(id)));
        const first = views[0];
        if (first === undefined || first.leader === 0n) return undefined;
        if (!views.every((v) => v.leader === first.leader && v.term === first.term)) return undefined;
        // Followers may still name a leader that was just killed; the leader must be up and know it.
        const leader = views.find((v) => v.id === first.leader);
        if (leader === undefined || leader.role !== NodeRole.LEADER) return undefined;
        if (after !== undefined && first.term <= after.term) return undefined;
        return { id: Number(first.leader), term: first.term };
      },
      () => this.describe(),
    );
  }

  async onLeader<T>(call: (leaderId: number) => Promise<T>, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const leader = await this.stableLeader(Math.max(1, deadline - Date.now()));
      try {
        return await call(leader.id);
      } catch (error) {
        if (!certainlyNotApplied(error) || Date.now() >= deadline) throw error;
      }
    }
  }

  kv(id: number, protocol: ClientProtocol = "grpc"): Client<typeof KvService> {
    return createClient(KvService, this.transport(id, protocol));
  }

  async status(id: number): Promise<NodeStatus> {
    const response = await createClient(ClusterService, this.transport(id, "grpc")).status({}, { timeoutMs: 2_000 });
    assert(response.status !== undefined, () => `node ${id}: Status without a status`);
    return response.status;
  }

  async terminate(id: number): Promise<number | null> {
    const node = this.cluster.node(id);
    const pid = node.pid;
    assert(pid !== undefined && node.state === "running", () => `node ${id}: terminate while ${node.state}`);
    const exitsBefore = this.cluster.crashes.length;
    // NodeProcess records every exit it did not cause itself as a crash, with its exit code; for a
    // SIGTERM that record is the graceful exit this waits for.
    process.kill(pid, "SIGTERM");
    const exit = await waitFor(`node ${id} to exit after SIGTERM`, terminateWaitMs, async () =>
      this.cluster.crashes.slice(exitsBefore).find((crash) => crash.id === id),
    );
    return exit.signal === null ? exit.code : null;
  }

  restart(id: number): void {
    this.cluster.node(id).start();
  }

  async describe(): Promise<string> {
    const lines = await this.cluster.describe();
    const exits = this.cluster.crashes.map((c) => `node ${c.id} exited (code ${c.code}, signal ${c.signal}), its log ends:\n${c.logTail}`);
    return [...lines, ...exits].join("\n");
  }

  async close(): Promise<void> {
    for (const client of this.clients) client.close();
    for (const opened of this.transports.values()) opened.close();
    this.transports.clear();
    try {
      await this.cluster.close();
    } finally {
      this.reaper.close();
      this.unregister();
      if (keepData) console.log(`e2e: node logs and data kept in ${this.dir}`);
      else rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** One transport per (node, protocol), reused so that a test does not open a connection per call. */
  private transport(id: number, protocol: ClientProtocol): Transport {
    const key = `${id}/${protocol}`;
    const known = this.transports.get(key);
    if (known !== undefined) return known.transport;
    const baseUrl = this.cluster.clientUrl(id);
    let opened: Opened;
    if (protocol === "grpc") {
      const sessionManager = new Http2SessionManager(baseUrl);
      opened = { transport: createGrpcTransport({ baseUrl, sessionManager }), close: () => sessionManager.abort() };
    } else {
      const agent = new Agent({ keepAlive: true });
      const create = protocol === "connect" ? createConnectTransport : createGrpcWebTransport;
      opened = { transport: create({ baseUrl, httpVersion: "1.1", nodeOptions: { agent } }), close: () => agent.destroy() };
    }
    this.transports.set(key, opened);
    return opened.transport;
  }
}
