import { constants } from "node:buffer";
import { pino, type Logger } from "pino";
import { ConfigError, requestBytesMaxCeiling, resolveServeArgs, serveHelp, type ServerConfig } from "../config/index.js";
import { MemberDataLostError, openNode, type Driver, type DriverObserver, type MemberView, type OpenedNode } from "../driver/index.js";
import { createMetrics, raftRoles, type RaftRole, type RaftkvMetrics } from "../metrics/index.js";
import { registerRaftService, type ForwardedWrites, type ProbeState } from "../rpc/raft-service.js";
import { createWriteForwarder } from "../rpc/write-forwarder.js";
import {
  buildApp,
  buildForwardedWrites,
  buildGrpcFastPath,
  buildPeerApp,
  listenClient,
  listenPeer,
  type ClientListener,
  type PeerListener,
} from "../server/index.js";
import { fromPino } from "../lib/logger.js";
import type { CliIo } from "./cli-io.js";
import { exitCodes, type ExitCode } from "./exit-codes.js";
import { decideJoin, promoteWhenCaughtUp } from "./join.js";

/**
 * The largest snapshot a node accepts from its leader; its receive buffer is allocated up front. It
 * must take whatever a leader can produce under the space quota, or a follower that falls behind a
 * compacted log could never catch up: a snapshot holds the live keys and values (at most the quota),
 * their framing, the sessions and the watch history, so twice the quota, within what one buffer can be.
 * (It was a fixed 1 GiB while the quota's default is 2 GiB; bench:state found a 1 GB state encoding to
 * 1,054 MB.)
 */
export function snapshotReceiveBytesMax(quotaBytes: number): number {
  return Math.min(constants.MAX_LENGTH, Math.max(1024 * 1024 * 1024, 2 * quotaBytes));
}

/**
 * Peer messages carry log entries, and the driver takes half of a message for entries (the rest is the
 * envelope of a batch). Sized so that the largest request a client may send always fits in one entry.
 */
export function peerMessageBytes(requestBytesMax: number): number {
  return Math.max(4 * 1024 * 1024, 2 * requestBytesMax + 64 * 1024);
}

/** `raftkv serve`: one node, until SIGINT or SIGTERM. */
export async function runServe(args: readonly string[], io: CliIo): Promise<ExitCode> {
  let config: ServerConfig;
  try {
    const resolved = resolveServeArgs(args, io.env);
    if (resolved.kind === "help") {
      io.stdout(serveHelp());
      return exitCodes.ok;
    }
    config = resolved.config;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stderr(`raftkv serve: ${error.message}\n`);
    return exitCodes.usage;
  }
  // A node that joins a running cluster learns its id from the cluster (serveNode adds it).
  const logger = pino({
    level: config.logLevel,
    base: config.join.length > 0 ? { name: config.name } : { node: config.id, name: config.name },
  });
  const unguard = guardKeepaliveRaces(logger);
  try {
    return await serveNode(config, logger, io.signal);
  } catch (error) {
    logger.fatal({ err: error }, "raftkv node failed");
    return exitCodes.failed;
  } finally {
    unguard();
  }
}

/**
 * connect-node's Http2SessionManager can raise from its keepalive timers after the connection they
 * watch is gone: a PING timeout destroys a session whose 'error' listeners were already removed (an
 * unhandled 'error' event), and a ping on a just-destroyed session throws ERR_HTTP2_INVALID_SESSION
 * (connectrpc/connect-es#1795). The chaos suite saw the first one kill a node whose peer was paused.
 * Both concern a connection the peer link no longer uses (it reconnects on its next call), so they
 * are logged and survived; any other uncaught exception still ends the process, as without a handler.
 */
function guardKeepaliveRaces(logger: Logger): () => void {
  const onUncaught = (error: Error) => {
    const fromKeepalive = (error.stack ?? "").includes("http2-session-manager");
    const known = error.message.includes("PING timed out") || (error as { code?: unknown }).code === "ERR_HTTP2_INVALID_SESSION";
    if (fromKeepalive && known) {
      logger.warn({ err: error }, "ignored an error of an HTTP/2 connection that was already given up (connect-es keepalive race)");
      return;
    }
    logger.fatal({ err: error }, "uncaught exception");
    process.exit(exitCodes.failed);
  };
  process.on("uncaughtException", onUncaught);
  return () => process.off("uncaughtException", onUncaught);
}

async function serveNode(given: ServerConfig, givenLogger: Logger, signal: AbortSignal): Promise<ExitCode> {
  let config = given;
  let logger = givenLogger;
  let joining = false;
  let members: MemberView[] = config.initialCluster.map((m) => ({ ...m, learner: false }));
  if (config.join.length > 0) {
    const decision = await decideJoin(config, fromPino(logger), signal);
    switch (decision.kind) {
      case "stopped":
        return exitCodes.ok;
      case "refused":
        logger.fatal(decision.message);
        return exitCodes.dataLost;
      case "member":
        // A node that joined earlier has the id the cluster gave it, and finds the members in its log.
        if (!config.initialCluster.some((m) => m.id === decision.id)) members = [];
        config = { ...config, id: decision.id };
        break;
      case "joined":
        config = { ...config, id: decision.id };
        members = [...decision.members];
        joining = true;
        break;
    }
    logger = logger.child({ node: config.id });
  }
  const removed = new AbortController();
  const stopped = AbortSignal.any([signal, removed.signal]);
  const metrics = createMetrics();
  const msgBytesMax = peerMessageBytes(config.limits.requestBytesMax);
  // The peer port listens before the node opens: a member with an empty data directory asks the others
  // whether the cluster exists, and they must be able to answer while they start too.
  let startup: ProbeState = { phase: "starting" };
  let opened: OpenedNode | undefined;
  let forwardedWrites: ForwardedWrites | undefined = undefined;
  // Until the node opens: the founding members, or those the cluster listed when this node joined.
  const initialMembers = new Set(members.map((m) => m.id));
  const peerApp = await buildPeerApp({
    logger: logger.child({ component: "peer" }),
    registerRoutes: (server) =>
      registerRaftService(server, {
        clusterId: config.clusterId,
        selfId: config.id,
        isMember: (id) => opened?.driver.isMember(id) ?? initialMembers.has(id),
        checkIncarnation: (from, incarnation) => opened === undefined || opened.incarnations.check(from, incarnation) === "accepted",
        probeState: () => (opened === undefined ? startup : runningProbeState(opened)),
        hasSeen: (id) => opened?.incarnations.incarnationOf(id) !== undefined,
        learnPeerUrl: (id, url) => opened?.driver.learnPeerUrl(id, url),
        deliver: (messages) => opened?.driver.deliver(messages),
        deliverSnapshot: async (message) => opened?.driver.deliverSnapshot(message),
        // Undefined until the client port's handlers exist (Forward answers Unavailable until then).
        forwarded: () => forwardedWrites,
        snapshotBytesMax: snapshotReceiveBytesMax(config.limits.quotaBytes),
        msgBytesMax,
        readMsgBytesMax: peerMessageBytes(requestBytesMaxCeiling),
        logger: fromPino(logger.child({ component: "raft-service" })),
      }),
  });
  let peer: PeerListener;
  try {
    peer = await listenPeer(peerApp, config.listenPeer);
  } catch (error) {
    logger.fatal({ err: error }, "cannot listen on the peer port; is another process using it?");
    await peerApp.close();
    return exitCodes.failed;
  }
  try {
    opened = await openNode({
      id: config.id,
      clusterId: config.clusterId,
      dataDir: config.dataDir,
      members,
      advertisePeerUrl: config.advertisePeerUrl,
      joining,
      promoteLagMax: config.promoteLagEntries,
      onRemoved: () => removed.abort(),
      tickMs: config.timing.tickMs,
      electionTicks: config.timing.electionTicks,
      heartbeatTicks: config.timing.heartbeatTicks,
      storageStallMs: config.timing.storageStallMs,
      snapshotEntries: config.snapshots.entries,
      snapshotBytes: config.snapshots.bytes,
      retainEntries: config.snapshots.retainEntries,
      msgBytesMax,
      logger: fromPino(logger),
      observer: metricsObserver(metrics),
      signal,
      onBootstrapping: () => (startup = { phase: "bootstrapping" }),
      onIncarnationChanged: (peerId) => metrics.peerIncarnationRefused(peerId),
    });
  } catch (error) {
    await peer.close();
    if (error instanceof MemberDataLostError) {
      logger.fatal({ evidence: error.evidence }, error.message);
      return exitCodes.dataLost;
    }
    if (signal.aborted) {
      logger.info("stopped before the node started");
      return exitCodes.ok;
    }
    throw error;
  }
  const node = opened.driver;
  const shutdown = new AbortController();
  const writeForwarder = createWriteForwarder(opened.forwardStream);
  let client: ClientListener | undefined;
  const appOptions = {
    node,
    store: node.store,
    metrics,
    logger,
    limits: config.limits,
    corsOrigins: config.corsOrigins,
    shutdown: shutdown.signal,
    dataDir: config.dataDir,
    ...(config.forwardWrites ? { forwardWrite: writeForwarder.forward } : {}),
  };
  forwardedWrites = { handlers: buildForwardedWrites(appOptions), requestTimeoutMs: config.limits.requestTimeoutMs };
  const app = await buildApp(appOptions);
  try {
    client = await listenClient(app, config.listenClient, { grpcFastPath: buildGrpcFastPath(appOptions) });
  } catch (error) {
    logger.fatal({ err: error }, "cannot listen on the client port; is another process using it?");
    await stopAll(node, client, peer, app, logger, config.shutdownTimeoutMs);
    return exitCodes.failed;
  }
  // The transport keeps cumulative counters; the metrics grow by their differences.
  const snapshotsSent = new Map<number, number>();
  const peerMetrics = setInterval(() => {
    for (const [peerId, stats] of node.peerStats()) {
      metrics.peerMessages(peerId, stats.sent, stats.dropped, stats.steps, stats.failures);
      // A leader always sends its latest snapshot, the one storage holds.
      for (let i = snapshotsSent.get(peerId) ?? 0; i < stats.snapshotsSent; i++) metrics.snapshot("sent", node.snapshotBytes());
      snapshotsSent.set(peerId, stats.snapshotsSent);
    }
    const status = node.status();
    const pending = node.pendingCounts();
    metrics.sample({
      matchIndex: status.role === "leader" ? status.matchIndex : undefined,
      lastIndex: status.lastIndex,
      pendingProposals: pending.proposals,
      pendingReads: pending.reads,
      keys: node.store.keyCount,
      dataBytes: node.store.dataBytes,
      sessions: node.store.sessionCount,
      storageStalled: node.storageStalled,
    });
  }, 1_000);
  peerMetrics.unref();
  signal.addEventListener("abort", () => clearInterval(peerMetrics), { once: true });
  logger.info(
    {
      client: config.advertiseClientUrl,
      peer: config.advertisePeerUrl,
      listenClient: client.url,
      listenPeer: peer.url,
      dataDir: config.dataDir,
      members: config.initialCluster.length,
    },
    "raftkv node serving",
  );
  if (config.join.length > 0) {
    const id = config.id;
    void promoteWhenCaughtUp(config, id, () => node.members().some((m) => m.id === id && !m.learner), fromPino(logger), stopped);
  }
  await new Promise<void>((resolve) => (stopped.aborted ? resolve() : stopped.addEventListener("abort", () => resolve(), { once: true })));
  logger.info("shutting down: handing off leadership, draining requests");
  shutdown.abort();
  const code = await stopAll(node, client, peer, app, logger, config.shutdownTimeoutMs);
  if (removed.signal.aborted && !signal.aborted) {
    logger.warn("stopped: this node was removed from the cluster. To bring it back, empty its data directory and start it with --join");
    return exitCodes.removed;
  }
  return code;
}

function runningProbeState(opened: OpenedNode): ProbeState {
  const status = opened.driver.status();
  return {
    phase: "running",
    term: status.term,
    lastIndex: status.lastIndex,
    snapshotIndex: status.snapshotIndex,
    incarnation: opened.identity.incarnation,
  };
}

/**
 * Graceful stop, in the order that loses nothing: the node hands leadership to a follower and fails
 * what is pending (clients retry elsewhere) while the peer port still carries the hand-off; then the
 * client port drains; the peer port closes last.
 */

async function stopAll(
  node: Driver,
  client: ClientListener | undefined,
  peer: PeerListener | undefined,
  app: { close(): Promise<unknown> },
  logger: Logger,
  timeoutMs: number,
): Promise<ExitCode> {
  const graceful = (async () => {
    await node.stop();
    await client?.close(Math.floor(timeoutMs / 2));
    await app.close();
    await peer?.close();
  })();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
  const outcome = await Promise.race([graceful.then(() => "done" as const), timedOut]);
  clearTimeout(timer);
  if (outcome === "timeout") {
    logger.error({ timeoutMs }, "graceful shutdown did not finish in time; exiting anyway");
    return exitCodes.failed;
  }
  logger.info("stopped");
  return exitCodes.ok;
}

/** The driver reports its role as a string (DriverObserver.onSoftState); metrics takes only the four it knows. */
function isRaftRole(role: string): role is RaftRole {
  return (raftRoles as readonly string[]).includes(role);
}

function metricsObserver(metrics: RaftkvMetrics): DriverObserver {
  return {
    onPersisted(rd, persistMs) {
      let bytes = 0;
      for (const entry of rd.entries) bytes += entry.data.byteLength;
      metrics.walFsync(persistMs, bytes, rd.entries.length);
    },
    onApplied(applied, commit, applyMs) {
      metrics.raftIndexes(commit, applied);
      if (applyMs !== undefined) metrics.applyDuration(applyMs);
    },
    onSoftState(role, term, leader) {
      if (isRaftRole(role)) metrics.raftState(role, term, leader);
    },
    onProposal: (outcome, ms) => metrics.proposal(outcome, ms),
    onReadBarrier: (outcome, ms) => metrics.readBarrier(outcome, ms),
    onSnapshot: (kind, _index, bytes, ms) => metrics.snapshot(kind, bytes, ms),
  };
}
