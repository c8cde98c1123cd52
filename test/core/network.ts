import { createPrng } from "../../src/lib/prng.js";
import {
  MemoryStorage,
  RaftNode,
  type ConfChangeOp,
  type ConfProposeResult,
  type ConfState,
  type Entry,
  type Message,
  type MessageType,
  type NodeId,
  type ProposeResult,
  type RaftConfig,
  type ReadState,
  type Status,
} from "../../src/core/index.js";

export type NetworkOptions = Partial<Omit<RaftConfig, "id" | "storage" | "prng">> & { seed?: number };

/** A predicate over messages, used to drop, hold or count them. */
export type MessageFilter = (m: Message) => boolean;

/** Bounds every delivery loop: a scenario that needs more rounds than this has livelocked. */
const deliverRoundsMax = 10_000;
/** Bounds the Readys one node produces in one flush: more means the core never settles (a livelock). */
const readysPerFlushMax = 1_000;
/** Bounds `electLeader`: campaigning more often than this without winning is a test failure. */
const campaignAttemptsMax = 5;
/** Bounds `tickUntil` by default: ten election timeouts of the default configuration. */
const ticksUntilMax = 200;
/** Bounds `commit`: proposals (each to whoever leads then) before giving up on a command. */
const commitAttemptsMax = 20;
/** Bounds how long `commit` waits for one proposal to reach a majority: two election timeouts. */
const commitWaitTicksMax = 40;

/**
 * A synchronous in-memory cluster for scenario tests: every Ready is persisted to the node's
 * MemoryStorage at once, messages are queued and delivered by `deliver()` in FIFO order unless a
 * link is cut, the receiver is down, `drop` says so, or `hold` parks them for a later `release`.
 * Applied entries and read states are recorded per node for assertions. Fully deterministic: the
 * only randomness is each node's PRNG, seeded from `options.seed` and the node id.
 */
export class Network {
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly storages = new Map<NodeId, MemoryStorage>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  /** Every message ever sent (delivered or not), for message-count assertions. */
  readonly sent: Message[] = [];
  /**
   * How many times `deliver` handed over the queued messages: every message in one batch travels at
   * once, so each batch is one network hop (a round trip is two).
   */
  deliveryBatches = 0;
  /** Messages parked by `hold`, in the order they were sent. */
  held: Message[] = [];
  private queue: Message[] = [];
  private readonly down = new Set<NodeId>();
  private readonly cut = new Set<string>();
  drop: MessageFilter = () => false;
  hold: MessageFilter = () => false;

  /** Every node of the network (grown by `addNode`), in the order they were created. */
  readonly ids: NodeId[];

  constructor(
    ids: readonly NodeId[],
    readonly options: NetworkOptions = {},
  ) {
    this.ids = [];
    for (const id of ids) this.addNode(id, { voters: [...ids], learners: [] });
  }

  /**
   * Creates node `id` with an empty log and the membership `conf` (a node joining an existing cluster
   * knows none: it learns it from the leader's log or snapshot) and starts it.
   */
  addNode(id: NodeId, conf: ConfState = { voters: [], learners: [] }): RaftNode {
    if (this.nodes.has(id)) throw new Error(`node ${id} exists`);
    this.ids.push(id);
    this.storages.set(id, new MemoryStorage(conf));
    this.applied.set(id, []);
    this.readStates.set(id, []);
    return this.start(id);
  }

  /** Proposes a membership change on `id` and delivers; promotion allows `promoteLagMax` entries of lag. */
  proposeConf(id: NodeId, op: ConfChangeOp, nodeId: NodeId, promoteLagMax = 0): ConfProposeResult {
    const result = this.node(id).proposeConfChange({ op, nodeId, context: new TextEncoder().encode(`member ${nodeId}`) }, promoteLagMax);
    this.deliver();
    return result;
  }

  /** (Re)starts a node from its storage, as after a crash: volatile state is gone. */
  start(id: NodeId): RaftNode {
    const storage = this.storage(id);
    const node = new RaftNode({
      electionTicks: 10,
      heartbeatTicks: 1,
      ...this.options,
      id,
      storage,
      prng: createPrng((this.options.seed ?? 1) * 1000 + id),
      applied: storage.snapshot().meta.index,
    });
    this.nodes.set(id, node);
    this.down.delete(id);
    // The state machine restarts from the snapshot and re-applies committed entries after it.
    this.applied.set(
      id,
      this.appliedOf(id).filter((e) => e.index <= storage.snapshot().meta.index),
    );
    return node;
  }

  /** Stops a node: it loses its volatile state and every message to or from it in flight. */
  crash(id: NodeId): void {
    this.down.add(id);
    this.queue = this.queue.filter((m) => m.to !== id && m.from !== id);
  }

  isolate(id: NodeId): void {
    for (const other of this.ids) if (other !== id) this.cutLink(id, other);
  }

  /** Cuts every link between the two groups; links inside a group stay. */
  partition(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) for (const y of b) this.cutLink(x, y);
  }

  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}-${b}`);
    this.cut.add(`${b}-${a}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Restores the links between `id` and everyone (the inverse of `isolate`). */
  reconnect(id: NodeId): void {
    for (const other of this.ids) {
      this.cut.delete(`${id}-${other}`);
      this.cut.delete(`${other}-${id}`);
    }
  }

  /** Whether a message from `a` would reach `b` now (both up, link not cut). */
  connected(a: NodeId, b: NodeId): boolean {
    return !this.down.has(a) && !this.down.has(b) && !this.cut.has(`${a}-${b}`);
  }

  /** Crash and start again from storage. */
  restart(id: NodeId): RaftNode {
    this.crash(id);
    return this.start(id);
  }

  /** Whether node `id` exists and runs (messages to a node the network does not have go nowhere). */
  isUp(id: NodeId): boolean {
    return this.nodes.has(id) && !this.down.has(id);
  }

  node(id: NodeId): RaftNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  storage(id: NodeId): MemoryStorage {
    const storage = this.storages.get(id);
    if (storage === undefined) throw new Error(`no storage for node ${id}`);
    return storage;
  }

  status(id: NodeId): Status {
    return this.node(id).status();
  }

  appliedOf(id: NodeId): Entry[] {
    return this.applied.get(id) ?? [];
  }

  readStatesOf(id: NodeId): ReadState[] {
    return this.readStates.get(id) ?? [];
  }

  /**
   * Processes every pending Ready (persist, send, apply, advance) on live nodes. Every node's invariants
   * are checked (RaftNode.checkInvariants) before and after each Ready, so every scenario that delivers,
   * ticks or flushes checks them after each of its inputs.
   */
  flush(): void {
    for (const id of this.ids) {
      if (this.down.has(id)) continue;
      const node = this.node(id);
      const storage = this.storage(id);
      node.checkInvariants();
      for (let count = 0; node.hasReady(); count++) {
        if (count >= readysPerFlushMax) throw new Error(`node ${id} still has a Ready after ${readysPerFlushMax}: it never settles`);
        const rd = node.ready();
        if (rd.snapshot) {
          storage.applySnapshot(rd.snapshot);
          this.applied.set(id, []);
        }
        storage.append(rd.entries);
        if (rd.hardState) storage.setHardState(rd.hardState);
        for (const m of rd.messages) {
          this.sent.push(m);
          this.queue.push(m);
        }
        this.appliedOf(id).push(...rd.committedEntries);
        this.readStatesOf(id).push(...rd.readStates);
        node.advance(rd);
        node.checkInvariants();
      }
    }
  }

  /** Delivers queued messages (and the messages they cause) until the network is quiet. */
  deliver(): void {
    for (let round = 0; round < deliverRoundsMax; round++) {
      this.flush();
      if (this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      this.deliveryBatches++;
      for (const m of batch) {
        // A message to a node the network does not have goes nowhere, as to an address nobody serves.
        if (!this.nodes.has(m.to)) continue;
        if (this.down.has(m.to) || this.cut.has(`${m.from}-${m.to}`) || this.drop(m)) continue;
        if (this.hold(m)) {
          this.held.push(m);
          continue;
        }
        this.node(m.to).step(m);
      }
    }
    throw new Error("network did not quiesce");
  }

  /** Delivers the held messages that match `filter` (all by default), as if they arrived late. */
  release(filter: MessageFilter = () => true): void {
    const now = this.held.filter(filter);
    this.held = this.held.filter((m) => !filter(m));
    for (const m of now) if (this.nodes.has(m.to) && !this.down.has(m.to)) this.node(m.to).step(m);
    this.deliver();
  }

  /**
   * Takes every queued message off the network without delivering it, for tests that deliver by hand
   * (out of order, twice, or mutated). Flushes first so that the queue holds everything sent so far.
   */
  takeQueued(): Message[] {
    this.flush();
    const taken = this.queue;
    this.queue = [];
    return taken;
  }

  /** Steps one message into its addressee (if up) and processes the Ready it causes, without delivering replies. */
  stepOne(m: Message): void {
    if (this.down.has(m.to)) return;
    this.node(m.to).step(m);
    this.flush();
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) {
      this.node(id).tick();
      this.deliver();
    }
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of this.ids) if (!this.down.has(id)) this.node(id).tick();
      this.deliver();
    }
  }

  campaign(id: NodeId): void {
    this.node(id).campaign();
    this.deliver();
  }

  /** Ticks every live node (delivering after each tick) until `done` holds; throws after `ticksMax` ticks. */
  tickUntil(done: () => boolean, what: string, ticksMax = ticksUntilMax): number {
    for (let ticks = 0; ticks <= ticksMax; ticks++) {
      if (done()) return ticks;
      this.tickAll(1);
    }
    throw new Error(`${what}: not reached after ${ticksMax} ticks`);
  }

  /** Ticks until one live node of `group` leads, and returns it (elections happen on their own). */
  tickUntilLeader(group: readonly NodeId[] = this.ids, ticksMax = ticksUntilMax): NodeId {
    const leaderOf = (): NodeId | undefined => group.find((id) => this.isUp(id) && this.status(id).role === "leader");
    this.tickUntil(() => leaderOf() !== undefined, `a leader among [${group.join(", ")}]`, ticksMax);
    const leader = leaderOf();
    if (leader === undefined) throw new Error("tickUntil returned without a leader");
    return leader;
  }

  /**
   * Makes `id` campaign until it leads. A first attempt can fail only by teaching it a higher term
   * (a PreVote rejection from a node in a newer term), so a few attempts always suffice.
   */
  electLeader(id: NodeId): void {
    for (let i = 0; i < campaignAttemptsMax && this.status(id).role !== "leader"; i++) this.campaign(id);
    if (this.status(id).role !== "leader") throw new Error(`node ${id} did not win an election`);
  }

  leaders(): NodeId[] {
    return this.ids.filter((id) => !this.down.has(id) && this.status(id).role === "leader");
  }

  /** The single live leader; throws when there is none or more than one. */
  leader(): NodeId {
    const leaders = this.leaders();
    const [only] = leaders;
    if (only === undefined || leaders.length > 1) throw new Error(`expected one leader, got [${leaders.join(", ")}]`);
    return only;
  }

  propose(id: NodeId, text: string): ProposeResult {
    const result = this.node(id).propose(new TextEncoder().encode(text));
    this.deliver();
    return result;
  }

  /** Proposes every command on `id` before delivering anything, so that they can travel together. */
  proposeAll(id: NodeId, texts: readonly string[]): ProposeResult[] {
    const node = this.node(id);
    const results = texts.map((text) => node.propose(new TextEncoder().encode(text)));
    this.deliver();
    return results;
  }

  /**
   * A client that insists (the classic lab's `one()`): proposes `text` to the live leader of the newest
   * term, waits for a majority of nodes to apply it, and proposes again to whoever leads when the
   * attempt is lost to a leader change. Returns the index it committed at. A retried command can be
   * applied twice; stories that retry compare commands as sets.
   */
  commit(text: string): number {
    const majority = Math.floor(this.ids.length / 2) + 1;
    for (let attempt = 0; attempt < commitAttemptsMax; attempt++) {
      const leader = this.newestLeader();
      const result = leader === undefined ? undefined : this.propose(leader, text);
      if (result === undefined || !result.ok) {
        this.tickAll(1);
        continue;
      }
      const appliedHere = (id: NodeId): boolean => this.appliedOf(id).some((e) => e.index === result.index && e.term === result.term);
      for (let ticks = 0; ticks < commitWaitTicksMax; ticks++) {
        if (this.ids.filter(appliedHere).length >= majority) return result.index;
        this.tickAll(1);
      }
    }
    throw new Error(`"${text}" not committed after ${commitAttemptsMax} attempts`);
  }

  /** The live leader with the highest term (a deposed leader may not know it yet), if any. */
  newestLeader(): NodeId | undefined {
    let best: NodeId | undefined;
    for (const id of this.leaders()) {
      if (best === undefined || this.status(id).term > this.status(best).term) best = id;
    }
    return best;
  }

  /** The application commands `id` applied, in order. */
  appliedData(id: NodeId): string[] {
    return this.appliedOf(id)
      .filter((e) => e.type === "normal")
      .map((e) => new TextDecoder().decode(e.data));
  }

  /** A bookmark into `sent`, for counting the messages of one phase of a story. */
  mark(): number {
    return this.sent.length;
  }

  /** Messages sent since `mark`, optionally only of the given types. */
  sentSince(mark: number, ...types: MessageType[]): Message[] {
    const since = this.sent.slice(mark);
    return types.length === 0 ? since : since.filter((m) => types.includes(m.type));
  }
}
