import { cors as connectCors } from "@connectrpc/connect";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { leaderHeader, leaderIdHeader, reasonHeader } from "../rpc/index.js";

/** How long a browser may cache a preflight answer. */
const preflightMaxAgeSeconds = 7_200;

const allowMethods = [...connectCors.allowedMethods].join(", ");
const allowHeaders = [...connectCors.allowedHeaders].join(", ");
// A browser client must see the gRPC-web status and our hints (the leader to retry at) to act on errors.
const exposeHeaders = [...connectCors.exposedHeaders, leaderHeader, leaderIdHeader, reasonHeader].join(", ");

/**
 * CORS for browser clients (Connect and gRPC-web) on the allowed origins only. An empty list turns CORS
 * off: browsers then refuse cross-origin calls, which is the safe default for an unauthenticated
 * store. `*` allows any origin (no credentials are involved, so the wildcard is honest).
 */
export function registerCors(app: FastifyInstance, origins: readonly string[]): void {
  if (origins.length === 0) return;
  const any = origins.includes("*");
  const allowed = new Set(origins);

  const allowOrigin = (request: FastifyRequest, reply: FastifyReply): boolean => {
    const origin = request.headers.origin;
    if (origin === undefined || (!any && !allowed.has(origin))) return false;
    reply.header("access-control-allow-origin", any ? "*" : origin);
    if (!any) reply.header("vary", "Origin");
    return true;
  };

  // Preflights are answered here, before routing: the Connect routes take every method of their path.
  app.addHook("onRequest", async (request, reply) => {
    const preflight = request.method === "OPTIONS" && request.headers["access-control-request-method"] !== undefined;
    if (!allowOrigin(request, reply)) {
      if (preflight) return reply.code(204).send();
      return;
    }
    if (!preflight) {
      reply.header("access-control-expose-headers", exposeHeaders);
      return;
    }
    return reply
      .code(204)
      .header("access-control-allow-methods", allowMethods)
      .header("access-control-allow-headers", allowHeaders)
      .header("access-control-max-age", String(preflightMaxAgeSeconds))
      .send();
  });
}
