import { describe, expect, it } from "vitest";
import {
  ConfigError,
  envName,
  formatInitialCluster,
  parseBytes,
  parseInitialCluster,
  resolveServeArgs,
  serveHelp,
  settingSpecs,
  type ServerConfig,
} from "../../src/config/index.js";
import { defaultKvOptions } from "../../src/kv/index.js";

const threeNodes =
  "1=http://127.0.0.1:2380|http://127.0.0.1:2379,2=http://127.0.0.1:22380|http://127.0.0.1:22379,3=http://127.0.0.1:32380|http://127.0.0.1:32379";

function resolve(args: string[], env: Record<string, string> = {}): ServerConfig {
  const result = resolveServeArgs(args, env);
  if (result.kind !== "config") throw new Error("expected a config");
  return result.config;
}

function configError(args: string[], env: Record<string, string> = {}): ConfigError {
  try {
    resolveServeArgs(args, env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("resolveServeArgs", () => {
  it("runs a single local node with no settings at all", () => {
    const config = resolve([]);
    expect(config).toMatchObject({
      id: 1,
      name: "node-1",
      dataDir: "data/node-1",
      clusterId: "raftkv",
      listenPeer: { host: "127.0.0.1", port: 2380 },
      listenClient: { host: "127.0.0.1", port: 2379 },
      advertisePeerUrl: "http://127.0.0.1:2380",
      advertiseClientUrl: "http://127.0.0.1:2379",
      timing: { tickMs: 100, electionTicks: 10, heartbeatTicks: 1 },
      limits: { keyBytesMax: 4096, valueBytesMax: 1048576, requestBytesMax: 2097152, txnOpsMax: 128 },
      logLevel: "info",
      corsOrigins: [],
    });
    expect(config.initialCluster).toEqual([
      { id: 1, name: "node-1", peerUrl: "http://127.0.0.1:2380", clientUrl: "http://127.0.0.1:2379" },
    ]);
  });

  it("takes this node's URLs and listen ports from its initial-cluster entry", () => {
    const config = resolve(["--id", "2", "--initial-cluster", threeNodes]);
    expect(config.advertisePeerUrl).toBe("http://127.0.0.1:22380");
    expect(config.advertiseClientUrl).toBe("http://127.0.0.1:22379");
    expect(config.listenPeer).toEqual({ host: "127.0.0.1", port: 22380 });
    expect(config.listenClient).toEqual({ host: "127.0.0.1", port: 22379 });
    expect(config.initialCluster.map((m) => m.id)).toEqual([1, 2, 3]);
    expect(config.dataDir).toBe("data/node-2");
  });

  it("derives the id from a StatefulSet pod name given by env, as in Kubernetes", () => {
    const cluster = [0, 1, 2].map((o) => `${o + 1}:raftkv-${o}=http://raftkv-${o}.raftkv:2380|http://raftkv-${o}.raftkv:2379`).join(",");
    const env = {
      KUBERNETES_SERVICE_HOST: "10.0.0.1",
      HOSTNAME: "raftkv-2",
      RAFTKV_INITIAL_CLUSTER: cluster,
      RAFTKV_LISTEN_CLIENT: "0.0.0.0:2379",
      RAFTKV_LISTEN_PEER: "0.0.0.0:2380",
      RAFTKV_DATA_DIR: "/var/lib/raftkv",
    };
    const config = resolve([], env);
    expect(config.id).toBe(3);
    expect(config.name).toBe("raftkv-2");
    expect(config.advertiseClientUrl).toBe("http://raftkv-2.raftkv:2379");
    expect(config.listenClient).toEqual({ host: "0.0.0.0", port: 2379 });
    expect(config.dataDir).toBe("/var/lib/raftkv");
  });

  it("ignores a host name ending in a number outside Kubernetes", () => {
    expect(resolve([], { HOSTNAME: "ip-10-0-0-7" }).id).toBe(1);
  });

  it("lets a flag win over its environment variable", () => {
    const config = resolve(["--tick-ms", "50"], { RAFTKV_TICK_MS: "20", RAFTKV_ELECTION_TICKS: "20" });
    expect(config.timing).toEqual({ tickMs: 50, electionTicks: 20, heartbeatTicks: 1, storageStallMs: 5_000 });
  });

  it("reads byte counts with units", () => {
    expect(parseBytes("4KiB")).toBe(4096);
    expect(parseBytes("1MiB")).toBe(1048576);
    expect(parseBytes("2m")).toBe(2097152);
    expect(parseBytes("512")).toBe(512);
    expect(parseBytes("1.5MiB")).toBeUndefined();
    expect(parseBytes("1 parsec")).toBeUndefined();
    const config = resolve(["--value-bytes-max", "64KiB", "--key-bytes-max", "1k"]);
    expect(config.limits.valueBytesMax).toBe(65536);
    expect(config.limits.keyBytesMax).toBe(1024);
  });

  it("caps the admission limits at the limits every replica applies with", () => {
    // The store checks entries at apply with its defaults (never flags, so replicas agree); a flag
    // above them would admit writes that every replica then refuses.
    const config = resolve([
      "--value-bytes-max",
      "3MiB",
      "--key-bytes-max",
      "64KiB",
      "--txn-ops-max",
      "10000",
      "--request-bytes-max",
      "4MiB",
    ]);
    expect(config.limits.valueBytesMax).toBe(defaultKvOptions.valueBytesMax);
    expect(config.limits.keyBytesMax).toBe(defaultKvOptions.keyBytesMax);
    expect(config.limits.txnOpsMax).toBe(defaultKvOptions.txnOpsMax);
  });

  it("accepts CORS origins or *", () => {
    expect(resolve(["--cors-origins", "https://a.example.com,http://localhost:5173"]).corsOrigins).toEqual([
      "https://a.example.com",
      "http://localhost:5173",
    ]);
    expect(resolve(["--cors-origins", "*"]).corsOrigins).toEqual(["*"]);
  });

  it.each([
    [["--id", "0"], "id", "--id (RAFTKV_ID) must be between 1"],
    [["--id", "two"], "id", "must be a whole number"],
    [["--initial-cluster", threeNodes], "id", "--id (RAFTKV_ID) is required"],
    [["--id", "4", "--initial-cluster", threeNodes], "initial-cluster", "has no member with this node's id 4"],
    [["--initial-cluster", "1=http://a:2380"], "initial-cluster", "is not ID[:NAME]=PEER_URL|CLIENT_URL"],
    [["--initial-cluster", "1=http://a:2380|http://a:2379,1=http://b:2380|http://b:2379"], "initial-cluster", "id 1 appears twice"],
    [["--initial-cluster", "1=http://a|http://a:2379"], "initial-cluster", "needs an explicit port"],
    [["--initial-cluster", "1=ftp://a:1|http://a:2379"], "initial-cluster", "http:// or https://"],
    [
      ["--id", "1", "--initial-cluster", threeNodes, "--advertise-client-url", "http://10.0.0.1:2379"],
      "advertise-client-url",
      "make them agree",
    ],
    [["--listen-client", "localhost"], "listen-client", "expected host:port"],
    [["--listen-client", "127.0.0.1:99999"], "listen-client", "port must be between 1 and 65535"],
    [["--listen-client", "127.0.0.1:2380"], "listen-client", "they must differ"],
    [["--election-ticks", "2", "--heartbeat-ticks", "1"], "election-ticks", "at least 3 times"],
    [["--value-bytes-max", "lots"], "value-bytes-max", "byte count like 4096"],
    [["--value-bytes-max", "2MiB"], "request-bytes-max", "so the largest Put fits"],
    [["--value-bytes-max", "4MiB", "--request-bytes-max", "8MiB"], "value-bytes-max", "between 0 and 3145728"],
    [["--key-bytes-max", "65537"], "key-bytes-max", "between 1 and 65536"],
    [["--txn-ops-max", "10001"], "txn-ops-max", "between 1 and 10000"],
    [["--log-level", "loud"], "log-level", "must be one of fatal"],
    [["--cors-origins", "https://a.example.com/path"], "cors-origins", "is not an origin"],
    [["--cors-origins", "*,https://a.example.com"], "cors-origins", "cannot be combined"],
    [["--cluster-id", "a b"], "cluster-id", "must be 1-128 letters"],
    [["--name=-bad"], "name", "must be 1-63 letters"],
    [["--bogus", "1"], "", "Unknown option '--bogus'"],
    [["--join", "cluster:2379"], "join", "is not an http(s) URL with a host"],
    [["--id", "4", "--initial-cluster", threeNodes, "--join", "http://127.0.0.1:2379"], "name", "needs --name"],
  ])("rejects %j naming %s", (args, setting, message) => {
    const error = configError(args);
    expect(error.setting).toBe(setting);
    expect(error.message).toContain(message);
  });

  it("takes --join: a node outside --initial-cluster may start, under its own URLs, to join", () => {
    const config = resolve([
      "--id",
      "4",
      "--name",
      "node-4",
      "--initial-cluster",
      threeNodes,
      "--join",
      "http://127.0.0.1:2379,http://127.0.0.1:22379",
      "--advertise-peer-url",
      "http://127.0.0.1:42380",
      "--advertise-client-url",
      "http://127.0.0.1:42379",
    ]);
    expect(config.join).toEqual(["http://127.0.0.1:2379", "http://127.0.0.1:22379"]);
    expect(config.initialCluster).toEqual([
      { id: 4, name: "node-4", peerUrl: "http://127.0.0.1:42380", clientUrl: "http://127.0.0.1:42379" },
    ]);
    expect(config.promoteLagEntries).toBe(1000);
    expect(resolve([]).join).toEqual([]);
  });

  it("names the environment variable when the bad value came from there", () => {
    expect(configError([], { RAFTKV_TICK_MS: "0" }).message).toContain("RAFTKV_TICK_MS");
  });

  it("answers --help with a text that lists every setting with its variable", () => {
    expect(resolveServeArgs(["--help"], {})).toEqual({ kind: "help" });
    const help = serveHelp();
    for (const spec of settingSpecs) {
      expect(help).toContain(`--${spec.flag} `);
      expect(help).toContain(envName(spec.flag));
    }
    // Defaults and ranges are printed from the values the parser falls back to, never retyped.
    expect(help).toContain("env RAFTKV_KEY_BYTES_MAX; default: 4KiB (allowed: 1 to 64KiB)");
    expect(help).toContain("env RAFTKV_TICK_MS; default: 100 (allowed: 1 to 60000)");
    expect(help).toContain("env RAFTKV_FORWARD_WRITES; default: true");
  });
});

describe("initial cluster format", () => {
  it("round-trips through format and parse, with and without names", () => {
    const text = "2:raftkv-1=http://h1:2380|http://h1:2379,1=http://[::1]:2380|https://h0:2379";
    const members = parseInitialCluster(text);
    expect(members).toEqual([
      { id: 1, name: "node-1", peerUrl: "http://[::1]:2380", clientUrl: "https://h0:2379" },
      { id: 2, name: "raftkv-1", peerUrl: "http://h1:2380", clientUrl: "http://h1:2379" },
    ]);
    if ("error" in members) throw new Error(members.error);
    expect(parseInitialCluster(formatInitialCluster(members))).toEqual(members);
  });
});
