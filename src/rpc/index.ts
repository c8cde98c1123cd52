export {
  errorReason,
  invalidArgument,
  leaderHeader,
  leaderIdHeader,
  reasonHeader,
  toConnectError,
  type ErrorContext,
  type ErrorReason,
} from "./errors.js";
export { createKvServiceImpl, type KvServiceOptions } from "./kv-service.js";
export { createKvUnaryHandlers, type KvReadStore, type KvUnaryHandlers, type KvUnaryOptions } from "./kv-unary.js";
export { servePipeline, pipelineInflightMax } from "./pipeline.js";
export { createClusterServiceImpl, toNodeRole, type ClusterServiceOptions } from "./cluster-service.js";
export { connectionKey, requestSignal } from "./request-context.js";
