import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import { createContextValues } from "@connectrpc/connect";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from "fastify";
import type { KvNode } from "../driver/types.js";
import type { RaftkvMetrics } from "../metrics/index.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ClusterService } from "../../gen/raftkv/v1/cluster_pb.js";
import { KvService } from "../../gen/raftkv/v1/kv_pb.js";
import { MaintenanceService } from "../../gen/raftkv/v1/maintenance_pb.js";
import {
  connectionKey,
  createClusterServiceImpl,
  createKvServiceImpl,
  createKvUnaryHandlers,
  type KvReadStore,
  type KvUnaryHandlers,
  type KvUnaryOptions,
} from "../rpc/index.js";
import { createGrpcFastPath, type GrpcFastPath } from "./grpc-fast-path.js";
import { registerCors } from "./cors.js";
import { registerClusterPage } from "./cluster-page-route.js";
import { createDataSize } from "./data-size.js";
import { registerHealthRoutes } from "./health-routes.js";
import { startLeaderHistory } from "./leader-history.js";
import { registerMetricsRoute } from "./metrics-route.js";
import { packageVersion } from "./package-info.js";
import { requestCounts } from "./request-counts.js";
import { rpcMetricsInterceptor } from "./rpc-metrics.js";
import { createHealthServiceImpl } from "../rpc/health-service.js";
import { createMaintenanceServiceImpl, type SnapshotSource } from "../rpc/maintenance-service.js";
import { createMemberStatusClient } from "../rpc/member-status-client.js";
import { fromPino } from "../lib/logger.js";

export interface AppLimits {
  /** The largest request message (Connect readMaxBytes); larger ones get ResourceExhausted. */
  readonly requestBytesMax: number;
  readonly watchersPerConnectionMax: number;
  readonly requestTimeoutMs: number;
  /** The most events one Watch message carries. Default 1,000. */
  readonly watchBatchEventsMax?: number;
  /** Admission limits of requests (see KvServiceOptions.admission); the store's limits when absent. */
  readonly keyBytesMax?: number;
  readonly valueBytesMax?: number;
  readonly txnOpsMax?: number;
  /** The space quota on the store's keys and values (see KvUnaryOptions.quotaBytes); none when absent. */
  readonly quotaBytes?: number;
}

export interface AppOptions {
  readonly node: KvNode;
  readonly store: KvReadStore & SnapshotSource;
  readonly metrics: RaftkvMetrics;
  readonly logger: FastifyBaseLogger;
  readonly limits: AppLimits;
  /** Browser origins allowed to call; `["*"]` for any; empty for none. */
  readonly corsOrigins: readonly string[];
  /** Aborted when the node starts shutting down: Watch streams end with `canceled`. */
  readonly shutdown: AbortSignal;
  /** Hands a follower's writes to the leader (--forward-writes); absent: followers answer not-leader. */
  readonly forwardWrite?: NonNullable<KvUnaryOptions["forwardWrite"]>;
  /** The node's data directory, whose size ClusterService.Status reports (0 without it). */
  readonly dataDir?: string;
}

/**
 * The client-port application: KvService, ClusterService and grpc.health.v1.Health (Connect, gRPC,
 * gRPC-web), the cluster page at /, /metrics, /healthz, /livez, /readyz and CORS, each a small plugin.
 * It never listens: `listenClient` serves it on a port, tests call `inject()`. Draining on shutdown is
 * the listener's job (`ClientListener.close`), so that one deadline covers every connection, HTTP/1.1
 * and HTTP/2 alike.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: options.logger, logController: new LogController({ disableRequestLogging: true }) });
  registerCors(app, options.corsOrigins);
  registerHealthRoutes(app, options.node);
  registerMetricsRoute(app, options.metrics, options.node);
  registerClusterPage(app);
  const leaderHistory = startLeaderHistory(options.node);
  const members = createMemberStatusClient();
  const stopClusterViews = (): void => {
    leaderHistory.stop();
    members.close();
  };
  options.shutdown.addEventListener("abort", stopClusterViews, { once: true });
  app.addHook("onClose", async () => stopClusterViews());
  const rpcLogger = fromPino(options.logger.child({ component: "rpc" }));
  await app.register(fastifyConnectPlugin, {
    readMaxBytes: options.limits.requestBytesMax,
    interceptors: [rpcMetricsInterceptor(options.metrics)],
    contextValues: (request: FastifyRequest) => createContextValues().set(connectionKey, connectionOf(request)),
    routes(router) {
      router.service(
        KvService,
        createKvServiceImpl({
          node: options.node,
          store: options.store,
          logger: rpcLogger,
          requestTimeoutMs: options.limits.requestTimeoutMs,
          watchersPerConnectionMax: options.limits.watchersPerConnectionMax,
          admission: admissionLimits(options),
          watchBatchEventsMax: options.limits.watchBatchEventsMax ?? 1_000,
          shutdown: options.shutdown,
          onWatchers: (delta) => options.metrics.watchers(delta),
          ...(options.forwardWrite === undefined ? {} : { forwardWrite: options.forwardWrite }),
          ...(options.limits.quotaBytes === undefined ? {} : { quotaBytes: options.limits.quotaBytes }),
        }),
      );
      router.service(
        ClusterService,
        createClusterServiceImpl({
          node: options.node,
          store: options.store,
          logger: rpcLogger,
          requestTimeoutMs: options.limits.requestTimeoutMs,
          ...(options.limits.quotaBytes === undefined ? {} : { quotaBytes: options.limits.quotaBytes }),
          version: packageVersion(),
          ...(options.dataDir === undefined ? {} : { dataBytes: createDataSize(options.dataDir) }),
          requestCounts: requestCounts(options.metrics),
          leaderChanges: () => leaderHistory.changes(),
          memberStatus: (member, signal) => members.status(member, signal),
        }),
      );
      router.service(
        MaintenanceService,
        createMaintenanceServiceImpl({
          node: options.node,
          store: options.store,
          logger: rpcLogger,
          requestTimeoutMs: options.limits.requestTimeoutMs,
        }),
      );
    },
  });
  // The gRPC health service in a registration of its own, outside the RPC metrics interceptor: probes
  // every few seconds would swamp the client RPC counts, and its Watch would share the method label of
  // KvService's Watch.
  await app.register(fastifyConnectPlugin, {
    readMaxBytes: options.limits.requestBytesMax,
    routes(router) {
      router.service(Health, createHealthServiceImpl({ node: options.node, shutdown: options.shutdown }));
    },
  });
  return app;
}

/**
 * The gRPC fast path for the client listener (grpc-fast-path.ts), over the same node, store, limits and
 * metrics as the app's KvService routes.
 */
export function buildGrpcFastPath(options: AppOptions): GrpcFastPath {
  return createGrpcFastPath({
    handlers: unaryHandlers(options),
    metrics: options.metrics,
    requestBytesMax: options.limits.requestBytesMax,
    requestTimeoutMs: options.limits.requestTimeoutMs,
  });
}

/**
 * What RaftService.Forward runs on the leader: the client port's own validation, proposals and error
 * mapping, built without forwarding so that a forwarded write is never forwarded again.
 */
export function buildForwardedWrites(options: AppOptions): KvUnaryHandlers {
  const { forwardWrite: _never, ...local } = options;
  return unaryHandlers(local);
}

function unaryHandlers(options: AppOptions): KvUnaryHandlers {
  return createKvUnaryHandlers({
    node: options.node,
    store: options.store,
    logger: fromPino(options.logger.child({ component: "rpc" })),
    admission: admissionLimits(options),
    ...(options.forwardWrite === undefined ? {} : { forwardWrite: options.forwardWrite }),
    ...(options.limits.quotaBytes === undefined ? {} : { quotaBytes: options.limits.quotaBytes }),
  });
}

/** What this node admits into a proposal: the flags, or the store's own limits. */
function admissionLimits(options: AppOptions): NonNullable<KvUnaryOptions["admission"]> {
  return {
    keyBytesMax: options.limits.keyBytesMax ?? options.store.options.keyBytesMax,
    valueBytesMax: options.limits.valueBytesMax ?? options.store.options.valueBytesMax,
    txnOpsMax: options.limits.txnOpsMax ?? options.store.options.txnOpsMax,
    clientIdBytesMax: options.store.options.clientIdBytesMax,
  };
}

/**
 * The connection a request came on: the HTTP/2 session (one per client connection, shared by its
 * streams) or the HTTP/1.1 socket. Undefined under inject(), which has neither.
 */
function connectionOf(request: FastifyRequest): object | undefined {
  const raw = request.raw as { stream?: { session?: object }; socket?: object | null };
  return raw.stream?.session ?? raw.socket ?? undefined;
}
