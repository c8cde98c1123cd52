import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type Health,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import { KvService } from "../../gen/raftkv/v1/kv_pb.js";
import type { KvNode } from "../driver/types.js";
import { sleep } from "../lib/sleep.js";

export interface HealthServiceOptions {
  readonly node: Pick<KvNode, "health">;
  /** Aborted when the node starts shutting down: Watch streams send NOT_SERVING and end. */
  readonly shutdown: AbortSignal;
  /** How often a Watch stream looks at the node's health. Default 1 s. */
  readonly pollMs?: number;
}

/**
 * The services a client may ask about: "" is the server as a whole (what Kubernetes' grpc probe asks
 * by default), and the key-value API, which is what a load balancer routes. Both follow readiness.
 */
const knownServices: ReadonlySet<string> = new Set(["", KvService.typeName]);

/**
 * grpc.health.v1.Health over a node. A service is SERVING exactly when /readyz answers 200
 * (`node.health().ready`: storage healthy, a leader known), NOT_SERVING otherwise, so gRPC probes, load
 * balancers and HTTP probes never disagree.
 *
 * Watch polls rather than subscribing: readiness is derived from several pieces of driver state with
 * no change event of their own, and one look per second per stream is cheap and bounds how stale a
 * watcher can be.
 */
export function createHealthServiceImpl(options: HealthServiceOptions): ServiceImpl<typeof Health> {
  const { node, shutdown } = options;
  const pollMs = options.pollMs ?? 1_000;

  const current = (service: string): ServingStatus => {
    if (!knownServices.has(service)) return ServingStatus.SERVICE_UNKNOWN;
    if (shutdown.aborted) return ServingStatus.NOT_SERVING;
    return node.health().ready ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  const response = (status: ServingStatus): HealthCheckResponse => create(HealthCheckResponseSchema, { status });

  return {
    check(request: HealthCheckRequest): HealthCheckResponse {
      const status = current(request.service);
      // The protocol answers an unknown service with NOT_FOUND on Check (and SERVICE_UNKNOWN on Watch).
      if (status === ServingStatus.SERVICE_UNKNOWN) throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
      return response(status);
    },

    async *watch(request: HealthCheckRequest, context: HandlerContext): AsyncIterable<HealthCheckResponse> {
      const stop = AbortSignal.any([context.signal, shutdown]);
      let sent: ServingStatus | undefined;
      while (!context.signal.aborted) {
        const status = current(request.service);
        if (status !== sent) {
          sent = status;
          yield response(status);
        }
        // Shutting down: the last message above said NOT_SERVING (for a known service); end the stream
        // so the client reconnects elsewhere instead of waiting on a node that is going away.
        if (shutdown.aborted) return;
        await sleep(pollMs, stop);
      }
    },
  };
}
