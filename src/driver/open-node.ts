import { join } from "node:path";
import type { PipelineRequest, PipelineResponse } from "../../gen/raftkv/v1/kv_pb.js";
import type { NodeId } from "../core/index.js";
import { createKvStore, type KvOptions } from "../kv/index.js";
import { withFields } from "../lib/logger.js";
import { sleep } from "../lib/sleep.js";
import { openStorage } from "../storage/index.js";
import { createMemberProber, createPeerTransport, type PeerTransportOptions } from "../transport/index.js";
import { runBootstrapCheck } from "./bootstrap-check.js";
import { lockDataDir } from "./data-dir-lock.js";
import { hasRaftState, newIncarnation, readIdentity, writeIdentity, type MemberIdentity } from "./member-identity.js";
import { Driver, type DriverLogger, type DriverObserver } from "./node.js";
import { PeerIncarnations } from "./peer-incarnations.js";
import type { MemberView } from "./types.js";

export interface NodeConfig {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly dataDir: string;
  /**
   * The initial membership (used only when the data directory is new), or, for a joining node, the
   * members it was told of (their URLs until the log names them).
   */
  readonly members: readonly MemberView[];
  /** This node's own peer URL, told to the peers with every Step batch (StepRequest.from_peer_url). */
  readonly advertisePeerUrl?: string;
  /**
   * This node was just added to a running cluster as a learner (`--join`): an empty data directory is
   * expected, so the bootstrap check is skipped, and the node starts knowing no membership (it learns
   * it from the leader's log or snapshot) instead of bootstrapping one.
   */
  readonly joining?: boolean;
  /** See DriverOptions.promoteLagMax (`--promote-lag-entries`). */
  readonly promoteLagMax?: number;
  /** See DriverOptions.onRemoved. */
  readonly onRemoved?: () => void;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** The largest peer message (and so the largest log entry). */
  readonly msgBytesMax: number;
  readonly proposalsMax?: number;
  readonly readsMax?: number;
  /** See DriverOptions: `--snapshot-entries`, `--snapshot-bytes`, `--snapshot-retain-entries`. */
  readonly snapshotEntries: number;
  readonly snapshotBytes: number;
  readonly retainEntries: number;
  /** See DriverOptions.storageStallMs (`--storage-stall-ms`); absent: never reported stalled. */
  readonly storageStallMs?: number;
  readonly kv?: Partial<KvOptions>;
  readonly transport?: Partial<
    Omit<PeerTransportOptions, "clusterId" | "selfId" | "peers" | "onUnreachable" | "onSnapshotStatus" | "logger">
  >;
  readonly logger: DriverLogger;
  readonly observer?: DriverObserver;
  /** Ends the wait of an empty member for its peers (bootstrap-check.ts); openNode then rejects. */
  readonly signal?: AbortSignal;
  /** Called when the data directory is empty and the member starts asking its peers whether the cluster exists. */
  readonly onBootstrapping?: () => void;
  /** Called when a member showed an incarnation other than the one this node knew (it lost its data). */
  readonly onIncarnationChanged?: (peer: NodeId) => void;
  /** The first pause between rounds of the bootstrap check (doubling up to 5 s). Default 250 ms. */
  readonly bootstrapRetryMs?: number;
}

/** A running node and what its RaftService needs besides the driver. */
export interface OpenedNode {
  readonly driver: Driver;
  readonly identity: MemberIdentity;
  readonly incarnations: PeerIncarnations;
  /** A Forward stream of client writes to the leader over the peer connection (PeerTransport.forwardStream). */
  readonly forwardStream: (
    leader: NodeId,
    requests: AsyncIterable<PipelineRequest>,
    signal: AbortSignal,
  ) => AsyncIterable<PipelineResponse>;
}

/** The deadline of one Probe call of the bootstrap check. */
const probeTimeoutMs = 2_000;
const bootstrapRetryMsMax = 5_000;
/** Pauses between rounds of learning the other members' incarnations. */
const learnRetryMs = 1_000;
const learnRetryMsMax = 10_000;

/**
 * Opens a node from its data directory: recovers the WAL and the latest snapshot, restores the KV state
 * machine from that snapshot (the driver replays the committed entries after it), connects the peer
 * transport, and starts the driver loop. The caller serves RaftService with the driver's
 * deliver/deliverSnapshot/isMember and the client services with the driver as KvNode.
 *
 * A data directory that holds nothing is either a new member of a new cluster or a member that lost its
 * data; before anything is written, the other members are asked which (bootstrap-check.ts), and the
 * second case rejects with MemberDataLostError. The RaftService must already answer Probe calls from
 * the other members meanwhile (they may be asking the same question).
 */
export async function openNode(config: NodeConfig): Promise<OpenedNode> {
  const { logger } = config;
  const unlock = await lockDataDir(config.dataDir);
  let storage;
  let identity: MemberIdentity;
  let incarnations: PeerIncarnations;
  try {
    identity = await establishIdentity(config);
    incarnations = await PeerIncarnations.load(
      config.dataDir,
      (peer, known, seen, firstTime) => {
        config.onIncarnationChanged?.(peer);
        if (firstTime) {
          logger.error(
            "refusing messages from a member whose incarnation changed: it lost its data directory and forgot its votes and acknowledgements",
            {
              peer,
              knownIncarnation: known.toString(16),
              seenIncarnation: seen.toString(16),
            },
          );
        }
      },
      (error) => logger.error("could not record a member's incarnation in peers.json", { err: String(error) }),
    );
    storage = await openStorage({
      dir: join(config.dataDir, "raft"),
      initialConf:
        config.joining === true
          ? { voters: [], learners: [] }
          : {
              voters: config.members.filter((m) => !m.learner).map((m) => m.id),
              learners: config.members.filter((m) => m.learner).map((m) => m.id),
            },
      logger: withFields(logger, { component: "storage" }),
    });
  } catch (error) {
    await unlock();
    throw error;
  }
  const stateMachine = createKvStore(config.kv ?? {});
  const snapshot = storage.snapshot();
  if (snapshot.meta.index > 0) stateMachine.restore(snapshot.data);
  // The state holds it now; the storage reads it back from its file if a follower needs it.
  storage.releaseSnapshotData();

  // The transport reports to the driver, created just below; it never calls back synchronously.
  const peers = new Map<NodeId, string>();
  for (const m of config.members) if (m.id !== config.id) peers.set(m.id, m.peerUrl);
  const transport = createPeerTransport({
    ...config.transport,
    clusterId: config.clusterId,
    selfId: config.id,
    incarnation: identity.incarnation,
    ...(config.advertisePeerUrl === undefined ? {} : { selfPeerUrl: config.advertisePeerUrl }),
    peers,
    msgBytesMax: config.msgBytesMax,
    onUnreachable: (id) => driver.reportUnreachable(id),
    onSnapshotStatus: (id, ok) => driver.reportSnapshotStatus(id, ok),
    logger,
  });
  const driver = new Driver({
    id: config.id,
    members: config.members,
    storage,
    stateMachine,
    transport,
    logger,
    ...(config.observer === undefined ? {} : { observer: config.observer }),
    tickMs: config.tickMs,
    electionTicks: config.electionTicks,
    heartbeatTicks: config.heartbeatTicks,
    // Entries travel inside peer messages; leave room for the envelope.
    msgBytesMax: Math.floor(config.msgBytesMax / 2),
    proposalsMax: config.proposalsMax ?? 65_536,
    readsMax: config.readsMax ?? 65_536,
    snapshotEntries: config.snapshotEntries,
    snapshotBytes: config.snapshotBytes,
    retainEntries: config.retainEntries,
    ...(config.storageStallMs === undefined ? {} : { storageStallMs: config.storageStallMs }),
    ...(config.promoteLagMax === undefined ? {} : { promoteLagMax: config.promoteLagMax }),
    ...(config.onRemoved === undefined ? {} : { onRemoved: config.onRemoved }),
    onStopped: async () => {
      learning.abort();
      await learned;
      await unlock();
    },
  });
  driver.start();
  const learning = new AbortController();
  const learned = learnIncarnations(config, peers, incarnations, learning.signal);
  return { driver, identity, incarnations, forwardStream: (leader, requests, signal) => transport.forwardStream(leader, requests, signal) };
}

/**
 * Learns every other member's incarnation once, by Probe, as soon as both run. Without it a member
 * learns a peer's incarnation only from that peer's messages, and followers do not message each other:
 * a follower that never heard from another could not tell that it came back with an empty disk and
 * would count its vote (found by the issue-9 end-to-end test). Retries each silent member every second
 * up to every ten; ends when all are known or the node stops.
 */
async function learnIncarnations(
  config: NodeConfig,
  peers: ReadonlyMap<NodeId, string>,
  incarnations: PeerIncarnations,
  signal: AbortSignal,
): Promise<void> {
  const unknown = new Set([...peers.keys()].filter((id) => incarnations.incarnationOf(id) === undefined));
  if (unknown.size === 0) return;
  const prober = createMemberProber({ clusterId: config.clusterId, selfId: config.id, peers, timeoutMs: probeTimeoutMs });
  try {
    for (let pauseMs = learnRetryMs; unknown.size > 0 && !signal.aborted; pauseMs = Math.min(learnRetryMsMax, pauseMs * 2)) {
      await Promise.all(
        [...unknown].map(async (peer) => {
          const answer = await prober.probe(peer, signal);
          if (answer.kind !== "running" || answer.incarnation === undefined || signal.aborted) return;
          // The same judgement as for its messages: a first sighting is recorded, a change is refused and reported.
          incarnations.check(peer, answer.incarnation);
          unknown.delete(peer);
        }),
      );
      if (unknown.size > 0) await sleep(pauseMs, signal);
    }
    await incarnations.flushed();
  } finally {
    prober.close();
  }
}

/**
 * Reads this member's identity, or creates it. A data directory without member.json but with Raft
 * state was written before identities existed: it keeps its state and gets an incarnation now. One
 * with neither is empty: the bootstrap check decides whether it may start (it throws otherwise), and
 * only then is the identity written, before the write-ahead log, so that an empty directory never
 * holds anything before the check has passed.
 */
async function establishIdentity(config: NodeConfig): Promise<MemberIdentity> {
  const expected = { clusterId: config.clusterId, memberId: config.id };
  const existing = await readIdentity(config.dataDir, expected);
  if (existing !== undefined) return existing;
  const identity = { ...expected, incarnation: newIncarnation() };
  if (await hasRaftState(join(config.dataDir, "raft"))) {
    config.logger.warn("this data directory predates member identities; giving it an incarnation", { dataDir: config.dataDir });
  } else if (config.joining === true) {
    // The cluster has just added this node under a new id: it holds nothing, and as a learner it
    // promises nothing (no vote, no acknowledgement counted) until it is promoted, by which time its
    // log has caught up.
    config.logger.info("joining a running cluster as a learner", { members: config.members.map((m) => m.id) });
  } else {
    const peers = new Map<NodeId, string>();
    for (const m of config.members) if (m.id !== config.id) peers.set(m.id, m.peerUrl);
    if (peers.size > 0) {
      config.logger.info("the data directory is empty: asking the other members whether the cluster already exists", {
        members: [...peers.keys()],
      });
      config.onBootstrapping?.();
      const prober = createMemberProber({ clusterId: config.clusterId, selfId: config.id, peers, timeoutMs: probeTimeoutMs });
      let verdict;
      try {
        verdict = await runBootstrapCheck({
          selfId: config.id,
          peers: [...peers.keys()],
          probe: (peer, signal) => prober.probe(peer, signal),
          signal: config.signal ?? new AbortController().signal,
          retryMs: config.bootstrapRetryMs ?? 250,
          retryMsMax: bootstrapRetryMsMax,
          onWait: (waiting, round) => {
            // Members of a new cluster starting together wait for each other for a few rounds (info);
            // past that, every tenth round is a warning: a member may wait here for hours.
            const fields = { round, waiting: waiting.map((w) => `${w.peer}: ${w.why}`) };
            const message =
              "waiting for every other member to answer before bootstrapping (an empty member never assumes the cluster is new)";
            if (round <= 3) config.logger.info(message, fields);
            else if (round % 10 === 0) config.logger.warn(message, fields);
          },
        });
      } finally {
        prober.close();
      }
      if (verdict.kind === "new") config.logger.info("every other member holds nothing: bootstrapping a new cluster");
      else {
        config.logger.info(
          "the cluster formed while this member was still asking, and no member has seen it: starting empty, to catch up from the leader",
          { evidence: verdict.evidence },
        );
      }
    }
  }
  await writeIdentity(config.dataDir, identity);
  return identity;
}
