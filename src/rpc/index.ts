export { invalidArgument, toConnectError, type ErrorContext } from "./errors.js";
export {
  errorReason,
  leaderHeader,
  leaderIdHeader,
  reasonContract,
  reasonHeader,
  type ErrorReason,
  type ReasonContract,
} from "./wire-contract.js";
export { createKvServiceImpl, type KvServiceOptions } from "./kv-service.js";
export { createKvUnaryHandlers, type KvReadStore, type KvUnaryHandlers, type KvUnaryOptions } from "./kv-unary.js";
export { servePipeline, pipelineInflightMax } from "./pipeline.js";
export { createClusterServiceImpl, toNodeRole, type ClusterServiceOptions } from "./cluster-service.js";
export { connectionKey, requestSignal } from "./request-context.js";
