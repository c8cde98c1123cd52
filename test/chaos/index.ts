/**
 * The Jepsen-style chaos suite: real raftkv processes under kill -9, SIGSTOP, partitions and latency
 * through per-link TCP proxies, lost disks and membership changes, a recorded client history, and the
 * checkers that judge it.
 */
export { runChaos, type RunResult, type RunStats, type Verdict } from "./run.js";
export { parseCli, rerunCommand, runDefaults, usage, UsageError, type CliOptions, type RunOptions } from "./run-options.js";
export { verdictLine, writeReport } from "./report.js";
export { ChaosCluster, routesMarker, type ClusterOptions, type CrashRecord, type LeaderView } from "./cluster.js";
export { judgeMembership, type MembershipVerdict } from "./check-membership.js";
export { NodeProcess, defaultServeCommand, type NodeLifecycle } from "./node-process.js";
export { ChaosNetwork, linkStates, type NetworkFault } from "./network.js";
export { createTcpProxy, linkHealthy, type LinkMode, type LinkState, type TcpProxy, type TcpProxyStats } from "./tcp-proxy.js";
export {
  partitionCut,
  partitionShapes,
  allLinks,
  cutBetweenGroups,
  nodesWithMajority,
  linkName,
  type DirectedLink,
  type PartitionShape,
} from "./partitions.js";
export {
  planNemesis,
  parseNemesisKinds,
  describeFault,
  nemesisKinds,
  type FaultSpec,
  type MembershipOp,
  type NemesisKind,
  type PlannedFault,
} from "./nemesis-plan.js";
export { NemesisRunner, type NemesisControl, type TimelineEntry } from "./nemesis-runner.js";
export { Workload, KeySpace, RunClock, defaultWorkload, type WorkloadOptions } from "./workload.js";
export { WatchRecorder, replayHistory } from "./watch-recorder.js";
export { checkChaosLinearizability, toSimHistory, ABSENT } from "./check-linearizability.js";
export { checkLostWrites, type FinalRead } from "./check-lost-writes.js";
export { checkExactlyOnce, missingRevisions, type WatchHistory } from "./check-exactly-once.js";
export { checkReplicas } from "./check-replicas.js";
export { renderTimelineSvg } from "./timeline-svg.js";
export { startReaper, type Reaper } from "./reaper.js";
export { freePorts } from "./free-ports.js";
export {
  historyStats,
  describeChaosOp,
  type ChaosOp,
  type ChaosOutcome,
  type ChaosOutput,
  type HistoryStats,
  type OpKind,
  type WatchRecord,
} from "./history.js";
export type { Violation, ViolationKind } from "./violation.js";
