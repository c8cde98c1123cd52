import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * The metrics of one node, in a registry of its own so that tests and simulations can run several
 * nodes in one process. Every recording function is tiny and never throws: metrics must not be able
 * to fail a request or stall the Raft loop. Durations arrive in milliseconds (what performance.now()
 * gives) and are exported in seconds (the Prometheus convention).
 */
export interface RaftkvMetrics {
  readonly registry: Registry;
  /** The node's role, term and known leader, on every change (driver soft state). */
  raftState(role: RaftRole, term: number, leader: number): void;
  /** Commit and applied index, after each Ready. */
  raftIndexes(commitIndex: number, appliedIndex: number): void;
  /** How long applying one Ready's committed entries took. */
  applyDuration(ms: number): void;
  /** The node's state sampled once a second (gauges that no event moves). */
  sample(state: NodeSample): void;
  /** One finished proposal: applied ("ok") or rejected/unknown ("failed"), and its latency. */
  proposal(outcome: Outcome, ms: number): void;
  /** One finished linearizable read barrier and its latency. */
  readBarrier(outcome: Outcome, ms: number): void;
  /** One WAL write made durable: the fsync latency, the entry bytes and the entries written. */
  walFsync(ms: number, bytes: number, entries: number): void;
  /** The transport's cumulative counters for one peer; the metric grows by the difference. */
  peerMessages(peer: number, sentTotal: number, droppedTotal: number, batchesTotal: number, failuresTotal: number): void;
  /** A batch from a member was refused because its incarnation changed (it lost its data directory). */
  peerIncarnationRefused(peer: number): void;
  /** A snapshot was created locally, installed from the leader, or sent to a follower. */
  /** `ms`: how long creating or installing it took (undefined for a snapshot sent). */
  snapshot(kind: SnapshotKind, bytes: number, ms?: number): void;
  /** One finished client RPC with its Connect code name ("ok" on success). */
  rpc(method: string, code: string, ms: number): void;
  /** A Watch stream opened (+1) or ended (-1). */
  watchers(delta: 1 | -1): void;
  /** The exposition text and its content type, for GET /metrics. */
  render(): Promise<{ readonly contentType: string; readonly body: string }>;
}

/**
 * The Raft roles, one `raftkv_raft_role` series each. The core's `Role` names the same four; metrics
 * imports nothing internal, so the list lives here too, and `cli/serve-command.ts`, which hands the
 * core's role to `raftState`, is where the compiler holds the two together.
 */
export const raftRoles = ["follower", "precandidate", "candidate", "leader"] as const;
export type RaftRole = (typeof raftRoles)[number];

/** What `sample` reads off a running node. */
export interface NodeSample {
  /** On the leader, each member's match index (itself included); undefined on every other role. */
  readonly matchIndex: ReadonlyMap<number, number> | undefined;
  readonly lastIndex: number;
  readonly pendingProposals: number;
  readonly pendingReads: number;
  readonly keys: number;
  /** The live keys' key and value bytes (KvStore.dataBytes). */
  readonly dataBytes: number;
  readonly sessions: number;
  /** A log write has waited longer than --storage-stall-ms. */
  readonly storageStalled: boolean;
}
export type Outcome = "ok" | "failed";
export type SnapshotKind = "created" | "installed" | "sent";

/** Latency buckets from 0.5 ms to ~16 s: an fsync, a quorum round on loopback, a stuck election. */
const latencyBuckets = [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384];

export interface MetricsOptions {
  /** Adds the process and Node.js runtime metrics of prom-client (CPU, memory, event loop lag, GC). Default true. */
  readonly processMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): RaftkvMetrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const groups = [raftMetrics(registers), requestMetrics(registers), storageMetrics(registers), peerMetrics(registers)] as const;
  const [raft, requests, storage, peers] = groups;
  return {
    registry,
    ...raft.record,
    ...requests.record,
    ...storage.record,
    ...peers.record,
    sample(state) {
      for (const group of groups) group.sample?.(state);
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/**
 * One family of metrics: what it records on events, and what it reads off the once-a-second sample.
 * Each family defines its metrics next to the functions that move them.
 */
interface MetricGroup<Recorders extends keyof RaftkvMetrics> {
  readonly record: Pick<RaftkvMetrics, Recorders>;
  /** Absent when every metric of the family moves on events. */
  sample?(state: NodeSample): void;
}

type Registers = Registry[];

/** Role, term, leader, commit and applied index. */
function raftMetrics(registers: Registers): MetricGroup<"raftState" | "raftIndexes" | "applyDuration"> {
  const term = new Gauge({ name: "raftkv_raft_term", help: "The node's current Raft term.", registers });
  const role = new Gauge({
    name: "raftkv_raft_role",
    help: "1 for the node's current Raft role, 0 for the others.",
    labelNames: ["role"],
    registers,
  });
  const leader = new Gauge({ name: "raftkv_raft_leader", help: "The id of the leader this node knows of, 0 when none.", registers });
  const hasLeader = new Gauge({
    name: "raftkv_raft_has_leader",
    help: "1 when this node knows a leader, 0 during an election.",
    registers,
  });
  const leaderChanges = new Counter({
    name: "raftkv_raft_leader_changes_total",
    help: "Times this node saw the leader change to another node (a first leader counts once).",
    registers,
  });
  const commitIndex = new Gauge({ name: "raftkv_raft_commit_index", help: "The highest log index this node knows committed.", registers });
  const appliedIndex = new Gauge({
    name: "raftkv_raft_applied_index",
    help: "The highest log index applied to the state machine.",
    registers,
  });
  const applySeconds = new Histogram({
    name: "raftkv_apply_duration_seconds",
    help: "Time to apply one batch of committed entries to the state machine.",
    buckets: latencyBuckets,
    registers,
  });
  for (const r of raftRoles) role.set({ role: r }, r === "follower" ? 1 : 0);
  let lastLeader = 0;
  return {
    record: {
      raftState(current, currentTerm, currentLeader) {
        for (const r of raftRoles) role.set({ role: r }, r === current ? 1 : 0);
        term.set(currentTerm);
        leader.set(currentLeader);
        hasLeader.set(currentLeader === 0 ? 0 : 1);
        if (currentLeader !== 0 && currentLeader !== lastLeader) {
          leaderChanges.inc();
          lastLeader = currentLeader;
        }
      },
      raftIndexes(commit, applied) {
        commitIndex.set(commit);
        appliedIndex.set(applied);
      },
      applyDuration(ms) {
        applySeconds.observe(ms / 1000);
      },
    },
  };
}

/** Proposals, read barriers, client RPCs and Watch streams. */
function requestMetrics(registers: Registers): MetricGroup<"proposal" | "readBarrier" | "rpc" | "watchers"> {
  const proposals = new Counter({ name: "raftkv_proposals_total", help: "Mutations proposed through this node.", registers });
  const proposalsFailed = new Counter({
    name: "raftkv_proposals_failed_total",
    help: "Proposals that did not apply through this node (rejected, overwritten by a new leader, or deadline passed).",
    registers,
  });
  const proposalSeconds = new Histogram({
    name: "raftkv_proposal_duration_seconds",
    help: "Time from proposing a mutation to applying it, by outcome.",
    labelNames: ["outcome"],
    buckets: latencyBuckets,
    registers,
  });
  const proposalsPending = new Gauge({
    name: "raftkv_proposals_pending",
    help: "Proposals waiting to apply through this node.",
    registers,
  });
  const readBarrierSeconds = new Histogram({
    name: "raftkv_read_barrier_duration_seconds",
    help: "Time for a linearizable read barrier (ReadIndex confirmed and applied), by outcome.",
    labelNames: ["outcome"],
    buckets: latencyBuckets,
    registers,
  });
  const readsPending = new Gauge({
    name: "raftkv_read_barriers_pending",
    help: "Linearizable reads waiting for their read index.",
    registers,
  });
  const rpcRequests = new Counter({
    name: "raftkv_rpc_requests_total",
    help: "Client RPCs finished, by method and Connect code.",
    labelNames: ["method", "code"],
    registers,
  });
  const rpcSeconds = new Histogram({
    name: "raftkv_rpc_duration_seconds",
    help: "Client RPC latency (streams: until they end), by method.",
    labelNames: ["method"],
    buckets: latencyBuckets,
    registers,
  });
  const watchers = new Gauge({ name: "raftkv_watchers", help: "Open Watch streams.", registers });
  return {
    record: {
      proposal(outcome, ms) {
        proposals.inc();
        if (outcome === "failed") proposalsFailed.inc();
        proposalSeconds.observe({ outcome }, ms / 1000);
      },
      readBarrier(outcome, ms) {
        readBarrierSeconds.observe({ outcome }, ms / 1000);
      },
      rpc(method, code, ms) {
        rpcRequests.inc({ method, code });
        rpcSeconds.observe({ method }, ms / 1000);
      },
      watchers(delta) {
        watchers.inc(delta);
      },
    },
    sample(state) {
      proposalsPending.set(state.pendingProposals);
      readsPending.set(state.pendingReads);
    },
  };
}

/** The WAL, snapshots, the disk's health, and what the store holds. */
function storageMetrics(registers: Registers): MetricGroup<"walFsync" | "snapshot"> {
  const walFsyncSeconds = new Histogram({
    name: "raftkv_wal_fsync_duration_seconds",
    help: "Latency of making WAL writes durable.",
    buckets: latencyBuckets,
    registers,
  });
  const walBytes = new Counter({ name: "raftkv_wal_written_bytes_total", help: "Bytes written to the WAL and made durable.", registers });
  const walEntries = new Counter({
    name: "raftkv_wal_entries_total",
    help: "Log entries written to the WAL and made durable (divided by the fsync count: entries per fsync).",
    registers,
  });
  const snapshots = new Counter({
    name: "raftkv_snapshots_total",
    help: "Snapshots created, installed or sent, by kind.",
    labelNames: ["kind"],
    registers,
  });
  const snapshotBytes = new Gauge({
    name: "raftkv_snapshot_last_bytes",
    help: "Size of the latest snapshot, by kind.",
    labelNames: ["kind"],
    registers,
  });
  const snapshotSeconds = new Histogram({
    name: "raftkv_snapshot_duration_seconds",
    help: "Time to create a snapshot (encode and write it, beside the loop) or to install one from the leader, by kind.",
    labelNames: ["kind"],
    buckets: latencyBuckets,
    registers,
  });
  const storageStalled = new Gauge({
    name: "raftkv_storage_stalled",
    help: "1 while a log write has waited longer than --storage-stall-ms for the disk (the node is then not ready).",
    registers,
  });
  const keys = new Gauge({ name: "raftkv_kv_keys", help: "Keys in the store.", registers });
  const dataBytes = new Gauge({
    name: "raftkv_kv_bytes",
    help: "The live keys' key and value bytes (what --quota-bytes is checked against).",
    registers,
  });
  const sessions = new Gauge({ name: "raftkv_kv_sessions", help: "Client sessions (exactly-once) the store remembers.", registers });
  return {
    record: {
      walFsync(ms, bytes, entries) {
        walFsyncSeconds.observe(ms / 1000);
        if (bytes > 0) walBytes.inc(bytes);
        if (entries > 0) walEntries.inc(entries);
      },
      snapshot(kind, bytes, ms) {
        snapshots.inc({ kind });
        snapshotBytes.set({ kind }, bytes);
        if (ms !== undefined) snapshotSeconds.observe({ kind }, ms / 1000);
      },
    },
    sample(state) {
      keys.set(state.keys);
      dataBytes.set(state.dataBytes);
      sessions.set(state.sessions);
      storageStalled.set(state.storageStalled ? 1 : 0);
    },
  };
}

/** Peer traffic, refused incarnations, and (on the leader) each follower's progress. */
function peerMetrics(registers: Registers): MetricGroup<"peerMessages" | "peerIncarnationRefused"> {
  const peerBatches = new Counter({
    name: "raftkv_peer_batches_total",
    help: "Message batches written to a peer's Step streams (messages sent divided by this: messages per batch).",
    labelNames: ["peer"],
    registers,
  });
  const peerSent = new Counter({
    name: "raftkv_peer_messages_sent_total",
    help: "Raft messages sent to a peer.",
    labelNames: ["peer"],
    registers,
  });
  const peerDropped = new Counter({
    name: "raftkv_peer_messages_dropped_total",
    help: "Raft messages to a peer dropped (queue full or peer unreachable); Raft retries them.",
    labelNames: ["peer"],
    registers,
  });
  const incarnationRefused = new Counter({
    name: "raftkv_peer_incarnation_refused_total",
    help: "Peer message batches refused because the sending member's incarnation changed: it lost its data directory, and its votes and acknowledgements no longer count.",
    labelNames: ["peer"],
    registers,
  });
  const followerMatch = new Gauge({
    name: "raftkv_follower_match_index",
    help: "On the leader: the highest log index known replicated on each follower (absent on other roles).",
    labelNames: ["peer"],
    registers,
  });
  const followerLag = new Gauge({
    name: "raftkv_follower_lag_entries",
    help: "On the leader: how many entries each follower's log is behind the leader's (absent on other roles).",
    labelNames: ["peer"],
    registers,
  });
  const peerFailures = new Counter({
    name: "raftkv_peer_call_failures_total",
    help: "Calls to a peer that failed (a Step stream broken or refused, a snapshot stream failed); each is retried after a backoff.",
    labelNames: ["peer"],
    registers,
  });
  const peerTotals = new Map<number, { sent: number; dropped: number; batches: number; failures: number }>();
  return {
    record: {
      peerIncarnationRefused(peer) {
        incarnationRefused.inc({ peer: String(peer) });
      },
      peerMessages(peer, sentTotal, droppedTotal, batchesTotal, failuresTotal) {
        // The transport reports totals; a total below the last one means its counters restarted.
        const last = peerTotals.get(peer) ?? { sent: 0, dropped: 0, batches: 0, failures: 0 };
        const growth = (total: number, previous: number): number => (total >= previous ? total - previous : total);
        const sent = growth(sentTotal, last.sent);
        const dropped = growth(droppedTotal, last.dropped);
        const batches = growth(batchesTotal, last.batches);
        const failures = growth(failuresTotal, last.failures);
        peerTotals.set(peer, { sent: sentTotal, dropped: droppedTotal, batches: batchesTotal, failures: failuresTotal });
        if (sent > 0) peerSent.inc({ peer: String(peer) }, sent);
        if (dropped > 0) peerDropped.inc({ peer: String(peer) }, dropped);
        if (batches > 0) peerBatches.inc({ peer: String(peer) }, batches);
        if (failures > 0) peerFailures.inc({ peer: String(peer) }, failures);
      },
    },
    sample(state) {
      followerMatch.reset();
      followerLag.reset();
      for (const [peer, match] of state.matchIndex ?? []) {
        followerMatch.set({ peer: String(peer) }, match);
        followerLag.set({ peer: String(peer) }, Math.max(0, state.lastIndex - match));
      }
    },
  };
}
