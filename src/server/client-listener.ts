import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import type { FastifyInstance } from "fastify";
import { assert } from "../lib/assert.js";
import type { GrpcFastPath } from "./grpc-fast-path.js";

export interface ListenAddress {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
}

export interface ClientListener {
  /** The bound address (with the real port when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** The client URL of this listener, for tests and logs. */
  readonly url: string;
  /**
   * Stops accepting connections, lets open ones finish their requests (HTTP/2 sessions get a GOAWAY,
   * idle HTTP/1.1 connections close), and destroys whatever is still open after `drainTimeoutMs`.
   */
  close(drainTimeoutMs?: number): Promise<void>;
}

export interface ClientListenerOptions {
  /** A connection that sends no byte within this time is dropped. Default 10 s. */
  readonly firstByteTimeoutMs?: number;
  /**
   * An idle connection is closed after this time: HTTP/1.1 keep-alive, and HTTP/2 sessions without
   * frames (closed gracefully: open streams, such as a quiet Watch, finish first). Default 65 s,
   * longer than typical load balancer idle timeouts.
   */
  readonly idleTimeoutMs?: number;
  /** The most concurrent streams (calls) on one HTTP/2 connection. Default 4,096. */
  readonly http2StreamsMax?: number;
  /** Unary gRPC calls it serves itself, before Fastify routing (grpc-fast-path.ts). */
  readonly grpcFastPath?: GrpcFastPath;
}

/** How often a closing listener looks for connections that became idle. */
const drainPollMs = 25;

/** What every HTTP/2 connection starts with (RFC 9113, 3.4); no HTTP/1.x request line starts like it. */
const http2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * Serves the client app on ONE cleartext port for every client: gRPC over HTTP/2 (h2c with prior
 * knowledge, as grpc-go, grpc-js and buf curl speak it), and HTTP/1.1 for Connect, gRPC-web, browsers,
 * Prometheus and kubelet probes.
 *
 * Node cannot do this by itself: `allowHTTP1` needs TLS, where ALPN decides the protocol. Without TLS
 * the only signal is the first bytes, so a plain TCP server reads until they either match the HTTP/2
 * connection preface or diverge from it, puts them back (`unshift`), and hands the socket to an
 * http2 or an http server. Both dispatch into the same Fastify routing, which handles HTTP/1 and
 * HTTP/2 requests alike.
 */
export async function listenClient(
  app: FastifyInstance,
  address: ListenAddress,
  options: ClientListenerOptions = {},
): Promise<ClientListener> {
  await app.ready();
  const handler = (
    request: http.IncomingMessage | http2.Http2ServerRequest,
    response: http.ServerResponse | http2.Http2ServerResponse,
  ): void => app.routing(request as http.IncomingMessage, response as http.ServerResponse);
  const fastPath = options.grpcFastPath;
  const h2Handler = (request: http2.Http2ServerRequest, response: http2.Http2ServerResponse): void => {
    if (fastPath?.handle(request, response) !== true) handler(request, response);
  };
  const firstByteTimeoutMs = options.firstByteTimeoutMs ?? 10_000;

  const idleTimeoutMs = options.idleTimeoutMs ?? 65_000;
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: options.http2StreamsMax ?? 4_096 } }, h2Handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    session.setTimeout(idleTimeoutMs, () => session.close());
  });

  // The HTTP/1.1 server owns the port, so its own bookkeeping (keep-alive and header timeouts,
  // closing idle connections on close) works as usual. Its connection handler is moved behind the
  // sniffer: a connection reaches it only once its first bytes show it is not HTTP/2.
  const h1 = http.createServer(handler);
  h1.keepAliveTimeout = idleTimeoutMs;
  const connectionHandlers = h1.listeners("connection");
  const h1Connection = connectionHandlers[0];
  assert(connectionHandlers.length === 1 && typeof h1Connection === "function", "an http.Server handles connections with one listener");
  h1.removeAllListeners("connection");
  const sniffing = new Set<net.Socket>();
  /**
   * Sockets given to the http2 server. Tracked here because a session that closed gracefully only
   * ends its socket and waits for the peer's FIN, which a client that keeps its connection never sends.
   */
  const http2Sockets = new Set<net.Socket>();

  h1.on("connection", (socket: net.Socket) => {
    sniffing.add(socket);
    let head: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), firstByteTimeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      sniffing.delete(socket);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const onError = (): void => done();
    const onClose = (): void => done();
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const compared = Math.min(head.length, http2Preface.length);
      const isHttp2 = head.subarray(0, compared).equals(http2Preface.subarray(0, compared));
      if (isHttp2 && head.length < http2Preface.length) return; // could still be either: wait for more
      done();
      // Paused so the bytes put back stay buffered until the chosen server reads them: the http2
      // session takes buffered bytes when it starts; the http server reads its first request from
      // the stream's buffer once resumed (later bytes it takes from the socket directly).
      socket.pause();
      socket.unshift(head);
      if (isHttp2) {
        http2Sockets.add(socket);
        socket.once("close", () => http2Sockets.delete(socket));
        h2.emit("connection", socket);
      } else {
        (h1Connection as (socket: net.Socket) => void).call(h1, socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
  });

  await new Promise<void>((resolve, reject) => {
    h1.once("error", reject);
    h1.listen({ host: address.host, port: address.port }, () => {
      h1.off("error", reject);
      resolve();
    });
  });
  const bound = h1.address();
  assert(bound !== null && typeof bound === "object", "a server listening on a port has an address");
  const host = bound.address.includes(":") ? `[${bound.address}]` : bound.address;

  let closing: Promise<void> | undefined;
  return {
    host: bound.address,
    port: bound.port,
    url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host === "[::]" ? "[::1]" : host}:${bound.port}`,
    close(drainTimeoutMs = 5_000) {
      closing ??= (async () => {
        // Stops accepting; the callback runs once every connection, HTTP/1.1 or HTTP/2, has ended.
        const closed = new Promise<void>((resolve) => h1.close(() => resolve()));
        for (const socket of sniffing) socket.destroy();
        for (const session of sessions) session.close();
        let timer: NodeJS.Timeout | undefined;
        // HTTP/1.1 connections close once idle; poll, since their requests finish one by one.
        const poll = setInterval(() => h1.closeIdleConnections(), drainPollMs);
        const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), drainTimeoutMs)));
        if ((await Promise.race([closed, timedOut])) === "timeout") {
          h1.closeAllConnections();
          for (const session of sessions) session.destroy();
          for (const socket of http2Sockets) socket.destroy();
          await closed;
        }
        clearInterval(poll);
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
