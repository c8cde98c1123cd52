import type { NodeId } from "../core/index.js";
import type { Logger } from "../lib/logger.js";
import { snapshotChunkOverheadMax, stepEnvelopeBytesMax } from "./message-size.js";

export interface KeepaliveOptions {
  /**
   * How long a connection with calls in flight may go without receiving a byte before a PING checks it.
   * With pingTimeoutMs this decides how fast a peer that silently stops answering (packets dropped, not
   * refused) is noticed: at most pingIntervalMs + pingTimeoutMs, which the defaults keep near one
   * election timeout.
   */
  readonly pingIntervalMs: number;
  /** A PING not answered within this time marks the connection dead; its calls fail and it is replaced. */
  readonly pingTimeoutMs: number;
  /** A connection without calls for this long is closed (a follower's link to another follower, say). */
  readonly idleConnectionTimeoutMs: number;
}

export interface BackoffOptions {
  /** The wait before the first retry after a failure; doubles per consecutive failure. */
  readonly delayMsMin: number;
  /** The longest wait between retries. */
  readonly delayMsMax: number;
}

export interface PeerTransportOptions {
  /** Sent with every call; a peer of another cluster refuses it. */
  readonly clusterId: string;
  readonly selfId: NodeId;
  /**
   * This node's incarnation (src/driver/member-identity.ts), sent with every Step call: a peer that knew
   * another incarnation of this node refuses the call.
   */
  readonly incarnation: bigint;
  /**
   * This node's own peer URL, sent with every Step call (StepRequest.from_peer_url) so that a peer that
   * does not know this node yet can answer it. Default: none sent.
   */
  readonly selfPeerUrl?: string;
  /** Peer id -> base URL of its peer listener, e.g. http://10.0.0.2:2380 (h2c). An entry for selfId is ignored. */
  readonly peers: ReadonlyMap<NodeId, string>;
  /** The largest Step request on the wire (the receiver's read limit must be at least this). Default 4 MiB. */
  readonly msgBytesMax?: number;
  /** Per peer: messages waiting to be sent; beyond it the oldest are dropped. Default 4096. */
  readonly queueMessagesMax?: number;
  /** Per peer: bytes waiting to be sent (encoded-size bounds); beyond it the oldest are dropped. Default 64 MiB. */
  readonly queueBytesMax?: number;
  /** At most this many messages in one Step call. Default 1024. */
  readonly batchMessagesMax?: number;
  /** Snapshot streams get this much time per chunk, see snapshot-stream.ts. Default 2000. */
  readonly requestTimeoutMs?: number;
  readonly keepalive?: Partial<KeepaliveOptions>;
  readonly backoff?: Partial<BackoffOptions>;
  /** The data bytes per InstallSnapshot chunk. Default 1 MiB, or half of msgBytesMax when that is smaller. */
  readonly snapshotChunkBytes?: number;
  /**
   * A peer could not be reached (a call failed, or messages were dropped because its queue was full). The
   * driver reports it to the core, which stops streaming appends to it and probes instead. Never called
   * synchronously from send() or setPeers(), and never after close().
   */
  readonly onUnreachable: (id: NodeId) => void;
  /** A snapshot send to `id` finished: ok when the peer accepted it. Same calling rules as onUnreachable. */
  readonly onSnapshotStatus: (id: NodeId, ok: boolean) => void;
  readonly logger: Logger;
  /** A float in [0, 1) for backoff jitter; tests may pin it. Default Math.random. */
  readonly random?: () => number;
}

export interface ResolvedPeerTransportOptions {
  readonly clusterId: string;
  readonly selfId: NodeId;
  readonly incarnation: bigint;
  readonly selfPeerUrl: string;
  readonly msgBytesMax: number;
  readonly queueMessagesMax: number;
  readonly queueBytesMax: number;
  readonly batchMessagesMax: number;
  readonly requestTimeoutMs: number;
  readonly keepalive: KeepaliveOptions;
  readonly backoff: BackoffOptions;
  readonly snapshotChunkBytes: number;
  readonly onUnreachable: (id: NodeId) => void;
  readonly onSnapshotStatus: (id: NodeId, ok: boolean) => void;
  readonly logger: Logger;
  readonly random: () => number;
}

export const peerTransportDefaults = {
  msgBytesMax: 4 * 1024 * 1024,
  queueMessagesMax: 4096,
  queueBytesMax: 64 * 1024 * 1024,
  batchMessagesMax: 1024,
  requestTimeoutMs: 2000,
  keepalive: { pingIntervalMs: 1000, pingTimeoutMs: 1000, idleConnectionTimeoutMs: 60_000 },
  backoff: { delayMsMin: 50, delayMsMax: 2000 },
  snapshotChunkBytes: 1024 * 1024,
} as const;

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`peer transport: ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/** Validates a peer URL: an absolute http(s) URL; http means HTTP/2 without TLS (h2c). */
export function parsePeerUrl(id: NodeId, url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RangeError(`peer transport: the URL of peer ${id} is not a valid URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new RangeError(`peer transport: the URL of peer ${id} must start with http:// or https://, got ${JSON.stringify(url)}`);
  }
  return parsed;
}

export function validatePeerId(id: NodeId): void {
  if (!Number.isSafeInteger(id) || id <= 0) throw new RangeError(`peer transport: peer id must be a positive integer, got ${String(id)}`);
}

/** Fills in defaults and refuses settings that cannot work, with a message naming the setting. */
export function resolvePeerTransportOptions(o: PeerTransportOptions): ResolvedPeerTransportOptions {
  const d = peerTransportDefaults;
  validatePeerId(o.selfId);
  if (o.clusterId === "") throw new RangeError("peer transport: clusterId must not be empty");
  const msgBytesMax = positiveInt("msgBytesMax", o.msgBytesMax ?? d.msgBytesMax);
  const resolved: ResolvedPeerTransportOptions = {
    clusterId: o.clusterId,
    selfId: o.selfId,
    incarnation: o.incarnation,
    selfPeerUrl: o.selfPeerUrl ?? "",
    msgBytesMax,
    queueMessagesMax: positiveInt("queueMessagesMax", o.queueMessagesMax ?? d.queueMessagesMax),
    queueBytesMax: positiveInt("queueBytesMax", o.queueBytesMax ?? d.queueBytesMax),
    batchMessagesMax: positiveInt("batchMessagesMax", o.batchMessagesMax ?? d.batchMessagesMax),
    requestTimeoutMs: positiveInt("requestTimeoutMs", o.requestTimeoutMs ?? d.requestTimeoutMs),
    keepalive: {
      pingIntervalMs: positiveInt("keepalive.pingIntervalMs", o.keepalive?.pingIntervalMs ?? d.keepalive.pingIntervalMs),
      pingTimeoutMs: positiveInt("keepalive.pingTimeoutMs", o.keepalive?.pingTimeoutMs ?? d.keepalive.pingTimeoutMs),
      idleConnectionTimeoutMs: positiveInt(
        "keepalive.idleConnectionTimeoutMs",
        o.keepalive?.idleConnectionTimeoutMs ?? d.keepalive.idleConnectionTimeoutMs,
      ),
    },
    backoff: {
      delayMsMin: positiveInt("backoff.delayMsMin", o.backoff?.delayMsMin ?? d.backoff.delayMsMin),
      delayMsMax: positiveInt("backoff.delayMsMax", o.backoff?.delayMsMax ?? d.backoff.delayMsMax),
    },
    snapshotChunkBytes: positiveInt(
      "snapshotChunkBytes",
      o.snapshotChunkBytes ?? Math.min(d.snapshotChunkBytes, Math.floor(msgBytesMax / 2)),
    ),
    onUnreachable: o.onUnreachable,
    onSnapshotStatus: o.onSnapshotStatus,
    logger: o.logger,
    random: o.random ?? Math.random,
  };
  if (resolved.backoff.delayMsMax < resolved.backoff.delayMsMin) {
    throw new RangeError(
      `peer transport: backoff.delayMsMax (${resolved.backoff.delayMsMax}) is below backoff.delayMsMin (${resolved.backoff.delayMsMin})`,
    );
  }
  const envelope = stepEnvelopeBytesMax(resolved.clusterId);
  if (resolved.msgBytesMax < 4 * envelope) {
    throw new RangeError(`peer transport: msgBytesMax (${resolved.msgBytesMax}) leaves no room for messages`);
  }
  if (resolved.snapshotChunkBytes + snapshotChunkOverheadMax > resolved.msgBytesMax) {
    throw new RangeError(
      `peer transport: snapshotChunkBytes (${resolved.snapshotChunkBytes}) plus framing must fit in msgBytesMax (${resolved.msgBytesMax}), ` +
        "the receiver's limit per stream message",
    );
  }
  return resolved;
}
