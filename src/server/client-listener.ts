import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { FastifyInstance } from "fastify";
import { assert } from "../lib/assert.js";

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
  /** HTTP/1.1 keep-alive timeout. Default 65 s (longer than typical load balancer idle timeouts). */
  readonly keepAliveTimeoutMs?: number;
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
export async function listenClient(app: FastifyInstance, address: ListenAddress, options: ClientListenerOptions = {}): Promise<ClientListener> {
  await app.ready();
  const handler = (request: http.IncomingMessage | http2.Http2ServerRequest, response: http.ServerResponse | http2.Http2ServerResponse): void =>
    app.routing(request as http.IncomingMessage, response as http.ServerResponse);
  const firstByteTimeoutMs = options.firstByteTimeoutMs ?? 10_000;

  const h1 = http.createServer(handler);
  h1.keepAliveTimeout = options.keepAliveTimeoutMs ?? 65_000;
  const h2 = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const sniffing = new Set<net.Socket>();
  /** Sockets handed to h1 or h2, until they close. */
  const served = new Set<net.Socket>();

  const tcp = net.createServer((socket) => {
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
      socket.pause();
      socket.unshift(head);
      served.add(socket);
      socket.once("close", () => served.delete(socket));
      (isHttp2 ? h2 : h1).emit("connection", socket);
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
  });

  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen({ host: address.host, port: address.port }, () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  const bound = tcp.address();
  assert(bound !== null && typeof bound === "object", "a TCP server listening on a port has an address");
  const host = bound.address.includes(":") ? `[${bound.address}]` : bound.address;

  let closing: Promise<void> | undefined;
  return {
    host: bound.address,
    port: bound.port,
    url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host === "[::]" ? "[::1]" : host}:${bound.port}`,
    close(drainTimeoutMs = 5_000) {
      closing ??= (async () => {
        tcp.close();
        for (const socket of sniffing) socket.destroy();
        for (const session of sessions) session.close();
        // HTTP/1.1 connections close as soon as they are idle; poll, since requests finish one by one.
        const deadline = Date.now() + drainTimeoutMs;
        while (served.size > 0 && Date.now() < deadline) {
          h1.closeIdleConnections();
          await new Promise((resolve) => setTimeout(resolve, drainPollMs));
        }
        for (const session of sessions) session.destroy();
        for (const socket of served) socket.destroy();
      })();
      return closing;
    },
  };
}
