import Fastify from "fastify";
import * as net from "node:net";
import type { Message, NodeId, SnapshotRequest } from "../../src/core/index.js";
import { registerRaftService, type RaftServiceOptions } from "../../src/rpc/raft-service.js";
import type { Logger } from "../../src/lib/logger.js";

/** In-process peers, a TCP proxy that can black-hole a link, and a logger that records. */

export interface LogLine {
  readonly level: "info" | "warn" | "error";
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine["level"]) =>
    (msg: string, fields?: object): void =>
      void lines.push({ level, msg, fields: { ...fields } });
  return { lines, info: at("info"), warn: at("warn"), error: at("error") };
}

export interface PeerServer {
  readonly id: NodeId;
  readonly port: number;
  readonly url: string;
  /** Every delivered message, in delivery order. */
  readonly delivered: Message[];
  /** Delivered Step calls (batches). */
  batches: number;
  readonly snapshots: SnapshotRequest[];
  readonly warnings: object[];
  close(): Promise<void>;
}

export interface PeerServerOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly members: readonly NodeId[];
  readonly port?: number;
  readonly msgBytesMax?: number;
  readonly readMsgBytesMax?: number;
  readonly snapshotBytesMax?: number;
  readonly deliverSnapshot?: RaftServiceOptions["deliverSnapshot"];
}

/** A Fastify h2c server on 127.0.0.1 serving RaftService, recording what it receives. */
export async function startPeerServer(o: PeerServerOptions): Promise<PeerServer> {
  // forceCloseConnections: on Node < 24 that is what makes close() end the HTTP/2 sessions clients keep
  // open; without it close() waits for every client to go away (up to http2SessionTimeout, 72 s).
  const app = Fastify({ http2: true, forceCloseConnections: true });
  const delivered: Message[] = [];
  const snapshots: SnapshotRequest[] = [];
  const warnings: object[] = [];
  const server: Omit<PeerServer, "port" | "url"> = {
    id: o.id,
    delivered,
    batches: 0,
    snapshots,
    warnings,
    close: () => app.close(),
  };
  await registerRaftService(app, {
    clusterId: o.clusterId,
    selfId: o.id,
    isMember: (id) => o.members.includes(id),
    checkIncarnation: () => true,
    hasSeen: () => true,
    learnPeerUrl: () => {},
    probeState: () => ({ phase: "running", term: 1, lastIndex: 0, snapshotIndex: 0, incarnation: 1n }),
    deliver: (messages) => {
      server.batches++;
      delivered.push(...messages);
    },
    deliverSnapshot: o.deliverSnapshot ?? (async (m) => void snapshots.push(m)),
    snapshotBytesMax: o.snapshotBytesMax ?? 16 * 1024 * 1024,
    msgBytesMax: o.msgBytesMax ?? 4 * 1024 * 1024,
    ...(o.readMsgBytesMax === undefined ? {} : { readMsgBytesMax: o.readMsgBytesMax }),
    logger: {
      info: () => undefined,
      warn: (_msg, fields) => void warnings.push({ ...fields }),
      error: (_msg, fields) => void warnings.push({ ...fields }),
    },
  });
  await app.listen({ host: "127.0.0.1", port: o.port ?? 0 });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return Object.assign(server, { port: address.port, url: `http://127.0.0.1:${address.port}` });
}

export interface TcpServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Accepts TCP connections and never sends a byte: a peer whose process hangs. */
export async function startSilentServer(): Promise<TcpServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

export interface Proxy extends TcpServer {
  /** Stops forwarding in both directions without closing anything, as if the network dropped every packet. */
  blackhole(): void;
  /** Forwards again (new connections; those opened while black-holed stay dead). */
  heal(): void;
}

/** A TCP proxy to 127.0.0.1:`targetPort` that can silently drop all traffic. */
export async function startProxy(targetPort: number): Promise<Proxy> {
  let dropping = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    const bornDropping = dropping;
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from);
      from.on("error", () => undefined);
      from.on("close", () => {
        sockets.delete(from);
        to.destroy();
      });
      from.on("data", (chunk) => {
        if (!dropping && !bornDropping) to.write(chunk);
      });
    }
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    blackhole: () => void (dropping = true),
    heal: () => void (dropping = false),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") reject(new Error("no TCP address"));
      else resolve(address.port);
    });
  });
}

/** Polls `condition` until it holds; fails with `what` after `timeoutMs` (generous: a bound, not a schedule). */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A heartbeat whose `commit` carries a sequence number, so tests can check order and loss. */
export function numbered(from: NodeId, to: NodeId, seq: number): Message {
  return { type: "heartbeat", from, to, term: 1, commit: seq, readRound: 0 };
}

export function seqs(messages: readonly Message[]): number[] {
  return messages.map((m) => (m.type === "heartbeat" ? m.commit : -1));
}
