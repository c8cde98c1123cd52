import { Code, ConnectError } from "@connectrpc/connect";
import type { GrpcTransportOptions } from "@connectrpc/connect-node";
import type * as http2 from "node:http2";

/** What Connect's Node clients need of an HTTP/2 session (the package does not export the name). */
export type SessionManager = NonNullable<GrpcTransportOptions["sessionManager"]>;

/**
 * Keeps pipelined calls in order on the wire. HTTP/2 multiplexes the streams of one connection: when
 * several large requests are written at once, their DATA frames interleave (flow control lets each
 * stream send a window's worth in turn), a later, smaller request can finish first, and the receiver
 * then steps batches out of order. Raft tolerates that, but a follower that sees appends out of order
 * rejects them and the leader falls back to probing, which costs far more than it saves; the transport
 * benchmark saw about a quarter of the appends overtaken without this.
 *
 * So a call on an ordered path opens its stream only once the previous ordered call has written its
 * whole request. Responses still overlap: up to inflightStepsMax calls wait for their acknowledgements
 * at once, which is what hides the round trip and the receiver's decoding. Other paths (the snapshot
 * stream) are not gated, so a long snapshot never holds back heartbeats.
 */
/**
 * The longest a call waits for the call before it to finish writing: a little over the default Step
 * deadline, after which that call has failed anyway.
 */
const orderWaitMsMax = 2_500;

export function orderedSessionManager(
  inner: SessionManager,
  isOrdered: (path: string) => boolean,
  /** Once true, no new stream is opened: a call that waited its turn past close() must not reconnect. */
  isClosed: () => boolean,
): SessionManager {
  /** Settles when the last ordered stream so far has written its request, or died. Never rejects. */
  let previousWritten: Promise<void> = Promise.resolve();
  const guarded = new WeakSet<http2.Http2Session>();

  /**
   * connect-node's Http2SessionManager removes its 'error' listener from a connection it has moved
   * on from, yet a keepalive PING timeout armed on that connection can still destroy it with an error
   * afterwards: with no listener left, Node throws it and the process dies (seen in the chaos suite
   * and in CI). Every connection we use keeps one listener of its own; the failure itself reaches us
   * through the calls on it, which fail and send the link into backoff.
   */
  function guard(stream: http2.ClientHttp2Stream): http2.ClientHttp2Stream {
    const session = stream.session;
    if (session !== undefined && !guarded.has(session)) {
      guarded.add(session);
      session.on("error", () => undefined);
    }
    return stream;
  }

  return {
    get authority() {
      return inner.authority;
    },
    async request(method: string, path: string, headers: http2.OutgoingHttpHeaders, options: Omit<http2.ClientSessionRequestOptions, "signal">) {
      if (isClosed()) throw new ConnectError("the peer link is closed", Code.Canceled);
      if (!isOrdered(path)) return guard(await inner.request(method, path, headers, options));
      const waitFor = previousWritten;
      let written: () => void = () => undefined;
      previousWritten = new Promise((resolve) => (written = resolve));
      await waitFor;
      let stream: http2.ClientHttp2Stream;
      try {
        if (isClosed()) throw new ConnectError("the peer link is closed", Code.Canceled);
        stream = await inner.request(method, path, headers, options);
      } catch (e) {
        written();
        throw e;
      }
      // "finish": the request body went out; "close": the stream ended some other way (reset, deadline,
      // connection lost). Either way the next call may go. The stream may already be done by the time
      // we get here (its session died in between), and a stream can stall unwritten on a peer that
      // stopped reading; neither may hold back the calls behind it for longer than a call lives.
      guard(stream);
      if (stream.destroyed || stream.closed || stream.writableFinished) written();
      stream.once("finish", written);
      stream.once("close", written);
      const stalled = setTimeout(written, orderWaitMsMax);
      stalled.unref();
      stream.once("close", () => clearTimeout(stalled));
      return stream;
    },
    notifyResponseByteRead(stream: http2.ClientHttp2Stream) {
      inner.notifyResponseByteRead(stream);
    },
  };
}
