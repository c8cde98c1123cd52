import { parseArgs } from "node:util";
import { join } from "node:path";
import { formatHostPort, parseHostPort, parseServiceUrl, urlForListenAddress, type HostPort } from "./addresses.js";
import { ConfigError } from "./config-error.js";
import { defaultMemberName, parseInitialCluster, type InitialMember } from "./initial-cluster.js";
import { GiB, KiB, MiB, describeSetting, envName, settingDefault, settingSpecs, type SettingFlag, type SettingFlagOf } from "./settings.js";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
const logLevels: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export interface TimingConfig {
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** A log write not on disk after this long makes the node not ready (and a leader step aside). */
  readonly storageStallMs: number;
}

export interface LimitsConfig {
  readonly keyBytesMax: number;
  readonly valueBytesMax: number;
  readonly requestBytesMax: number;
  readonly txnOpsMax: number;
  /** The space quota on the store's keys and values. */
  readonly quotaBytes: number;
  readonly watchersPerConnectionMax: number;
  readonly requestTimeoutMs: number;
}

/** Everything `raftkv serve` needs, validated. */
export interface ServerConfig {
  readonly id: number;
  readonly name: string;
  readonly dataDir: string;
  readonly clusterId: string;
  readonly listenPeer: HostPort;
  readonly listenClient: HostPort;
  readonly advertisePeerUrl: string;
  readonly advertiseClientUrl: string;
  /** Sorted by id; contains this node. */
  readonly initialCluster: readonly InitialMember[];
  readonly timing: TimingConfig;
  /** When to take a snapshot and how much log to keep below it. */
  readonly snapshots: { readonly entries: number; readonly bytes: number; readonly retainEntries: number };
  readonly limits: LimitsConfig;
  readonly shutdownTimeoutMs: number;
  readonly logLevel: LogLevel;
  /** Allowed browser origins; `["*"]` allows any; empty disables CORS. */
  readonly corsOrigins: readonly string[];
  /** Whether followers forward writes to the leader instead of answering not-leader. */
  readonly forwardWrites: boolean;
  /** Client URLs of a running cluster to join (`--join`); empty: never join. */
  readonly join: readonly string[];
  /** The leader promotes a learner only within this many entries of its log. */
  readonly promoteLagEntries: number;
}

export type ServeArgs = { readonly kind: "help" } | { readonly kind: "config"; readonly config: ServerConfig };

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * The largest --request-bytes-max. Every node reads peer messages up to what a leader with this
 * setting could send, whatever its own setting: a follower that read less would refuse an admitted
 * entry for good and stall replication during a rolling change of the flag.
 */
export const requestBytesMaxCeiling = settingDefault<"bytes">("request-bytes-max").max;

/**
 * Reads `raftkv serve` flags, then RAFTKV_* environment variables, then defaults (a flag wins over
 * its variable). Throws ConfigError naming the setting on anything it cannot use.
 */
export function resolveServeArgs(args: readonly string[], env: Env): ServeArgs {
  const raw = readRawSettings(args, env);
  if (raw === "help") return { kind: "help" };
  return { kind: "config", config: resolveServerConfig(raw, env) };
}

type RawSettings = Partial<Record<SettingFlag, string>>;

function readRawSettings(args: readonly string[], env: Env): RawSettings | "help" {
  const options: Record<string, { type: "string" } | { type: "boolean"; short?: string }> = { help: { type: "boolean", short: "h" } };
  for (const spec of settingSpecs) options[spec.flag] = { type: "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new ConfigError("", `${error instanceof Error ? error.message : String(error)}; see raftkv serve --help`);
  }
  if (values.help === true) return "help";
  const raw: RawSettings = {};
  for (const spec of settingSpecs) {
    const value = values[spec.flag] ?? env[envName(spec.flag)];
    if (typeof value === "string" && value.trim() !== "") raw[spec.flag] = value.trim();
  }
  return raw;
}

function resolveServerConfig(raw: RawSettings, env: Env): ServerConfig {
  const initial =
    raw["initial-cluster"] === undefined ? undefined : parseOrThrow("initial-cluster", parseInitialCluster(raw["initial-cluster"]));
  const { id, name } = resolveIdentity(raw, env, initial);

  const joinEndpoints = joinUrls(raw);
  const self = initial?.find((m) => m.id === id);
  const podName = env.KUBERNETES_SERVICE_HOST !== undefined && env.HOSTNAME !== undefined && env.HOSTNAME !== "";
  if (joinEndpoints.length > 0 && raw.name === undefined && !podName && self === undefined) {
    // Its id comes from the cluster, so the default name (node-ID) would name it after an id it may not get.
    throw new ConfigError(
      "name",
      `${describeSetting("join")} needs ${describeSetting("name")}: the member list shows a joined node by name`,
    );
  }
  // A node that joins a running cluster need not be one of its founding members.
  if (initial !== undefined && self === undefined && joinEndpoints.length === 0) {
    throw new ConfigError(
      "initial-cluster",
      `${describeSetting("initial-cluster")} has no member with this node's id ${id} (members: ${initial.map((m) => m.id).join(", ")}); set ${describeSetting("id")} or add the node`,
    );
  }
  if (self !== undefined && raw.name !== undefined && self.name !== defaultMemberName(id) && self.name !== name) {
    throw new ConfigError(
      "name",
      `${describeSetting("name")} is ${JSON.stringify(name)} but ${describeSetting("initial-cluster")} names member ${id} ${JSON.stringify(self.name)}`,
    );
  }

  const advertisePeerUrl = resolveAdvertise(raw, "advertise-peer-url", self?.peerUrl);
  const advertiseClientUrl = resolveAdvertise(raw, "advertise-client-url", self?.clientUrl);
  const listenPeer = resolveListen(raw, "listen-peer", advertisePeerUrl, 2380);
  const listenClient = resolveListen(raw, "listen-client", advertiseClientUrl, 2379);
  if (listenPeer.host === listenClient.host && listenPeer.port === listenClient.port) {
    throw new ConfigError(
      "listen-client",
      `${describeSetting("listen-client")} and ${describeSetting("listen-peer")} are both ${formatHostPort(listenPeer)}; they must differ`,
    );
  }
  const peerUrl = advertisePeerUrl ?? urlForListenAddress(listenPeer);
  const clientUrl = advertiseClientUrl ?? urlForListenAddress(listenClient);
  const initialCluster = initial === undefined || self === undefined ? [{ id, name, peerUrl, clientUrl }] : initial;

  const timing: TimingConfig = {
    tickMs: integerSetting(raw, "tick-ms"),
    electionTicks: integerSetting(raw, "election-ticks"),
    heartbeatTicks: integerSetting(raw, "heartbeat-ticks"),
    storageStallMs: integerSetting(raw, "storage-stall-ms"),
  };
  // A follower should see several heartbeats per election timeout, so that one late or lost
  // heartbeat does not start an election and depose a healthy leader.
  if (timing.electionTicks < 3 * timing.heartbeatTicks) {
    throw new ConfigError(
      "election-ticks",
      `${describeSetting("election-ticks")} (${timing.electionTicks}) must be at least 3 times ${describeSetting("heartbeat-ticks")} (${timing.heartbeatTicks})`,
    );
  }

  const limits: LimitsConfig = {
    keyBytesMax: bytesSetting(raw, "key-bytes-max"),
    valueBytesMax: bytesSetting(raw, "value-bytes-max"),
    requestBytesMax: bytesSetting(raw, "request-bytes-max"),
    txnOpsMax: integerSetting(raw, "txn-ops-max"),
    quotaBytes: bytesSetting(raw, "quota-bytes"),
    watchersPerConnectionMax: integerSetting(raw, "watchers-per-connection-max"),
    requestTimeoutMs: integerSetting(raw, "request-timeout-ms"),
  };
  // A Put of the largest key and value must fit in one request, with room for the envelope.
  if (limits.requestBytesMax < limits.keyBytesMax + limits.valueBytesMax + 1 * KiB) {
    throw new ConfigError(
      "request-bytes-max",
      `${describeSetting("request-bytes-max")} (${limits.requestBytesMax}) must be at least key-bytes-max + value-bytes-max + 1KiB (${limits.keyBytesMax + limits.valueBytesMax + KiB}) so the largest Put fits`,
    );
  }

  return {
    id,
    name,
    dataDir: raw["data-dir"] ?? join("data", name),
    clusterId: clusterId(raw),
    listenPeer,
    listenClient,
    advertisePeerUrl: peerUrl,
    advertiseClientUrl: clientUrl,
    initialCluster,
    timing,
    limits,
    snapshots: {
      entries: integerSetting(raw, "snapshot-entries"),
      bytes: bytesSetting(raw, "snapshot-bytes"),
      retainEntries: integerSetting(raw, "snapshot-retain-entries"),
    },
    shutdownTimeoutMs: integerSetting(raw, "shutdown-timeout-ms"),
    logLevel: logLevel(raw),
    corsOrigins: corsOrigins(raw),
    forwardWrites: booleanSetting(raw, "forward-writes"),
    join: joinEndpoints,
    promoteLagEntries: integerSetting(raw, "promote-lag-entries"),
  };
}

/** `--join`: comma-separated http(s) client URLs, or none. */
function joinUrls(raw: RawSettings): string[] {
  const value = raw.join;
  if (value === undefined || value === "none") return [];
  const urls = value.split(",").map((u) => u.trim());
  for (const url of urls) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || (parsed.protocol !== "http:" && parsed.protocol !== "https:") || parsed.hostname === "") {
      throw new ConfigError("join", `${describeSetting("join")}: ${JSON.stringify(url)} is not an http(s) URL with a host`);
    }
  }
  return urls;
}

/** A StatefulSet pod name ends with its ordinal: raftkv-0, raftkv-1, ... */
export function ordinalOf(name: string): number | undefined {
  const match = /-(\d{1,6})$/.exec(name);
  return match === null ? undefined : Number(match[1]);
}

function resolveIdentity(raw: RawSettings, env: Env, initial: readonly InitialMember[] | undefined): { id: number; name: string } {
  // In a pod, HOSTNAME is the pod name; elsewhere a host name ending in -N means nothing.
  const podName = env.KUBERNETES_SERVICE_HOST !== undefined && env.HOSTNAME !== undefined && env.HOSTNAME !== "" ? env.HOSTNAME : undefined;
  const givenName = raw.name ?? podName;
  if (givenName !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(givenName)) {
    throw new ConfigError(
      "name",
      `${describeSetting("name")} must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit; got ${JSON.stringify(givenName)}`,
    );
  }
  let id: number;
  if (raw.id !== undefined) {
    id = wholeNumber("id", raw.id, 1, Number.MAX_SAFE_INTEGER);
  } else if (givenName !== undefined && ordinalOf(givenName) !== undefined) {
    id = (ordinalOf(givenName) ?? 0) + 1;
  } else if (givenName !== undefined && initial?.some((m) => m.name === givenName) === true) {
    id = initial.find((m) => m.name === givenName)?.id ?? 1;
  } else if (initial === undefined || initial.length === 1) {
    id = initial?.[0]?.id ?? 1;
  } else {
    throw new ConfigError(
      "id",
      `${describeSetting("id")} is required: --initial-cluster has ${initial.length} members and ${describeSetting("name")} does not identify one`,
    );
  }
  const name = givenName ?? initial?.find((m) => m.id === id)?.name ?? defaultMemberName(id);
  return { id, name };
}

function resolveAdvertise(
  raw: RawSettings,
  flag: "advertise-peer-url" | "advertise-client-url",
  fromCluster: string | undefined,
): string | undefined {
  const text = raw[flag];
  if (text === undefined) return fromCluster;
  const parsed = parseOrThrow(flag, parseServiceUrl(text));
  if (fromCluster !== undefined && fromCluster !== parsed.url) {
    throw new ConfigError(
      flag,
      `${describeSetting(flag)} is ${parsed.url} but ${describeSetting("initial-cluster")} lists ${fromCluster} for this node; make them agree`,
    );
  }
  return parsed.url;
}

function resolveListen(
  raw: RawSettings,
  flag: "listen-peer" | "listen-client",
  advertised: string | undefined,
  defaultPort: number,
): HostPort {
  const text = raw[flag];
  if (text !== undefined) return parseOrThrow(flag, parseHostPort(text));
  const port = advertised === undefined ? defaultPort : Number(new URL(advertised).port);
  return { host: "127.0.0.1", port };
}

function clusterId(raw: RawSettings): string {
  const value = raw["cluster-id"] ?? settingDefault<"text">("cluster-id").value;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(value)) {
    throw new ConfigError(
      "cluster-id",
      `${describeSetting("cluster-id")} must be 1-128 letters, digits, '.', '_' or '-'; got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function logLevel(raw: RawSettings): LogLevel {
  const value = (raw["log-level"] ?? settingDefault<"text">("log-level").value).toLowerCase();
  const level = logLevels.find((l) => l === value);
  if (level === undefined) {
    throw new ConfigError(
      "log-level",
      `${describeSetting("log-level")} must be one of ${logLevels.join(", ")}; got ${JSON.stringify(value)}`,
    );
  }
  return level;
}

function booleanSetting(raw: RawSettings, flag: SettingFlagOf<"boolean">): boolean {
  const text = raw[flag];
  if (text === undefined) return settingDefault<"boolean">(flag).value;
  if (text === "true") return true;
  if (text === "false") return false;
  throw new ConfigError(flag, `${describeSetting(flag)} must be true or false, got ${JSON.stringify(text)}`);
}

function corsOrigins(raw: RawSettings): readonly string[] {
  const text = raw["cors-origins"] ?? settingDefault<"text">("cors-origins").value;
  if (text === "none") return [];
  const origins = text
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "");
  for (const origin of origins) {
    if (origin === "*") continue;
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || parsed.origin !== origin) {
      throw new ConfigError(
        "cors-origins",
        `${describeSetting("cors-origins")}: ${JSON.stringify(origin)} is not an origin like https://app.example.com (scheme, host, optional port, nothing else) or *`,
      );
    }
  }
  if (origins.includes("*") && origins.length > 1) {
    throw new ConfigError("cors-origins", `${describeSetting("cors-origins")}: * allows every origin and cannot be combined with others`);
  }
  return origins;
}

function integerSetting(raw: RawSettings, flag: SettingFlagOf<"integer">): number {
  const d = settingDefault<"integer">(flag);
  const text = raw[flag];
  return text === undefined ? d.value : wholeNumber(flag, text, d.min, d.max);
}

function wholeNumber(flag: SettingFlag, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.replace(/_/g, ""))) {
    throw new ConfigError(flag, `${describeSetting(flag)} must be a whole number; got ${JSON.stringify(text)}`);
  }
  return inRange(flag, Number(text.replace(/_/g, "")), min, max);
}

const byteUnits: Readonly<Record<string, number>> = {
  "": 1,
  "b": 1,
  "k": KiB,
  "kb": KiB,
  "kib": KiB,
  "m": MiB,
  "mb": MiB,
  "mib": MiB,
  "g": GiB,
  "gb": GiB,
  "gib": GiB,
};

/** A byte count: a whole number with an optional unit (KiB, MiB, GiB; K/KB/M/MB mean the same powers of two). */
export function parseBytes(text: string): number | undefined {
  const match = /^(\d+)\s*([a-zA-Z]*)$/.exec(text.trim());
  if (match === null) return undefined;
  const unit = byteUnits[(match[2] ?? "").toLowerCase()];
  return unit === undefined ? undefined : Number(match[1]) * unit;
}

function bytesSetting(raw: RawSettings, flag: SettingFlagOf<"bytes">): number {
  const d = settingDefault<"bytes">(flag);
  const text = raw[flag];
  if (text === undefined) return d.value;
  const value = parseBytes(text);
  if (value === undefined) {
    throw new ConfigError(flag, `${describeSetting(flag)} must be a byte count like 4096, 4KiB or 1MiB; got ${JSON.stringify(text)}`);
  }
  return inRange(flag, value, d.min, d.max);
}

function inRange(flag: SettingFlag, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(flag, `${describeSetting(flag)} must be between ${min} and ${max}; got ${value}`);
  }
  return value;
}

function parseOrThrow<T extends object>(flag: SettingFlag, result: T | { readonly error: string }): T {
  if ("error" in result) throw new ConfigError(flag, `${describeSetting(flag)}: ${result.error}`);
  return result;
}
