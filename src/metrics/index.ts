export {
  createMetrics,
  raftRoles,
  type MetricsOptions,
  type NodeSample,
  type Outcome,
  type RaftRole,
  type RaftkvMetrics,
  type SnapshotKind,
} from "./raftkv-metrics.js";
