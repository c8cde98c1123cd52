export {
  RaftkvCallError,
  createRaftkvClient,
  normalizeEndpoint,
  type CallOptions,
  type ClientProtocol,
  type EndpointStatus,
  type RaftkvClient,
  type RaftkvClientOptions,
} from "./raftkv-client.js";
export { SessionPool, type Session } from "./session-pool.js";
export { PipelineCallError, pipelineClientInflightMax, type KvPipeline } from "./pipeline-client.js";
