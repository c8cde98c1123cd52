import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { KvNode } from "../driver/types.js";

/**
 * Kubernetes probes. /healthz and /livez (liveness): the process works; restarting it would not help a node that
 * merely has no leader. /readyz (readiness): the node can serve now (storage healthy, a leader known),
 * so a Service sends clients elsewhere while it cannot. Both answer 503 with the reason when not.
 */
export function registerHealthRoutes(app: FastifyInstance, node: Pick<KvNode, "health">): void {
  const liveness = async (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const health = node.health();
    return reply.code(health.live ? 200 : 503).send({ status: health.live ? "ok" : "failing", reason: health.reason });
  };
  app.get("/healthz", liveness);
  // /livez is the name Kubernetes' own components use for liveness; same answer.
  app.get("/livez", liveness);
  app.get("/readyz", async (_request, reply) => {
    const health = node.health();
    return reply.code(health.ready ? 200 : 503).send({ status: health.ready ? "ok" : "not ready", reason: health.reason });
  });
}
