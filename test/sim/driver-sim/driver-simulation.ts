import { Buffer } from "node:buffer";
import { noNode, type Message, type NodeId } from "../../../src/core/index.js";
import { Driver, type DriverLogger, type DriverObserver } from "../../../src/driver/node.js";
import type { MemberView } from "../../../src/driver/types.js";
import { createKvStore } from "../../../src/kv/index.js";
import { assert } from "../../../src/lib/assert.js";
import { createPrng, type Prng } from "../../../src/lib/prng.js";
import type { Operation } from "../history.js";
import { checkLinearizability } from "../linearizability.js";
import { AppliedLog, checkDurablePromise, RecordingStore, type DriverViolation, type DriverViolationKind } from "./checks.js";
import { Clients, type ClientsConfig } from "./clients.js";
import { SimDisk, SimStorage } from "./sim-storage.js";
import { CALM_CONDITIONS, DriverNetwork, SimTransport, type NetworkConditions } from "./sim-transport.js";
import { Scheduler, VirtualClock, type Timer } from "./virtual-clock.js";

/**
 * The driver simulator: N real `Driver`s (src/driver/node.ts), each with a real `KvStore`, in one
 * process and in virtual time. Only the world around them is simulated: the clock (virtual-clock.ts),
 * the disks (sim-storage.ts), the network (sim-transport.ts), crashes and restarts, and the clients
 * (clients.ts). One seed decides every choice, so a seed replays its run event for event.
 *
 * A run: `chaosMs` of virtual time with faults (crashes that lose unsynced writes, partitions, lossy,
 * duplicating and delaying weather, leadership transfers) and client traffic; then the heal: clients
 * stop, the network is repaired and calmed, every node runs; the live nodes must converge (one leader
 * everyone follows, everything committed and applied everywhere) within `HEAL_DEADLINE_MS`. Checked all
 * along: what leaves a process against its durable disk (checks.ts), state machine safety and lost
 * acknowledged writes across every process ever run, one leader per term; at the end: identical stores
 * and a linearizable client history.
 */
export interface DriverSimParams {
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly fsyncMsMax: number;
  /** Whether a crash may keep a prefix of the write in flight. */
  readonly tornWrites: boolean;
  /** Network weather during the chaos phase (redrawn now and then, see weatherRate). */
  readonly network: NetworkConditions;
  /** Per fault tick (FAULT_TICK_MS): probabilities of a crash, a new partition, new weather, a transfer. */
  readonly crashRate: number;
  readonly partitionRate: number;
  readonly weatherRate: number;
  readonly transferRate: number;
  readonly downMsMax: number;
  readonly partitionMsMax: number;
  readonly snapshotEntries: number;
  readonly retainEntries: number;
  readonly clients: ClientsConfig;
  /** The broken disk of the self-test: save() resolves before the write is durable. */
  readonly unsafeResolveBeforeDurable: boolean;
  /**
   * Check what leaves a process against its durable disk (on by default). The self-test turns it off to
   * show that the end-to-end checkers alone (lost writes, state machine safety, linearizability) also
   * catch a disk that lies.
   */
  readonly checkDurablePromises: boolean;
  /**
   * A run that takes more events than this is out of control (a message storm, as when lost
   * acknowledged entries leave a leader probing forever): it fails as a liveness violation. Healthy
   * runs take a few tens of thousands.
   */
  readonly eventsMax: number;
}

export interface DriverSimOptions {
  readonly seed: number;
  readonly nodes: number;
  /** Virtual milliseconds of faults and traffic before the heal. */
  readonly chaosMs?: number;
  /** Keep the trace (every message sent, besides faults, roles and client ops), to print or compare. */
  readonly trace?: boolean;
  readonly params?: Partial<DriverSimParams>;
}

export interface DriverSimResult {
  readonly seed: number;
  readonly nodes: number;
  /** Virtual time at the end of the run. */
  readonly virtualMs: number;
  readonly events: number;
  /** Terms in which some node became leader. */
  readonly elections: number;
  /** The highest log index at which a command was applied. */
  readonly commits: number;
  readonly crashes: number;
  readonly faults: number;
  readonly snapshots: { readonly created: number; readonly installed: number };
  readonly operations: { readonly invoked: number; readonly ok: number; readonly failed: number; readonly unknown: number };
  readonly messages: { readonly sent: number; readonly delivered: number; readonly lost: number };
  readonly violations: readonly DriverViolation[];
  /** A hash of the whole trace (with `trace`, every message; otherwise faults, roles and client ops). */
  readonly traceHash: string;
  /** The last trace lines (empty unless `trace`). */
  readonly trace: readonly string[];
  readonly history: readonly Operation[];
}

export const CHAOS_MS_DEFAULT = 3000;
/** Faults are drawn every this many virtual ms during the chaos phase. */
const FAULT_TICK_MS = 10;
/** After the heal, convergence is checked this often, and must happen within the deadline. */
const CONVERGE_CHECK_MS = 50;
const HEAL_DEADLINE_MS = 30_000;
const IN_FLIGHT_MESSAGES_MAX = 20_000;
const EVENTS_MAX_DEFAULT = 1_000_000;
const TRACE_LINES_MAX = 20_000;
const MAX_MSG_BYTES = 1 << 20;
/** The Driver's bounds on pending work; clients are few, so these are never the limit. */
const PROPOSALS_MAX = 1024;
const READS_MAX = 1024;
/** A node's clock runs up to this fraction fast or slow. */
const CLOCK_DRIFT_MAX = 0.05;

export function drawDriverSimParams(prng: Prng): DriverSimParams {
  const electionTicks = prng.pick([8, 10, 15]);
  return {
    tickMs: 10,
    electionTicks,
    heartbeatTicks: prng.pick([1, 2, 3]),
    fsyncMsMax: prng.pick([0, 1, 3, 8, 20]),
    tornWrites: prng.chance(0.7),
    network: drawWeather(prng),
    crashRate: prng.pick([0.003, 0.01, 0.02]),
    partitionRate: prng.pick([0, 0.005, 0.01]),
    weatherRate: prng.pick([0, 0.01]),
    transferRate: prng.pick([0, 0.002]),
    downMsMax: prng.pick([100, 500, 1500]),
    partitionMsMax: prng.pick([300, 1500]),
    snapshotEntries: prng.pick([8, 25, 100]),
    retainEntries: prng.pick([0, 5, 20]),
    clients: {
      clients: prng.int(2, 5),
      keys: prng.int(1, 4),
      thinkMsMax: prng.pick([2, 10, 30]),
      opTimeoutMs: prng.pick([200, 500, 1000]),
      randomNodeReadRate: prng.pick([0, 0.3]),
    },
    unsafeResolveBeforeDurable: false,
    checkDurablePromises: true,
    eventsMax: EVENTS_MAX_DEFAULT,
  };
}

function drawWeather(prng: Prng): NetworkConditions {
  return {
    lossRate: prng.pick([0, 0.01, 0.05, 0.15]),
    duplicateRate: prng.pick([0, 0.02, 0.1]),
    delayMsMax: prng.pick([1, 3, 10]),
    longDelayRate: prng.pick([0, 0.01, 0.05]),
    longDelayMsMax: prng.pick([50, 300]),
  };
}

export function driverNodesForSeed(seed: number, nodes: number | undefined): number {
  return nodes ?? (createPrng(seed ^ 0x5eed).chance(0.5) ? 3 : 5);
}

export function runDriverSimulation(options: DriverSimOptions): Promise<DriverSimResult> {
  return new DriverSimulation(options).run();
}

/** One running process of a node. */
interface Process {
  readonly driver: Driver;
  readonly instance: number;
  readonly clock: VirtualClock;
  readonly storage: SimStorage;
}

interface SimNode {
  readonly id: NodeId;
  readonly disk: SimDisk;
  readonly drift: number;
  process: Process | undefined;
  restart: Timer | undefined;
}

type Phase = "chaos" | "heal" | "done";

class DriverSimulation {
  private readonly scheduler = new Scheduler();
  private readonly prng: Prng;
  private readonly faultPrng: Prng;
  private readonly params: DriverSimParams;
  private readonly ids: NodeId[];
  private readonly members: MemberView[];
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly network: DriverNetwork;
  private readonly clients: Clients;
  private readonly applied: AppliedLog;
  private readonly violations: DriverViolation[] = [];
  private readonly leaders = new Map<number, NodeId>();
  private readonly chaosMs: number;
  private readonly tracing: boolean;
  private readonly trace: string[] = [];
  private traceHash = 0x811c9dc5;
  private phase: Phase = "chaos";
  private instances = 0;
  private crashes = 0;
  private faults = 0;
  private partitionUntil = 0;
  private snapshotsCreated = 0;
  private snapshotsInstalled = 0;

  constructor(private readonly options: DriverSimOptions) {
    assert(Number.isSafeInteger(options.seed), "driver sim: the seed must be an integer");
    assert(options.nodes === 3 || options.nodes === 5, "driver sim: nodes must be 3 or 5");
    this.prng = createPrng(options.seed);
    this.params = { ...drawDriverSimParams(this.prng.fork()), ...options.params };
    this.faultPrng = this.prng.fork();
    this.chaosMs = options.chaosMs ?? CHAOS_MS_DEFAULT;
    this.tracing = options.trace ?? false;
    this.ids = Array.from({ length: options.nodes }, (_, i) => i + 1);
    this.members = this.ids.map((id) => ({
      id,
      name: `node-${id}`,
      peerUrl: `sim://${id}`,
      clientUrl: `sim://${id}/client`,
      learner: false,
    }));
    for (const id of this.ids) {
      this.nodes.set(id, {
        id,
        disk: new SimDisk({ voters: [...this.ids], learners: [] }),
        drift: 1 + (this.prng.next() * 2 - 1) * CLOCK_DRIFT_MAX,
        process: undefined,
        restart: undefined,
      });
    }
    this.network = new DriverNetwork(
      this.ids,
      this.scheduler,
      this.prng.fork(),
      {
        instanceOf: (id) => this.node(id).process?.instance,
        deliver: (to, message) => this.running(to).driver.deliver([message]),
        deliverSnapshot: (to, message) => this.running(to).driver.deliverSnapshot(message),
        reportUnreachable: (at, peer) => this.running(at).driver.reportUnreachable(peer),
        reportSnapshotStatus: (at, peer, ok) => this.running(at).driver.reportSnapshotStatus(peer, ok),
        note: (line) => this.note(line),
      },
      IN_FLIGHT_MESSAGES_MAX,
    );
    this.network.conditions = this.params.network;
    this.applied = new AppliedLog(
      () => this.scheduler.now,
      (kind, message) => this.violation(kind, message),
    );
    this.clients = new Clients(this.params.clients, this.prng.fork(), this.scheduler, {
      nodeIds: this.ids,
      running: (id) => this.node(id).process,
      acknowledged: (opId, command) => this.applied.acknowledged(opId, command),
      unexpected: (message) => this.violation("unexpected", message),
      note: (line) => this.note(line),
    });
  }

  async run(): Promise<DriverSimResult> {
    for (const id of this.ids) this.start(this.node(id));
    this.clients.start();
    this.scheduler.after(FAULT_TICK_MS, () => this.faultTick());
    this.scheduler.after(this.chaosMs, () => this.heal());
    this.scheduler.after(this.chaosMs + HEAL_DEADLINE_MS, () => {
      if (this.phase !== "done")
        this.violation("liveness", `no convergence ${HEAL_DEADLINE_MS} ms after the heal: ${this.describeCluster()}`);
    });
    await this.scheduler.runUntil(
      () => this.phase === "done" || this.violations.length > 0 || this.scheduler.eventsRun >= this.params.eventsMax,
      (error) =>
        this.violation(
          "exception",
          error instanceof Error
            ? `${error.name}: ${error.message}\n${(error.stack ?? "").split("\n").slice(1, 6).join("\n")}`
            : String(error),
        ),
    );
    if (this.phase !== "done" && this.violations.length === 0)
      this.violation("liveness", `the run took more than ${this.params.eventsMax} events: ${this.describeCluster()}`);
    if (this.violations.length === 0) this.checkHistory();
    const net = this.network.stats;
    const stats = this.clients.stats;
    return {
      seed: this.options.seed,
      nodes: this.options.nodes,
      virtualMs: this.scheduler.now,
      events: this.scheduler.eventsRun,
      elections: this.leaders.size,
      commits: this.applied.highest,
      crashes: this.crashes,
      faults: this.faults,
      snapshots: { created: this.snapshotsCreated, installed: this.snapshotsInstalled },
      operations: { invoked: stats.invoked, ok: stats.ok, failed: stats.failed, unknown: stats.unknown },
      messages: { sent: net.sent, delivered: net.delivered, lost: net.lost + net.cut + net.overflowed },
      violations: this.violations,
      traceHash: (this.traceHash >>> 0).toString(16).padStart(8, "0"),
      trace: this.trace,
      history: this.clients.history,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Processes

  /** Starts a process of the node from its durable disk, as openNode does (without real files). */
  private start(node: SimNode): void {
    assert(node.process === undefined, `driver sim: node ${node.id} started twice`);
    const instance = ++this.instances;
    const p = this.params;
    const storage = new SimStorage(node.disk, this.scheduler, this.prng.fork(), {
      fsyncMsMax: p.fsyncMsMax,
      unsafeResolveBeforeDurable: p.unsafeResolveBeforeDurable,
    });
    // openNode: restore the snapshot into a fresh store; the Driver replays committed entries after it.
    const kv = createKvStore();
    const snapshot = storage.snapshot();
    if (snapshot.meta.index > 0) kv.restore(snapshot.data);
    const clock = new VirtualClock(this.scheduler, node.drift, this.prng.next() * p.tickMs);
    const transport = new SimTransport(node.id, instance, this.network, (m) => this.inspect(node.id, storage, m));
    const driver = new Driver({
      id: node.id,
      members: this.members,
      storage,
      stateMachine: new RecordingStore(kv, (index, data) => this.applied.applied(node.id, index, data)),
      transport,
      logger: this.logger(node.id),
      observer: this.observer(node.id),
      tickMs: p.tickMs,
      electionTicks: p.electionTicks,
      heartbeatTicks: p.heartbeatTicks,
      msgBytesMax: MAX_MSG_BYTES,
      proposalsMax: PROPOSALS_MAX,
      readsMax: READS_MAX,
      snapshotEntries: p.snapshotEntries,
      retainEntries: p.retainEntries,
      seed: this.prng.int(1, 0x7fffffff),
      clock,
    });
    node.process = { driver, instance, clock, storage };
    const hs = storage.initialState().hardState;
    this.note(
      `node ${node.id} starts (instance ${instance}): snapshot ${snapshot.meta.index}, log ${storage.firstIndex()}..${storage.lastIndex()}, term ${hs.term}, vote ${hs.vote}, commit ${hs.commit}`,
    );
    driver.start();
  }

  /**
   * The process dies: its timers are withdrawn, its storage loses what was not durable, its pending
   * promises never settle, and no method of its Driver is called again (the network and the clients
   * reach the node's next process only).
   */
  private crash(node: SimNode, downMs: number): void {
    const process = node.process;
    assert(process !== undefined, `driver sim: node ${node.id} crashed while down`);
    node.process = undefined;
    this.crashes++;
    process.clock.stopAll();
    const lost = process.storage.crash(this.params.tornWrites);
    this.note(`node ${node.id} crashes (instance ${process.instance}): ${lost}; restarts in ${downMs} ms`);
    this.clients.crashed(node.id, process.instance);
    node.restart = this.scheduler.after(downMs, () => {
      node.restart = undefined;
      this.start(node);
    });
  }

  private logger(id: NodeId): DriverLogger {
    return {
      info: () => undefined,
      warn: (msg, fields) => this.note(`node ${id} warns: ${msg} ${JSON.stringify(fields ?? {})}`),
      // Nothing in a simulated run fails a disk: an error log is a Driver bug surfacing.
      error: (msg, fields) => this.violation("unexpected", `node ${id} logged an error: ${msg} ${JSON.stringify(fields ?? {})}`),
    };
  }

  private observer(id: NodeId): DriverObserver {
    return {
      onSoftState: (role, term, leader) => {
        this.note(`node ${id} is ${role} in term ${term} (leader ${leader})`);
        if (role !== "leader") return;
        const other = this.leaders.get(term);
        if (other !== undefined && other !== id) this.violation("electionSafety", `nodes ${other} and ${id} both lead term ${term}`);
        this.leaders.set(term, id);
      },
      onSnapshot: (kind, index) => {
        if (kind === "created") this.snapshotsCreated++;
        else this.snapshotsInstalled++;
        this.note(`node ${id} ${kind} a snapshot at ${index}`);
      },
    };
  }

  /** Every message a Driver hands its transport, at the moment it does. */
  private inspect(id: NodeId, storage: SimStorage, message: Message): void {
    if (this.tracing) this.note(`send ${describeMessage(message)}`);
    if (!this.params.checkDurablePromises) return;
    const wrong = checkDurablePromise(message, storage);
    if (wrong !== undefined) this.violation("ackBeforeDurable", `node ${id} sent ${describeMessage(message)}: it ${wrong}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Faults and the heal

  private faultTick(): void {
    if (this.phase !== "chaos") return;
    this.scheduler.after(FAULT_TICK_MS, () => this.faultTick());
    const p = this.params;
    const f = this.faultPrng;
    const now = this.scheduler.now;
    if (this.partitionUntil > 0 && now >= this.partitionUntil) {
      this.partitionUntil = 0;
      this.network.heal();
      this.note("partition healed");
    }
    if (f.chance(p.crashRate)) {
      const up = this.ids.filter((id) => this.node(id).process !== undefined);
      if (up.length > 0) {
        this.faults++;
        this.crash(this.node(f.pick(up)), f.int(1, p.downMsMax));
      }
    }
    if (f.chance(p.partitionRate)) {
      this.faults++;
      this.randomPartition(f);
      this.partitionUntil = now + f.int(FAULT_TICK_MS, p.partitionMsMax);
    }
    if (f.chance(p.weatherRate)) {
      this.faults++;
      this.network.conditions = f.chance(0.5) ? CALM_CONDITIONS : drawWeather(f);
      this.note(`weather: ${JSON.stringify(this.network.conditions)}`);
    }
    if (f.chance(p.transferRate)) {
      const leader = this.currentLeader();
      if (leader !== undefined) {
        this.faults++;
        this.note(`node ${leader.driver.id} is asked to hand over leadership`);
        // The outcome does not matter: a transfer that fails or times out is allowed.
        leader.driver.transferLeadership(noNode).catch(() => undefined);
      }
    }
  }

  private randomPartition(f: Prng): void {
    const ids = this.ids;
    const roll = f.int(0, 2);
    if (roll === 0) {
      const shuffled = [...ids];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = f.int(0, i);
        [shuffled[i], shuffled[j]] = [shuffled[j] as NodeId, shuffled[i] as NodeId];
      }
      const cut = f.int(1, ids.length - 1);
      this.network.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
    } else if (roll === 1) {
      // The leader alone, or with as many others as still leaves a majority on the other side.
      const leader = this.currentLeader()?.driver.id ?? f.pick(ids);
      const others = ids.filter((id) => id !== leader);
      const companions = f.chance(0.5) ? 0 : Math.floor((ids.length - 1) / 2) - 1;
      this.network.partition([[leader, ...others.slice(0, companions)], others.slice(companions)]);
    } else {
      this.network.heal();
      const from = f.pick(ids);
      const to = f.pick(ids.filter((id) => id !== from));
      this.network.cutLink(from, to);
    }
    this.note(`partition ${this.network.describe()}`);
  }

  /** The end of the chaos: no new client ops, every fault repaired, every node running. */
  private heal(): void {
    this.phase = "heal";
    this.clients.stop();
    this.network.heal();
    this.network.conditions = CALM_CONDITIONS;
    for (const node of this.nodes.values()) {
      if (node.process !== undefined) continue;
      node.restart?.cancel();
      node.restart = undefined;
      this.start(node);
    }
    this.note(`heal: ${this.describeCluster()}`);
    this.scheduler.after(CONVERGE_CHECK_MS, () => this.checkConverged());
  }

  private checkConverged(): void {
    if (this.phase !== "heal") return;
    const statuses = this.ids.map((id) => this.running(id).driver.status());
    const leader = statuses.find((s) => s.role === "leader");
    const converged =
      this.clients.active === 0 &&
      leader !== undefined &&
      leader.commitIndex === leader.lastIndex &&
      statuses.every((s) => s.term === leader.term && s.leader === leader.id && s.appliedIndex === leader.commitIndex);
    if (!converged) {
      this.scheduler.after(CONVERGE_CHECK_MS, () => this.checkConverged());
      return;
    }
    this.note(`converged: ${this.describeCluster()}`);
    this.phase = "done";
    this.checkStores();
  }

  /** Every node applied the same prefix: their stores must be byte-identical (snapshot encoding). */
  private checkStores(): void {
    const encoded = this.ids.map((id) => ({ id, store: this.running(id).driver.store }));
    const first = encoded[0];
    assert(first !== undefined, "driver sim: no nodes");
    const reference = Buffer.from(first.store.encodeSnapshot());
    for (const { id, store } of encoded.slice(1)) {
      if (reference.equals(Buffer.from(store.encodeSnapshot()))) continue;
      this.violation(
        "divergedStores",
        `node ${id} (revision ${store.revision}, applied ${store.appliedIndex}, ${store.keyCount} keys) differs from node ${first.id} ` +
          `(revision ${first.store.revision}, applied ${first.store.appliedIndex}, ${first.store.keyCount} keys)`,
      );
      return;
    }
  }

  private checkHistory(): void {
    const result = checkLinearizability(this.clients.history);
    if (result.kind === "violation") this.violation("linearizability", `key ${result.key}: ${result.explanation}`);
    else if (result.kind === "budgetExceeded") {
      this.violation(
        "linearizability",
        `the checker gave up on key ${result.key} (${result.operations} ops, ${result.searchSteps} search steps)`,
      );
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  private node(id: NodeId): SimNode {
    const node = this.nodes.get(id);
    assert(node !== undefined, `driver sim: no node ${id}`);
    return node;
  }

  private running(id: NodeId): Process {
    const process = this.node(id).process;
    assert(process !== undefined, `driver sim: node ${id} is down`);
    return process;
  }

  /** The running node that leads in the highest term, if any. */
  private currentLeader(): Process | undefined {
    let best: { process: Process; term: number } | undefined;
    for (const node of this.nodes.values()) {
      const s = node.process?.driver.status();
      if (node.process !== undefined && s?.role === "leader" && (best === undefined || s.term > best.term))
        best = { process: node.process, term: s.term };
    }
    return best?.process;
  }

  private describeCluster(): string {
    return this.ids
      .map((id) => {
        const s = this.node(id).process?.driver.status();
        return s === undefined
          ? `${id}:down`
          : `${id}:${s.role}/t${s.term}/lead${s.leader}/c${s.commitIndex}/a${s.appliedIndex}/last${s.lastIndex}`;
      })
      .join(" ");
  }

  private violation(kind: DriverViolationKind, message: string): void {
    this.violations.push({ kind, at: this.scheduler.now, message });
    this.note(`VIOLATION ${kind}: ${message}`);
  }

  private note(line: string): void {
    const text = `[${this.scheduler.now.toFixed(2)}] ${line}`;
    let h = this.traceHash;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    this.traceHash = h;
    if (!this.tracing) return;
    this.trace.push(text);
    if (this.trace.length > TRACE_LINES_MAX) this.trace.splice(0, this.trace.length - TRACE_LINES_MAX);
  }
}

function describeMessage(m: Message): string {
  const head = `${m.type} ${m.from}->${m.to} t${m.term}`;
  switch (m.type) {
    case "append":
      return `${head} prev=(${m.prevIndex},t${m.prevTerm}) entries=${m.entries.length === 0 ? "-" : `${m.entries[0]?.index}..${m.entries[m.entries.length - 1]?.index}`} commit=${m.commit}`;
    case "appendResp":
      return `${head} ${m.reject ? "reject" : "ok"} index=${m.index}`;
    case "vote":
      return `${head}${m.preVote ? " pre" : ""} last=(${m.lastLogIndex},t${m.lastLogTerm})`;
    case "voteResp":
      return `${head}${m.preVote ? " pre" : ""} ${m.granted ? "granted" : "rejected"}`;
    case "heartbeat":
      return `${head} commit=${m.commit} round=${m.readRound}`;
    case "heartbeatResp":
      return `${head} round=${m.readRound}`;
    case "snapshot":
      return `${head} snap=(${m.snapshot.meta.index},t${m.snapshot.meta.term})`;
    case "readIndex":
    case "readIndexResp":
    case "timeoutNow":
      return head;
  }
}
