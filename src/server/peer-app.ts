import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Http2Server, ServerHttp2Session } from "node:http2";
import { assert } from "../lib/assert.js";
import type { ListenAddress } from "./client-listener.js";

/** Plugs the RaftService routes into the peer app (src/rpc/raft-service.ts provides one). */
export type RegisterPeerRoutes = (app: FastifyInstance<Http2Server>) => void | Promise<void>;

export interface PeerAppOptions {
  readonly logger: FastifyBaseLogger;
  readonly registerRoutes: RegisterPeerRoutes;
}

export type PeerApp = FastifyInstance<Http2Server>;

/**
 * The peer-port application: RaftService only, over HTTP/2 cleartext, which is all the transport
 * speaks. Kept apart from the client port so that a firewall or a NetworkPolicy can open one to
 * clients and the other to members only. Like buildApp it never listens.
 */
export async function buildPeerApp(options: PeerAppOptions): Promise<PeerApp> {
  const app = Fastify({
    http2: true,
    loggerInstance: options.logger,
    logController: new LogController({ disableRequestLogging: true }),
    // Peers keep their connections open for ever; without this close() would wait for each to hang up
    // (it covers HTTP/1.1 sockets; listenPeer destroys the HTTP/2 sessions itself).
    forceCloseConnections: true,
  });
  await options.registerRoutes(app);
  return app;
}

export interface PeerListener {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

export async function listenPeer(app: PeerApp, address: ListenAddress): Promise<PeerListener> {
  // The other members' HTTP/2 sessions stay open while they run (their Step streams never end), and
  // forceCloseConnections does not reach HTTP/2 sessions: close() waited the whole shutdown budget for
  // peers that never hang up, then the process exited 1 (found by the StatefulSet rolling-restart
  // test). By the time the peer port closes the driver has stopped, so the sessions are destroyed; the
  // peers reconnect with backoff when the member comes back.
  const sessions = new Set<ServerHttp2Session>();
  app.server.on("session", (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await app.listen({ host: address.host, port: address.port });
  const bound = app.server.address();
  assert(bound !== null && typeof bound === "object", "a listening peer server has an address");
  const host =
    bound.address === "0.0.0.0" || bound.address === "::"
      ? "127.0.0.1"
      : bound.address.includes(":")
        ? `[${bound.address}]`
        : bound.address;
  return {
    port: bound.port,
    url: `http://${host}:${bound.port}`,
    close: async () => {
      const closing = app.close();
      for (const session of sessions) session.destroy();
      await closing;
    },
  };
}
