import type { FastifyInstance } from "fastify";
import type { KvNode } from "../driver/types.js";
import type { RaftkvMetrics } from "../metrics/index.js";

/**
 * GET /metrics in the Prometheus text format. The Raft gauges are refreshed from the node's status at
 * scrape time, so they are right even between the driver's own updates.
 */
export function registerMetricsRoute(app: FastifyInstance, metrics: RaftkvMetrics, node: Pick<KvNode, "status">): void {
  app.get("/metrics", async (_request, reply) => {
    const status = node.status();
    metrics.raftState(status.role, status.term, status.leader);
    metrics.raftIndexes(status.commitIndex, status.appliedIndex);
    const { contentType, body } = await metrics.render();
    return reply.header("content-type", contentType).send(body);
  });
}
