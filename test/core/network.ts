import { createPrng } from "../../src/lib/prng.js";
import { MemoryStorage, RaftNode, type Entry, type Message, type NodeId, type RaftConfig, type ReadState } from "../../src/core/index.js";

/**
 * A synchronous in-memory cluster for scenario tests: every Ready is persisted to the node's
 * MemoryStorage at once, messages are queued and delivered by `deliver()` in FIFO order unless a
 * filter drops them. Applied entries and read states are recorded per node for assertions.
 */
export class Network {
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly storages = new Map<NodeId, MemoryStorage>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  /** Every message ever sent, for message-count assertions. */
  readonly sent: Message[] = [];
  private queue: Message[] = [];
  private readonly down = new Set<NodeId>();
  private readonly cut = new Set<string>();
  drop: (m: Message) => boolean = () => false;

  constructor(
    readonly ids: readonly NodeId[],
    readonly options: Partial<Omit<RaftConfig, "id" | "storage" | "prng">> & { seed?: number } = {},
  ) {
    for (const id of ids) {
      this.storages.set(id, new MemoryStorage({ voters: [...ids], learners: [] }));
      this.applied.set(id, []);
      this.readStates.set(id, []);
      this.start(id);
    }
  }

  /** (Re)starts a node from its storage, as after a crash: volatile state is gone. */
  start(id: NodeId): RaftNode {
    const storage = this.storages.get(id)!;
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
    this.applied.set(id, (this.applied.get(id) ?? []).filter((e) => e.index <= storage.snapshot().meta.index));
    return node;
  }

  crash(id: NodeId): void {
    this.down.add(id);
    this.queue = this.queue.filter((m) => m.to !== id && m.from !== id);
  }

  isolate(id: NodeId): void {
    for (const other of this.ids) if (other !== id) this.cutLink(id, other);
  }

  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}-${b}`);
    this.cut.add(`${b}-${a}`);
  }

  heal(): void {
    this.cut.clear();
  }

  node(id: NodeId): RaftNode {
    return this.nodes.get(id)!;
  }

  /** Processes every pending Ready (persist, send, apply, advance) on live nodes. */
  flush(): void {
    for (const id of this.ids) {
      if (this.down.has(id)) continue;
      const node = this.node(id);
      const storage = this.storages.get(id)!;
      while (node.hasReady()) {
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
        this.applied.get(id)!.push(...rd.committedEntries);
        this.readStates.get(id)!.push(...rd.readStates);
        node.advance(rd);
      }
    }
  }

  /** Delivers queued messages (and the messages they cause) until the network is quiet. */
  deliver(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      this.flush();
      if (this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (this.down.has(m.to) || this.cut.has(`${m.from}-${m.to}`) || this.drop(m)) continue;
        this.node(m.to).step(m);
      }
    }
    throw new Error("network did not quiesce");
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).tick();
    this.deliver();
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

  leaders(): NodeId[] {
    return this.ids.filter((id) => !this.down.has(id) && this.node(id).status().role === "leader");
  }

  propose(id: NodeId, text: string) {
    const result = this.node(id).propose(new TextEncoder().encode(text));
    this.deliver();
    return result;
  }

  appliedData(id: NodeId): string[] {
    return this.applied.get(id)!.filter((e) => e.type === "normal").map((e) => new TextDecoder().decode(e.data));
  }
}
