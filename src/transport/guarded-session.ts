import { Code, ConnectError } from "@connectrpc/connect";
import type { GrpcTransportOptions } from "@connectrpc/connect-node";
import type * as http2 from "node:http2";

/** What Connect's Node clients need of an HTTP/2 session (the package does not export the name). */
export type SessionManager = NonNullable<GrpcTransportOptions["sessionManager"]>;

/**
 * Wraps connect-node's session manager for a peer link:
 *
 * - connect-node's Http2SessionManager removes its 'error' listener from a connection it has moved on
 *   from, yet a keepalive PING timeout armed on that connection can still destroy it with an error
 *   afterwards: with no listener left, Node throws it and the process dies (seen in the chaos suite and
 *   in CI). Every connection we use keeps one listener of its own; the failure itself reaches us through
 *   the streams on it, which fail and send the link into backoff.
 * - Once the link is closed no new stream is opened, so a call racing close() cannot reconnect.
 */
export function guardedSessionManager(inner: SessionManager, isClosed: () => boolean): SessionManager {
  const guarded = new WeakSet<http2.Http2Session>();
  return {
    get authority() {
      return inner.authority;
    },
    async request(
      method: string,
      path: string,
      headers: http2.OutgoingHttpHeaders,
      options: Omit<http2.ClientSessionRequestOptions, "signal">,
    ) {
      if (isClosed()) throw new ConnectError("the peer link is closed", Code.Canceled);
      const stream = await inner.request(method, path, headers, options);
      const session = stream.session;
      if (session !== undefined && !guarded.has(session)) {
        guarded.add(session);
        session.on("error", () => undefined);
      }
      return stream;
    },
    notifyResponseByteRead(stream: http2.ClientHttp2Stream) {
      inner.notifyResponseByteRead(stream);
    },
  };
}
