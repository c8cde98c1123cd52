import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { createMetrics, type RaftkvMetrics } from "../../src/metrics/index.js";
import {
  buildApp,
  buildGrpcFastPath,
  listenClient,
  type ClientListener,
  type ClientListenerOptions,
  type GrpcFastPath,
} from "../../src/server/index.js";
import { FakeNode } from "../rpc/fake-node.js";

export interface TestServer {
  readonly node: FakeNode;
  readonly app: FastifyInstance;
  readonly listener: ClientListener;
  readonly metrics: RaftkvMetrics;
  readonly shutdown: AbortController;
  readonly url: string;
  close(): Promise<void>;
}

export interface TestServerOptions {
  readonly node?: FakeNode;
  readonly corsOrigins?: readonly string[];
  readonly requestBytesMax?: number;
  readonly watchersPerConnectionMax?: number;
  readonly listener?: ClientListenerOptions;
  /** Sees (and may wrap) the gRPC fast path the listener gets. */
  readonly wrapFastPath?: (fastPath: GrpcFastPath) => GrpcFastPath;
}

/** A client app over a FakeNode, listening on a free loopback port. */
export async function startServer(options: TestServerOptions = {}): Promise<TestServer> {
  const node = options.node ?? new FakeNode();
  const metrics = createMetrics({ processMetrics: false });
  const shutdown = new AbortController();
  const appOptions = {
    node,
    store: node.store,
    metrics,
    logger: pino({ level: "silent" }),
    limits: {
      requestBytesMax: options.requestBytesMax ?? 64 * 1024,
      watchersPerConnectionMax: options.watchersPerConnectionMax ?? 4,
      requestTimeoutMs: 2_000,
      // The admission limits `raftkv serve` passes by default (its flags); the store applies with larger ones.
      keyBytesMax: 4 * 1024,
      valueBytesMax: 1024 * 1024,
      txnOpsMax: 128,
    },
    corsOrigins: options.corsOrigins ?? [],
    shutdown: shutdown.signal,
  };
  const app = await buildApp(appOptions);
  // As `raftkv serve` listens: unary gRPC KvService calls take the fast path, everything else Fastify.
  const listener = await listenClient(
    app,
    { host: "127.0.0.1", port: 0 },
    {
      grpcFastPath: (options.wrapFastPath ?? ((f) => f))(buildGrpcFastPath(appOptions)),
      ...options.listener,
    },
  );
  return {
    node,
    app,
    listener,
    metrics,
    shutdown,
    url: listener.url,
    async close() {
      shutdown.abort();
      await listener.close(500);
      await app.close();
    },
  };
}
