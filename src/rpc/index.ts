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
export { createKvServiceImpl, createKvUnaryHandlers, type KvReadStore, type KvServiceOptions, type KvUnaryHandlers, type KvUnaryOptions } from "./kv-service.js";
export { createClusterServiceImpl, toNodeRole, type ClusterServiceOptions } from "./cluster-service.js";
export { connectionKey, requestSignal } from "./request-context.js";
export type { RpcLogger } from "./rpc-logger.js";
