import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { NodeRole, type Member } from "../../gen/raftkv/v1/cluster_pb.js";
import { exitCodes } from "../../src/cli/exit-codes.js";
import { formatInitialCluster, type InitialMember } from "../../src/config/index.js";
import { assert } from "../../src/lib/assert.js";
import { createRaftkvClient, RaftkvCallError, type EndpointStatus, type RaftkvClient } from "../../src/rpc/client/index.js";
import { freePorts } from "./free-ports.js";
import { ChaosNetwork } from "./network.js";
import { NodeProcess } from "./node-process.js";
import { allLinks, linkName } from "./partitions.js";
import type { Reaper } from "./reaper.js";
import { createTcpProxy, type TcpProxy } from "./tcp-proxy.js";

/**
 * The cluster under test: real raftkv processes on loopback, each in a **slot** (node N of the reports:
 * its own peer and client ports, data directory and log), and a TCP proxy on every directed peer link
 * between slots.
 *
 * Every member's peer URL is its real one, in every node's --initial-cluster (all alike, as in a real
 * deployment) and in the member records the Raft log replicates. Each process runs with a routing
 * table (peer-routes.mjs, loaded through NODE_OPTIONS) that sends its connections to slot j's real peer
 * address through the proxy of the link (its slot -> j): all of i's traffic to j goes through a link the
 * nemesis controls, and j's traffic to i through another one, so faults can be one-way, and they stay
 * per link after membership changes, whatever URLs the log carries. Client URLs are the real ones
 * (clients are not partitioned; a partitioned leader still hears clients, which is the interesting case
 * for stale reads).
 *
 * Slots and members: the founding members are slots 1..nodes with member ids 1..nodes. With `spares`,
 * more slots exist that start empty; a slot joins with `--join` (the cluster picks a new member id, never
 * a reused one) and leaves by removal (its process exits with code 7). The cluster tracks which member id
 * each slot holds, and which exits it expected (a removal's code 7, a join's refused fall-back), so that
 * they are not counted as crashes.
 */
export interface ClusterOptions {
  /** The founding members. */
  readonly nodes: number;
  /** Extra slots, empty at the start, that can join (the membership nemesis grows the cluster). Default 0. */
  readonly spares?: number;
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
  /** The slot. */
  readonly id: number;
  /** The member id the slot held when its process exited (undefined: none). */
  readonly member: number | undefined;
  /** On the clock of ClusterOptions.nowMs. */
  readonly atMs: number;
  readonly code: number | null;
  readonly signal: string | null;
  readonly logTail: string;
  /**
   * Why this exit was expected, when it was: a removed member's code 7, or a joining node's refusal
   * (code 6) after its join fell back to the founding bootstrap. Unset: a crash, unless the disk-loss
   * judgement claims it.
   */
  expected?: string;
}

export interface LeaderView {
  /** The slot that leads. */
  readonly id: number;
  /** Its member id (the slot's number until a membership change gives the slot another). */
  readonly member?: number;
  readonly term: bigint;
}

export const clusterSizes = [3, 5, 7] as const;

/** The line peer-routes.mjs writes when it is loaded. */
export const routesMarker = "raftkv-chaos: peer routes in force";
/** A founding member's bootstrap check refusing to start on an empty data directory (issue 9). */
export const bootstrapRefusal = /refusing to start: the data directory of member \d+ is empty, but the cluster already exists/;
/** --join finding a voter at this node's peer URL (src/cli/join.ts): it lost its data and was not removed. */
export const joinRefusal = /is a voter at this node's peer URL/;
/** How long one membership call may take (its client retries leader changes and pending changes). */
const memberCallTimeoutMs = 15_000;
const pollMs = 200;

interface Slot {
  readonly id: number;
  readonly founder: boolean;
  readonly peerUrl: string;
  readonly clientUrl: string;
  readonly process: NodeProcess;
  /** The member id it holds now (a learner or a voter), if any. */
  member: number | undefined;
}

export class ChaosCluster {
  /** Every slot, founders first. */
  readonly ids: readonly number[];
  /** The founding members' slots (1..nodes). */
  readonly founders: readonly number[];
  readonly crashes: CrashRecord[] = [];
  private readonly slots = new Map<number, Slot>();
  /** Member id -> the slot that held it (ids are never reused, so this only grows). */
  private readonly slotOfMember = new Map<number, number>();
  /** Member ids the harness asked the cluster to remove: their process's exit with code 7 is expected. */
  private readonly removalsAsked = new Set<number>();
  private readonly proxies = new Map<string, TcpProxy>();
  private networkSlot: ChaosNetwork | undefined;
  private statusClient: RaftkvClient | undefined;
  private adminClient: RaftkvClient | undefined;
  private readonly nowMs: () => number;
  /** The founders' --initial-cluster, the same for every node. */
  private initialCluster = "";

  private constructor(private readonly o: ClusterOptions) {
    assert(
      clusterSizes.some((n) => n === o.nodes),
      () => `cluster: nodes must be one of ${clusterSizes.join(", ")}`,
    );
    const spares = o.spares ?? 0;
    assert(spares >= 0 && spares <= 2, "cluster: at most two spare slots");
    this.ids = Array.from({ length: o.nodes + spares }, (_, i) => i + 1);
    this.founders = this.ids.slice(0, o.nodes);
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
    for (const link of allLinks(this.ids)) {
      const proxy = await createTcpProxy({ name: linkName(link), targetHost: "127.0.0.1", targetPort: peerPort(link.to) });
      this.proxies.set(linkName(link), proxy);
    }
    this.networkSlot = new ChaosNetwork(this.ids, this.proxies);
    mkdirSync(this.o.logDir, { recursive: true });
    const founding: InitialMember[] = this.founders.map((id) => ({
      id,
      name: `node-${id}`,
      peerUrl: `http://127.0.0.1:${peerPort(id)}`,
      clientUrl: `http://127.0.0.1:${clientPort(id)}`,
    }));
    this.initialCluster = formatInitialCluster(founding);
    const preload = pathToFileURL(resolve(fileURLToPath(import.meta.url), "..", "peer-routes.mjs")).href;
    for (const id of this.ids) {
      const founder = this.founders.includes(id);
      const peerUrl = `http://127.0.0.1:${peerPort(id)}`;
      const clientUrl = `http://127.0.0.1:${clientPort(id)}`;
      const dataDir = join(this.o.dataDir, `node-${id}`);
      mkdirSync(dataDir, { recursive: true });
      // A founder's flags; a spare has none until it joins (joinArgs).
      const args = founder ? this.founderArgs(id) : [];
      const routes = this.ids
        .filter((to) => to !== id)
        .map((to) => `127.0.0.1:${peerPort(to)}=127.0.0.1:${this.proxies.get(linkName({ from: id, to }))?.port ?? 0}`)
        .join(",");
      const env = {
        ...process.env,
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import=${preload}`.trim(),
        RAFTKV_CHAOS_PEER_ROUTES: routes,
      };
      const node = new NodeProcess({
        id,
        command: this.o.serveCommand,
        args,
        env,
        cwd: this.o.repoRoot,
        logPath: join(this.o.logDir, `node-${id}.log`),
        reaper: this.o.reaper,
        onCrash: (crashed, code, signal) => this.recordCrash(crashed, code, signal),
      });
      this.slots.set(id, { id, founder, peerUrl, clientUrl, process: node, member: founder ? id : undefined });
      if (founder) this.slotOfMember.set(id, id);
    }
    this.statusClient = createRaftkvClient({
      endpoints: this.endpoints(),
      attemptTimeoutMs: this.o.statusTimeoutMs ?? 1000,
      timeoutMs: 5000,
      attemptsMax: 10,
    });
    this.adminClient = createRaftkvClient({ endpoints: this.endpoints(), attemptTimeoutMs: 3000, timeoutMs: memberCallTimeoutMs });
  }

  /** A founder's flags: the same on every start (a replacement adds --join). */
  private founderArgs(id: number): string[] {
    return [
      "--id",
      String(id),
      "--name",
      `node-${id}`,
      "--data-dir",
      this.dataDirOf(id),
      "--cluster-id",
      `chaos-${this.o.seed}`,
      "--initial-cluster",
      this.initialCluster,
      "--log-level",
      this.o.logLevel ?? "warn",
      ...(this.o.extraArgs ?? []),
    ];
  }

  private recordCrash(id: number, code: number | null, signal: string | null): void {
    const slot = this.slot(id);
    const member = slot.member;
    const record: CrashRecord = { id, member, atMs: Math.round(this.nowMs()), code, signal, logTail: slot.process.logTail() };
    if (code === exitCodes.removed && member !== undefined && this.removalsAsked.has(member)) {
      // It applied its own removal and stopped, as a removed member must: the slot no longer holds it.
      record.expected = `member ${member} was removed (exit code ${exitCodes.removed})`;
      slot.member = undefined;
    }
    this.crashes.push(record);
  }

  get network(): ChaosNetwork {
    assert(this.networkSlot !== undefined, "cluster: not built");
    return this.networkSlot;
  }

  /** Client URLs of every slot, in slot order. */
  endpoints(): string[] {
    return this.ids.map((id) => this.slot(id).clientUrl);
  }

  /** Client URLs of the founding slots (the workload's endpoints; a slot that rejoins keeps its URL). */
  founderEndpoints(): string[] {
    return this.founders.map((id) => this.slot(id).clientUrl);
  }

  clientUrl(id: number): string {
    return this.slot(id).clientUrl;
  }

  peerUrl(id: number): string {
    return this.slot(id).peerUrl;
  }

  node(id: number): NodeProcess {
    return this.slot(id).process;
  }

  private slot(id: number): Slot {
    const slot = this.slots.get(id);
    assert(slot !== undefined, () => `cluster: no node ${id}`);
    return slot;
  }

  /** The member id slot `id` holds, if any. */
  memberOf(id: number): number | undefined {
    return this.slot(id).member;
  }

  /** The slot that holds (or held) member `member`. */
  slotOf(member: number): number | undefined {
    return this.slotOfMember.get(member);
  }

  /** The slots that hold a member (voter or learner), whatever their process is doing. */
  memberSlots(): number[] {
    return this.ids.filter((id) => this.slot(id).member !== undefined);
  }

  /** True when the slot holds a member and its process is up (running or paused). */
  isUpMember(id: number): boolean {
    const slot = this.slot(id);
    return slot.member !== undefined && (slot.process.state === "running" || slot.process.state === "paused");
  }

  /** Slots that hold no member and run no process: where a node can join. */
  emptySlots(): number[] {
    return this.ids.filter((id) => {
      const slot = this.slot(id);
      return slot.member === undefined && slot.process.state !== "running" && slot.process.state !== "paused";
    });
  }

  /** Member ids whose removal the harness asked for. */
  removalsRequested(): ReadonlySet<number> {
    return this.removalsAsked;
  }

  startAll(): void {
    for (const id of this.founders) this.node(id).start();
  }

  /** Node `id`'s --data-dir. */
  dataDirOf(id: number): string {
    assert(this.ids.includes(id), () => `cluster: no node ${id}`);
    return join(this.o.dataDir, `node-${id}`);
  }

  /** Node `id`'s log file (stdout and stderr of every start, appended). */
  logPath(id: number): string {
    assert(this.ids.includes(id), () => `cluster: no node ${id}`);
    return join(this.o.logDir, `node-${id}.log`);
  }

  /** The founding slots whose log lacks peer-routes.mjs's line: their peer traffic would bypass the proxies. */
  unroutedNodes(): number[] {
    return this.founders.filter((id) => {
      try {
        return !readFileSync(this.logPath(id), "utf8").includes(routesMarker);
      } catch {
        return true;
      }
    });
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
    const answers = await this.statusAll();
    this.ids.forEach((id, i) => {
      const status = answers[i]?.status?.status;
      if (status === undefined || status.role !== NodeRole.LEADER) return;
      if (best === undefined || status.term > best.term) best = { id, member: Number(status.id), term: status.term };
    });
    return best;
  }

  /**
   * Waits until every running node knows the same leader of the same term (bounded by `timeoutMs`).
   * Returns the leader, or undefined on timeout.
   */
  async awaitStableLeader(timeoutMs: number, pollIntervalMs = pollMs): Promise<LeaderView | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const answers = await this.statusAll();
      const views = this.ids.flatMap((id, i) => (this.node(id).state === "running" ? [answers[i]?.status?.status] : []));
      const first = views[0];
      if (first !== undefined && first.leader !== 0n && views.every((s) => s?.leader === first.leader && s.term === first.term)) {
        const member = Number(first.leader);
        return { id: this.slotOf(member) ?? 0, member, term: first.term };
      }
      await new Promise((resolve) => setTimeout(resolve, pollIntervalMs));
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
      const member = this.memberOf(id);
      const label = `node ${id} (${member === undefined ? "no member" : `member ${member}`}, ${process})`;
      if (status === undefined) return `${label}: no answer (${answer?.error?.rawMessage ?? "?"})`;
      return (
        `${label}: id ${status.id} ${NodeRole[status.role] ?? status.role} term ${status.term} leader ${status.leader} ` +
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
      this.ids
        .filter((id) => this.node(id).state === "running")
        .map(async (id) => {
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

  /** Asks the leader to hand over to slot `to`'s member (0: the most caught-up voter); returns the new leader's slot. */
  async transferLeadership(to: number, timeoutMs: number): Promise<number> {
    assert(this.statusClient !== undefined, "cluster: not built");
    const target = to === 0 ? 0 : this.memberOf(to);
    if (target === undefined) throw new Error(`node ${to} holds no member`);
    const response = await this.statusClient.transferLeadership({ targetId: BigInt(target) }, { signal: AbortSignal.timeout(timeoutMs) });
    return this.slotOf(Number(response.leader)) ?? 0;
  }

  /** The members as the leader lists them (a linearizable MemberList). */
  async members(timeoutMs = memberCallTimeoutMs): Promise<Member[]> {
    assert(this.adminClient !== undefined, "cluster: not built");
    return (await this.adminClient.memberList({}, { signal: AbortSignal.timeout(timeoutMs) })).members;
  }

  /**
   * Removes slot `id`'s member (`MemberRemove`) and, when its process is up, waits for that process to
   * apply its removal and exit with code 7. Retries until the removal is certain (a retry of a removal
   * that was applied is refused as "not a member"), within `timeoutMs`. Returns what happened, for the
   * timeline; throws when the removal could not be made or the process ended otherwise. A process that
   * has not exited by `exitTimeoutMs` is left running: the end of the run judges it (judgeMembership).
   */
  async removeMember(id: number, timeoutMs: number, exitTimeoutMs: number): Promise<string> {
    assert(this.adminClient !== undefined, "cluster: not built");
    const slot = this.slot(id);
    const member = slot.member;
    assert(member !== undefined, () => `cluster: node ${id} holds no member to remove`);
    const started = Date.now();
    const exitsBefore = this.crashes.length;
    const exitOf = (): CrashRecord | undefined => this.crashes.slice(exitsBefore).find((c) => c.id === id && c.member === member);
    this.removalsAsked.add(member);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.adminClient.memberRemove({ id: BigInt(member) }, { signal: AbortSignal.timeout(memberCallTimeoutMs + 1000) });
        break;
      } catch (error) {
        if (error instanceof RaftkvCallError && error.reason === "membership-refused" && /is not a member/.test(error.message)) break;
        // Unknown outcome, or no leader for a while: the member list tells whether it is gone.
        const listed = await this.members(5000).catch(() => undefined);
        if (listed !== undefined && !listed.some((m) => Number(m.id) === member)) break;
        if (Date.now() - started > timeoutMs) {
          const why = error instanceof Error ? error.message : String(error);
          throw new Error(`removal of member ${member} not confirmed after ${attempt} attempts: ${why}`, { cause: error });
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    const removedMs = Date.now() - started;
    const up = slot.process.state === "running" || slot.process.state === "paused";
    const exitedMeanwhile = exitOf();
    if (!up && exitedMeanwhile === undefined) {
      // Its process was not running (a member that lost its disk): nothing will exit.
      if (slot.member === member) slot.member = undefined;
      return `removed member ${member} in ${removedMs} ms (its process was not running)`;
    }
    while ((slot.process.state === "running" || slot.process.state === "paused") && Date.now() - started < removedMs + exitTimeoutMs)
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    const exit = exitOf();
    if (exit === undefined) return `removed member ${member} in ${removedMs} ms; its process had not stopped ${exitTimeoutMs} ms later`;
    if (exit.expected === undefined)
      throw new Error(`member ${member}'s process exited with code ${exit.code} (signal ${exit.signal}), not ${exitCodes.removed}`);
    const when = exitedMeanwhile !== undefined ? "before the call returned" : `${Date.now() - started - removedMs} ms later`;
    return `removed member ${member} in ${removedMs} ms; its process exited with code ${exit.code} ${when}`;
  }

  /**
   * Starts slot `id` on an empty data directory with `--join` and the client URLs of the members that
   * are up: a founder slot with its own flags plus --join (the documented replacement of a member), a
   * spare with only its name, URLs and --join. Waits until the cluster lists a member at the slot's peer
   * URL (a learner under a new id) and until that member is a voter (it promotes itself once caught up),
   * within `timeoutMs`. A join that finds no running member falls back, for a founder, to the founding
   * bootstrap, which refuses (exit code 6): the slot is started again, as a supervisor would (at most
   * `restartsMax` times).
   */
  async joinMember(id: number, timeoutMs: number, restartsMax = 3): Promise<string> {
    const slot = this.slot(id);
    assert(slot.member === undefined, () => `cluster: node ${id} holds member ${slot.member} already`);
    const deadline = Date.now() + timeoutMs;
    const started = Date.now();
    this.wipe(id);
    const running = this.memberSlots().filter((other) => other !== id && this.isUpMember(other));
    const joinUrls = (running.length > 0 ? running : this.memberSlots().filter((other) => other !== id)).map((other) =>
      this.clientUrl(other),
    );
    const join = ["--join", joinUrls.join(",")];
    if (slot.founder) {
      slot.process.setArgs([...this.founderArgs(id), ...join]);
    } else {
      slot.process.setArgs([
        "--name",
        `node-${id}`,
        "--data-dir",
        this.dataDirOf(id),
        "--cluster-id",
        `chaos-${this.o.seed}`,
        "--advertise-peer-url",
        slot.peerUrl,
        "--advertise-client-url",
        slot.clientUrl,
        "--log-level",
        this.o.logLevel ?? "warn",
        ...(this.o.extraArgs ?? []),
        ...join,
      ]);
    }
    const exitsBefore = this.crashes.filter((c) => c.id === id).length;
    slot.process.start();
    let restarts = 0;
    let learnerMs: number | undefined;
    let member: number | undefined;
    while (Date.now() < deadline) {
      if (slot.process.state === "crashed") {
        const exit = this.crashes.filter((c) => c.id === id)[exitsBefore + restarts];
        const tail = exit?.logTail ?? "";
        if (
          exit !== undefined &&
          exit.code === exitCodes.dataLost &&
          bootstrapRefusal.test(tail) &&
          !joinRefusal.test(tail) &&
          restarts < restartsMax
        ) {
          // No member answered the join; as a founding member it tried the bootstrap, which found the
          // cluster and refused. Safe, and expected while the others are down: start it again.
          exit.expected = `its join found no running member, and the founding bootstrap refused (exit code ${exitCodes.dataLost})`;
          restarts++;
          this.wipe(id);
          await new Promise((resolve) => setTimeout(resolve, 1000));
          slot.process.start();
          continue;
        }
        throw new Error(`node ${id} exited while joining (code ${exit?.code ?? "?"}, signal ${exit?.signal ?? "?"})`);
      }
      const listed = await this.members(5000).catch(() => undefined);
      // The member at its peer URL that is new (an old id of this node would be its removed member).
      const mine = listed?.find(
        (m) => m.peerUrls.includes(slot.peerUrl) && (Number(m.id) === slot.member || !this.slotOfMember.has(Number(m.id))),
      );
      if (mine !== undefined) {
        member = Number(mine.id);
        if (slot.member === undefined) {
          slot.member = member;
          this.slotOfMember.set(member, id);
          learnerMs = Date.now() - started;
        }
        if (!mine.learner) {
          return `joined as member ${member}: a learner after ${learnerMs ?? 0} ms, a voter after ${Date.now() - started} ms${restarts > 0 ? ` (started ${restarts + 1} times: the bootstrap refused while no member answered)` : ""}`;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    throw new Error(
      member === undefined
        ? `node ${id} was not listed as a member ${timeoutMs} ms after it started with --join`
        : `member ${member} (node ${id}) was still a learner ${timeoutMs} ms after it started with --join`,
    );
  }

  /**
   * Records the member id of each node that runs without one (it started with --join, and its join
   * finished after joinMember stopped waiting) from a member list: the member at its peer URL.
   */
  adoptJoined(listed: readonly Member[]): void {
    for (const slot of this.slots.values()) {
      const up = slot.process.state === "running" || slot.process.state === "paused";
      if (slot.member !== undefined || !up) continue;
      const mine = listed.find((m) => m.peerUrls.includes(slot.peerUrl) && !this.slotOfMember.has(Number(m.id)));
      if (mine === undefined) continue;
      slot.member = Number(mine.id);
      this.slotOfMember.set(slot.member, slot.id);
    }
  }

  /** Node `id` no longer holds its member, which the harness removed (its process was stopped by the harness). */
  forgetRemoved(id: number): void {
    const slot = this.slot(id);
    if (slot.member !== undefined && this.removalsAsked.has(slot.member)) slot.member = undefined;
  }

  /** Stops every node and proxy. Safe to call more than once and on a half-built cluster. */
  async close(): Promise<void> {
    this.statusClient?.close();
    this.statusClient = undefined;
    this.adminClient?.close();
    this.adminClient = undefined;
    const errors: unknown[] = [];
    await Promise.all(
      [...this.slots.values()].map(async (slot) => {
        slot.process.resume();
        await slot.process.stop().catch((error: unknown) => errors.push(error));
      }),
    );
    await Promise.all([...this.proxies.values()].map((proxy) => proxy.close()));
    this.proxies.clear();
    if (errors.length > 0) throw errors[0];
  }

  /** Synchronous SIGKILL of every node, for process exit handlers. */
  killAllNow(): void {
    for (const slot of this.slots.values()) slot.process.killNow();
  }
}
