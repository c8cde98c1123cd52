/**
 * The deterministic cluster simulator: run seeds (`runSimulation`, `runSeeds`), the checkers it uses
 * (`SafetyMonitor`, `checkLinearizability`), and its building blocks for targeted tests.
 */
export {
  runSimulation,
  type DiskLossReport,
  type FaultAction,
  type ScriptedFault,
  type SimOptions,
  type SimResult,
  type SimView,
} from "./simulation.js";
export {
  runSeeds,
  formatFailure,
  formatSummary,
  replayCommand,
  nodesForSeed,
  flagArgs,
  flagParams,
  type SeedRange,
  type SimFlags,
  type Summary,
} from "./run-seeds.js";
export {
  probeAnswers,
  durableSummary,
  holdsSomething,
  Incarnations,
  LEARN_RETRY_STEPS,
  LEARN_RETRY_STEPS_MAX,
  type ProbeView,
  type MemberPhase,
} from "./disk-loss.js";
export { drawParams, drawNetwork, drawNodeCount, type SimParams } from "./params.js";
export { checkLinearizability, type LinearizabilityOptions, type LinearizabilityResult } from "./linearizability.js";
export { describeOperation, type KvInput, type KvOutput, type Operation, type Outcome } from "./history.js";
export { SafetyMonitor, entryContent, type LogView, type Violation, type ViolationKind } from "./invariants.js";
export { SimNetwork, cloneMessage, CALM_NETWORK, type NetworkConditions, type NetworkStats } from "./network.js";
export { SimNode, type SimNodeConfig, type SimNodeHooks, type DurableWrite, type UnblockedStats } from "./sim-node.js";
export { KvStateMachine, KvDecodeError, encodeCommand, decodeCommand, type KvCommand, type KvWrite } from "./kv-model.js";
export { Workload, type ClusterPort, type WorkloadConfig, type WorkloadMode, type WorkloadStats } from "./workload.js";
