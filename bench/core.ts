/**
 * Throughput of the pure Raft core: committed entries per second through a 3-node cluster in one
 * process, with MemoryStorage and synchronous delivery, so no I/O, no serialization and no event loop.
 * It measures what the core itself costs per entry (proposal, append, acknowledgement, commit, apply),
 * an upper bound for the whole system.
 *
 *   npm run bench:core                        # about 200,000 entries per case
 *   BENCH_ENTRIES=1000000 npm run bench:core  # longer runs
 *   node --cpu-prof --import tsx bench/core.ts   # profile
 *
 * Cases: 16 B and 1 KiB entries, proposed one at a time (propose, deliver until the leader has applied
 * it, next) and in batches of 64 (64 proposals, then deliver until all are applied). Prints a table;
 * numbers, never assertions: they depend on the machine and on what else runs on it.
 */
import { MemoryStorage, RaftNode, type Message, type NodeId } from "../src/core/index.js";
import { createPrng } from "../src/lib/prng.js";

const entriesPerCase = Number(process.env.BENCH_ENTRIES ?? 200_000);
const batchSize = 64;
/**
 * The storages drop applied entries every this many entries, as the driver's snapshots would. Often,
 * because MemoryStorage.append copies its whole entry array on every call: with 16,384 entries between
 * compactions that copy alone took half the time of the one-at-a-time cases.
 */
const compactEveryEntries = 1_024;
/** Bounds one delivery loop: more rounds than this for one batch means the cluster stopped making progress. */
const deliverRoundsMax = 1_000;

interface Member {
  readonly id: NodeId;
  readonly node: RaftNode;
  readonly storage: MemoryStorage;
  applied: number;
}

/** Three nodes that persist, send and apply everything at once, like the test harness without its records. */
class Cluster {
  readonly members: Member[];
  private queue: Message[] = [];

  constructor() {
    const ids = [1, 2, 3];
    this.members = ids.map((id) => {
      const storage = new MemoryStorage({ voters: ids, learners: [] });
      const node = new RaftNode({ id, storage, prng: createPrng(id), electionTicks: 10, heartbeatTicks: 1 });
      return { id, node, storage, applied: 0 };
    });
    this.leader.node.campaign();
    this.deliver();
    if (this.leader.node.status().role !== "leader") throw new Error("node 1 did not become leader");
  }

  get leader(): Member {
    const first = this.members[0];
    if (first === undefined) throw new Error("empty cluster");
    return first;
  }

  member(id: NodeId): Member {
    const member = this.members[id - 1];
    if (member === undefined) throw new Error(`no member ${id}`);
    return member;
  }

  /** Processes every pending Ready: persist, queue the messages, apply, advance. */
  flush(): void {
    for (const member of this.members) {
      while (member.node.hasReady()) {
        const rd = member.node.ready();
        if (rd.snapshot !== undefined) member.storage.applySnapshot(rd.snapshot);
        member.storage.append(rd.entries);
        if (rd.hardState !== undefined) member.storage.setHardState(rd.hardState);
        for (const m of rd.messages) this.queue.push(m);
        const last = rd.committedEntries[rd.committedEntries.length - 1];
        if (last !== undefined) member.applied = last.index;
        member.node.advance(rd);
      }
    }
  }

  deliver(): void {
    for (let round = 0; round < deliverRoundsMax; round++) {
      this.flush();
      if (this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) this.member(m.to).node.step(m);
    }
    throw new Error("the cluster did not quiesce");
  }

  /** Drops applied entries from every storage (the snapshot data is irrelevant here). */
  compact(): void {
    for (const member of this.members) {
      const { conf } = member.node.status();
      member.storage.createSnapshot(member.applied, conf, new Uint8Array(0));
    }
  }
}

interface Result {
  readonly name: string;
  readonly entries: number;
  readonly bytes: number;
  readonly ms: number;
}

function run(name: string, entryBytes: number, perBatch: number, entries: number): Result {
  const cluster = new Cluster();
  const leader = cluster.leader;
  const payload = new Uint8Array(entryBytes).fill(7);
  let sinceCompaction = 0;
  const start = performance.now();
  for (let done = 0; done < entries; done += perBatch) {
    let lastIndex = 0;
    for (let i = 0; i < perBatch; i++) {
      const result = leader.node.propose(payload);
      if (!result.ok) throw new Error(`proposal refused: ${result.reason}`);
      lastIndex = result.index;
    }
    cluster.deliver();
    if (leader.applied < lastIndex) throw new Error(`entry ${lastIndex} not applied after delivery`);
    sinceCompaction += perBatch;
    if (sinceCompaction >= compactEveryEntries) {
      cluster.compact();
      sinceCompaction = 0;
    }
  }
  const ms = performance.now() - start;
  return { name, entries, bytes: entries * entryBytes, ms };
}

const cases: readonly (readonly [string, number, number])[] = [
  ["16 B, one at a time", 16, 1],
  ["16 B, batches of 64", 16, batchSize],
  ["1 KiB, one at a time", 1024, 1],
  ["1 KiB, batches of 64", 1024, batchSize],
];

// Warm up the JIT on every path before measuring.
for (const [name, bytes, perBatch] of cases) run(name, bytes, perBatch, Math.min(entriesPerCase, 20_000));

const results = cases.map(([name, bytes, perBatch]) => run(name, bytes, perBatch, entriesPerCase));

console.log(`raft core, 3 nodes in one process, MemoryStorage, synchronous delivery (node ${process.version})`);
console.log(["case".padEnd(24), "entries/s".padStart(12), "MB/s".padStart(9), "entries".padStart(10), "ms per run".padStart(11)].join(" "));
for (const r of results) {
  const seconds = r.ms / 1000;
  console.log(
    [
      r.name.padEnd(24),
      Math.round(r.entries / seconds)
        .toLocaleString("en-US")
        .padStart(12),
      (r.bytes / seconds / 1e6).toFixed(1).padStart(9),
      r.entries.toLocaleString("en-US").padStart(10),
      r.ms.toFixed(0).padStart(11),
    ].join(" "),
  );
}
