import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createRaftkvClient } from "../../src/rpc/client/index.js";

/**
 * The two systems under test behind one interface, driven by one client: @grpc/grpc-js unary calls
 * whose (de)serializers come from the .proto files through @grpc/proto-loader (raftkv's own protos,
 * and bench/etcd/rpc.proto for etcd). Same library, same channels, same options for both, so the
 * client's own cost is the same on both sides of the comparison.
 */

type Method = protoLoader.MethodDefinition<object, object>;
type Reply = Record<string, unknown>;

/** longs as strings: etcd member ids are 64-bit and would lose bits as numbers. */
const loaderOptions: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true };

/** A call that has not answered by then counts as an error (a stuck call must not stall a cell). */
const callTimeoutMs = 10_000;

/** One server's client URL and its grpc-js channels: one by default, a small pool with --channels. */
export class Endpoint {
  readonly clients: readonly grpc.Client[];

  constructor(
    readonly url: string,
    channels: number,
  ) {
    const target = new URL(url).host;
    // A local subchannel pool per client: otherwise grpc-js shares one connection among the clients
    // of a target, and a pool of channels would still be one TCP connection.
    this.clients = Array.from(
      { length: channels },
      () => new grpc.Client(target, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
    );
  }

  get first(): grpc.Client {
    const [client] = this.clients;
    if (client === undefined) throw new Error(`endpoint ${this.url} has no channel`);
    return client;
  }

  close(): void {
    for (const client of this.clients) client.close();
  }
}

export function unary(client: grpc.Client, method: Method, request: object, timeoutMs = callTimeoutMs): Promise<Reply> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      { deadline: Date.now() + timeoutMs },
      (error, reply) =>
        error !== null ? reject(error) : reply === undefined ? reject(new Error(`${method.path}: empty reply`)) : resolve(reply as Reply),
    );
  });
}

/** "UNAVAILABLE", "DEADLINE_EXCEEDED", ... for a grpc-js error; "OTHER" for anything else. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "number" && grpc.status[code] !== undefined ? grpc.status[code] : "OTHER";
}

export type SystemName = "raftkv" | "raftkv-pipeline" | "etcd";

export interface KvSystem {
  readonly name: SystemName;
  put(client: grpc.Client, key: Buffer, value: Buffer): Promise<void>;
  /** A linearizable read of one key; resolves to whether the key had a value. */
  get(client: grpc.Client, key: Buffer): Promise<boolean>;
  /** The endpoint that is the leader right now (every endpoint is asked), or undefined. */
  findLeader(endpoints: readonly Endpoint[]): Promise<Endpoint | undefined>;
}

function methodsOf(definition: protoLoader.PackageDefinition, service: string): Record<string, Method> {
  const found = definition[service];
  if (found === undefined || "format" in found) throw new Error(`no service ${service} in the loaded protos`);
  return found as Record<string, Method>;
}

function method(methods: Record<string, Method>, name: string): Method {
  const found = methods[name];
  if (found === undefined) throw new Error(`no method ${name}`);
  return found;
}

/** Asks every endpoint at once; a node that does not answer is just not the leader. */
async function firstMatching(endpoints: readonly Endpoint[], ask: (endpoint: Endpoint) => Promise<boolean>): Promise<Endpoint | undefined> {
  const answers = await Promise.all(endpoints.map((endpoint) => ask(endpoint).catch(() => false)));
  return endpoints.find((_, i) => answers[i] === true);
}

export function raftkvSystem(repoRoot: string): KvSystem {
  const definition = protoLoader.loadSync(["raftkv/v1/kv.proto", "raftkv/v1/cluster.proto"], {
    ...loaderOptions,
    includeDirs: [join(repoRoot, "proto")],
  });
  const kv = methodsOf(definition, "raftkv.v1.KvService");
  const cluster = methodsOf(definition, "raftkv.v1.ClusterService");
  const [put, get, status] = [method(kv, "Put"), method(kv, "Get"), method(cluster, "Status")];
  return {
    name: "raftkv",
    put: async (client, key, value) => {
      await unary(client, put, { key, value });
    },
    get: async (client, key) => (await unary(client, get, { key, serializable: false })).kv != null,
    findLeader: (endpoints) =>
      firstMatching(endpoints, async (endpoint) => {
        const reply = await unary(endpoint.first, status, {}, 1_000);
        return (reply.status as Reply | undefined)?.role === "NODE_ROLE_LEADER";
      }),
  };
}

export function etcdSystem(benchDir: string): KvSystem {
  const definition = protoLoader.loadSync("etcd/rpc.proto", { ...loaderOptions, includeDirs: [benchDir] });
  const kv = methodsOf(definition, "etcdserverpb.KV");
  const maintenance = methodsOf(definition, "etcdserverpb.Maintenance");
  const [put, range, status] = [method(kv, "Put"), method(kv, "Range"), method(maintenance, "Status")];
  return {
    name: "etcd",
    put: async (client, key, value) => {
      await unary(client, put, { key, value });
    },
    get: async (client, key) => {
      const kvs = (await unary(client, range, { key, serializable: false })).kvs;
      return Array.isArray(kvs) && kvs.length > 0;
    },
    findLeader: (endpoints) =>
      firstMatching(endpoints, async (endpoint) => {
        const reply = await unary(endpoint.first, status, {}, 1_000);
        // Every member names the leader by member id; the leader is the one that names itself.
        const self = (reply.header as Reply | undefined)?.member_id;
        return typeof reply.leader === "string" && reply.leader !== "0" && reply.leader === self;
      }),
  };
}

/**
 * raftkv through its own pipelined client (KvService.Pipeline, the bundled client's pipeline()): every
 * request of a cell rides one stream to the leader. The grpc-js channel a worker is handed is unused.
 */
export function raftkvPipelineSystem(leaderUrl: string): KvSystem & { close(): Promise<void> } {
  const client = createRaftkvClient({ endpoints: [leaderUrl] });
  const pipeline = client.pipeline();
  return {
    name: "raftkv-pipeline",
    put: async (_client, key, value) => {
      await pipeline.put({ key, value });
    },
    get: async (_client, key) => (await pipeline.get({ key })).kv !== undefined,
    findLeader: async (endpoints) => endpoints.find((e) => e.url === leaderUrl),
    async close() {
      await pipeline.close();
      client.close();
    },
  };
}
