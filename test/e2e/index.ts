/**
 * End-to-end tests of raftkv on real processes and sockets: a 3-node cluster of `raftkv serve` (built
 * on the chaos harness's process management), the clients that talk to it, and a headless browser.
 */
export {
  certainlyNotApplied,
  fastTiming,
  repoRoot,
  retryUnavailable,
  sleep,
  startE2eCluster,
  statusCode,
  waitFor,
  withTimeout,
  type E2eCluster,
  type E2eClusterOptions,
} from "./e2e-cluster.js";
export { chromiumAvailable, chromiumInstallHint, chromiumPath, runPageInChromium } from "./browser.js";
export type { PageApi, PageInput, PageResult } from "./browser-page.js";
export { bundlePage, startPageServer, type PageServer } from "./page-server.js";
export { callRawUnary, createGrpcJsClient, type GrpcJsClient } from "./grpc-js-client.js";
export { bytes, text } from "./bytes.js";
export { Timings } from "./timings.js";
