import { join } from "node:path";
import type { NodeId } from "../core/index.js";
import { createKvStore, type KvOptions } from "../kv/index.js";
import { openStorage } from "../storage/index.js";
import { createPeerTransport, type PeerTransportOptions } from "../transport/index.js";
import { lockDataDir } from "./data-dir-lock.js";
import { Driver, type DriverLogger, type DriverObserver } from "./node.js";
import type { MemberView } from "./types.js";

export interface NodeConfig {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly dataDir: string;
  /** The initial membership (used only when the data directory is new). */
  readonly members: readonly MemberView[];
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** The largest peer message (and so the largest log entry). */
  readonly maxMsgBytes: number;
  readonly proposalsMax?: number;
  readonly readsMax?: number;
  readonly snapshotEntries?: number;
  readonly retainEntries?: number;
  readonly kv?: Partial<KvOptions>;
  readonly transport?: Partial<Omit<PeerTransportOptions, "clusterId" | "selfId" | "peers" | "onUnreachable" | "onSnapshotStatus" | "logger">>;
  readonly logger: DriverLogger;
  readonly observer?: DriverObserver;
}

/**
 * Opens a node from its data directory: recovers the WAL and the latest snapshot, restores the KV state
 * machine from that snapshot (the driver replays the committed entries after it), connects the peer
 * transport, and starts the driver loop. The caller serves RaftService with the driver's
 * deliver/deliverSnapshot/isMember and the client services with the driver as KvNode.
 */
export async function openNode(config: NodeConfig): Promise<Driver> {
  const { logger } = config;
  const unlock = await lockDataDir(config.dataDir);
  let storage;
  try {
    storage = await openStorage({
      dir: join(config.dataDir, "raft"),
      initialConf: { voters: config.members.filter((m) => !m.learner).map((m) => m.id), learners: config.members.filter((m) => m.learner).map((m) => m.id) },
      logger: (level, msg, fields) => logger[level](msg, { component: "storage", ...fields }),
    });
  } catch (error) {
    await unlock();
    throw error;
  }
  const stateMachine = createKvStore(config.kv ?? {});
  const snapshot = storage.snapshot();
  if (snapshot.meta.index > 0) stateMachine.restore(snapshot.data);

  // The transport reports to the driver, created just below; it never calls back synchronously.
  const peers = new Map<NodeId, string>();
  for (const m of config.members) if (m.id !== config.id) peers.set(m.id, m.peerUrl);
  const transport = createPeerTransport({
    ...config.transport,
    clusterId: config.clusterId,
    selfId: config.id,
    peers,
    maxMsgBytes: config.maxMsgBytes,
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
    maxMsgBytes: Math.floor(config.maxMsgBytes / 2),
    proposalsMax: config.proposalsMax ?? 65_536,
    readsMax: config.readsMax ?? 65_536,
    snapshotEntries: config.snapshotEntries ?? 10_000,
    retainEntries: config.retainEntries ?? 5_000,
    onStopped: unlock,
  });
  driver.start();
  return driver;
}
