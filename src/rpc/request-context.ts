import { createContextKey, type HandlerContext } from "@connectrpc/connect";

/**
 * The client connection a request arrived on (the HTTP/1.1 socket or the HTTP/2 session), as an opaque
 * identity. The server sets it (see src/server); the Watch handler counts streams per connection with
 * it. Undefined when the request did not come over a socket (Fastify inject, in-process transports).
 */
export const connectionKey = createContextKey<object | undefined>(undefined, { description: "raftkv client connection" });

/**
 * The signal a handler passes down to the node: the request's own (client deadline, client gone) and,
 * when the client set no deadline, the server's default, so that no request waits for ever on a
 * proposal or a read barrier that cannot finish (for example during a long partition).
 */
export function requestSignal(context: HandlerContext, defaultTimeoutMs: number): AbortSignal {
  if (context.timeoutMs() !== undefined) return context.signal;
  return AbortSignal.any([context.signal, AbortSignal.timeout(defaultTimeoutMs)]);
}
