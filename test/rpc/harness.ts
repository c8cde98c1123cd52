import { createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { ClusterService } from "../../gen/raftkv/v1/cluster_pb.js";
import { KvService } from "../../gen/raftkv/v1/kv_pb.js";
import { createClusterServiceImpl, createKvServiceImpl } from "../../src/rpc/index.js";
import type { Logger, LogLevel } from "../../src/lib/logger.js";
import { FakeNode } from "./fake-node.js";
import type { ValidationLimits } from "../../src/kv/index.js";

/** Records what the services log, so a test can assert that internal errors reach the operator. */
export class MemoryLogger implements Logger {
  readonly lines: { level: LogLevel; fields: object | undefined; message: string }[] = [];
  info(message: string, fields?: object): void {
    this.lines.push({ level: "info", fields, message });
  }
  warn(message: string, fields?: object): void {
    this.lines.push({ level: "warn", fields, message });
  }
  error(message: string, fields?: object): void {
    this.lines.push({ level: "error", fields, message });
  }
}

export interface Harness {
  readonly node: FakeNode;
  readonly kv: Client<typeof KvService>;
  readonly cluster: Client<typeof ClusterService>;
  readonly logger: MemoryLogger;
  readonly shutdown: AbortController;
}

/** KvService and ClusterService over a FakeNode, called in process through a router transport. */
export function createHarness(
  options: {
    node?: FakeNode;
    requestTimeoutMs?: number;
    watchBatchEventsMax?: number;
    admission?: ValidationLimits;
    quotaBytes?: number;
  } = {},
): Harness {
  const node = options.node ?? new FakeNode();
  const logger = new MemoryLogger();
  const shutdown = new AbortController();
  const transport = createRouterTransport((router) => {
    router.service(
      KvService,
      createKvServiceImpl({
        node,
        store: node.store,
        logger,
        requestTimeoutMs: options.requestTimeoutMs ?? 2_000,
        watchersPerConnectionMax: 10,
        watchBatchEventsMax: options.watchBatchEventsMax ?? 100,
        ...(options.admission === undefined ? {} : { admission: options.admission }),
        ...(options.quotaBytes === undefined ? {} : { quotaBytes: options.quotaBytes }),
        shutdown: shutdown.signal,
      }),
    );
    router.service(
      ClusterService,
      createClusterServiceImpl({
        node,
        store: node.store,
        logger,
        requestTimeoutMs: options.requestTimeoutMs ?? 2_000,
        ...(options.quotaBytes === undefined ? {} : { quotaBytes: options.quotaBytes }),
      }),
    );
  });
  return { node, kv: createClient(KvService, transport), cluster: createClient(ClusterService, transport), logger, shutdown };
}

const utf8 = new TextEncoder();
export const bytes = (text: string): Uint8Array => utf8.encode(text);
export const text = (data: Uint8Array | undefined): string => new TextDecoder().decode(data);
