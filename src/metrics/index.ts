export { createMetrics, type MetricsOptions, type Outcome, type RaftRole, type RaftkvMetrics, type SnapshotKind } from "./raftkv-metrics.js";
