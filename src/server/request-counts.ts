import type { RaftkvMetrics } from "../metrics/index.js";
import type { RequestCounts } from "../rpc/cluster-service.js";

const writeMethods: ReadonlySet<string> = new Set(["Put", "Delete", "Txn"]);
const readMethods: ReadonlySet<string> = new Set(["Get", "Range"]);

/**
 * Client writes and reads answered successfully, read from the `raftkv_rpc_requests_total` counter that
 * /metrics exports: both the Connect routes and the gRPC fast path feed it, and the cluster page then
 * shows the same rates as a Prometheus query over it would.
 */
export function requestCounts(metrics: Pick<RaftkvMetrics, "registry">): () => Promise<RequestCounts> {
  return async () => {
    const counter = metrics.registry.getSingleMetric("raftkv_rpc_requests_total");
    if (counter === undefined) return { writes: 0, reads: 0 };
    let writes = 0;
    let reads = 0;
    for (const { labels, value } of (await counter.get()).values) {
      if (labels.code !== "ok" || typeof labels.method !== "string") continue;
      if (writeMethods.has(labels.method)) writes += value;
      else if (readMethods.has(labels.method)) reads += value;
    }
    return { writes, reads };
  };
}
