import { assert } from "../lib/assert.js";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/**
 * The default of a setting, with its allowed range where it is a number. The value itself, not a text
 * about it: the parser falls back to it and `--help` prints it, so the two cannot drift apart. A default
 * that depends on other settings (the id from the name, a port from a URL) is a text only, and its
 * rule lives in server-config.ts.
 */
export type SettingDefault =
  | { readonly kind: "integer"; readonly value: number; readonly min: number; readonly max: number }
  | { readonly kind: "bytes"; readonly value: number; readonly min: number; readonly max: number }
  | { readonly kind: "boolean"; readonly value: boolean }
  | { readonly kind: "text"; readonly value: string }
  | { readonly kind: "derived"; readonly text: string };

/**
 * Every setting of `raftkv serve`: its flag, its environment variable, its default and its help line.
 * One table feeds the argument parser, the environment lookup, the defaults and `raftkv serve --help`,
 * so none of them can forget a setting or disagree about one.
 */
export interface SettingSpec {
  /** The flag without dashes; the environment variable is RAFTKV_ + the flag in upper snake case. */
  readonly flag: string;
  /** What the value looks like, for the help text. */
  readonly placeholder: string;
  readonly default: SettingDefault;
  readonly help: string;
}

export const settingSpecs = [
  {
    flag: "id",
    placeholder: "N",
    default: {
      kind: "derived",
      text: "from --name (StatefulSet ordinal + 1, or its --initial-cluster entry), else the only --initial-cluster member (1 without one)",
    },
    help: "This node's member id, a positive integer unique in the cluster.",
  },
  {
    flag: "name",
    placeholder: "NAME",
    default: { kind: "derived", text: "$HOSTNAME in Kubernetes, else from --initial-cluster, else node-ID" },
    help: "This node's human-readable name. A StatefulSet name like raftkv-2 also gives the id (ordinal 2 -> id 3).",
  },
  {
    flag: "data-dir",
    placeholder: "DIR",
    default: { kind: "derived", text: "data/NAME" },
    help: "Where this node keeps its write-ahead log and snapshots.",
  },
  {
    flag: "cluster-id",
    placeholder: "TEXT",
    default: { kind: "text", value: "raftkv" },
    help: "Every peer message carries it; nodes of another cluster are refused.",
  },
  {
    flag: "listen-peer",
    placeholder: "HOST:PORT",
    default: { kind: "derived", text: "127.0.0.1:<port of the advertised peer URL>" },
    help: "Where to accept connections from other nodes (RaftService only, HTTP/2 cleartext).",
  },
  {
    flag: "listen-client",
    placeholder: "HOST:PORT",
    default: { kind: "derived", text: "127.0.0.1:<port of the advertised client URL>" },
    help: "Where to accept clients: gRPC (HTTP/2), Connect and gRPC-web (HTTP/1.1 or HTTP/2), /metrics, /healthz, /readyz.",
  },
  {
    flag: "advertise-peer-url",
    placeholder: "URL",
    default: { kind: "derived", text: "this node's peer URL in --initial-cluster" },
    help: "The URL other nodes use to reach the peer port.",
  },
  {
    flag: "advertise-client-url",
    placeholder: "URL",
    default: { kind: "derived", text: "this node's client URL in --initial-cluster" },
    help: "The URL clients use to reach the client port; followers send it as the leader hint.",
  },
  {
    flag: "initial-cluster",
    placeholder: "ID[:NAME]=PEER_URL|CLIENT_URL,...",
    default: { kind: "derived", text: "this node alone" },
    help: "The members the cluster starts with, each with its peer and client URL.",
  },
  {
    flag: "tick-ms",
    placeholder: "MS",
    default: { kind: "integer", value: 100, min: 1, max: 60_000 },
    help: "The length of one Raft tick.",
  },
  {
    flag: "election-ticks",
    placeholder: "N",
    default: { kind: "integer", value: 10, min: 2, max: 1_000 },
    help: "Ticks without a leader before a follower campaigns (randomized up to twice this).",
  },
  {
    flag: "heartbeat-ticks",
    placeholder: "N",
    default: { kind: "integer", value: 1, min: 1, max: 1_000 },
    help: "Ticks between leader heartbeats; at most a third of --election-ticks.",
  },
  // The maxima of key, value and txn limits are the limits the state machine applies with (defaultKvOptions in src/kv; test/config keeps them equal).
  {
    flag: "key-bytes-max",
    placeholder: "BYTES",
    default: { kind: "bytes", value: 4 * KiB, min: 1, max: 64 * KiB },
    help: "The longest key a node accepts. Checked before proposing, so members may differ during a rolling change.",
  },
  {
    flag: "value-bytes-max",
    placeholder: "BYTES",
    default: { kind: "bytes", value: 1 * MiB, min: 0, max: 3 * MiB },
    help: "The longest value a node accepts. Checked before proposing, so members may differ during a rolling change.",
  },
  // The maximum is requestBytesMaxCeiling (server-config.ts), which every node's peer read limit is sized for.
  {
    flag: "request-bytes-max",
    placeholder: "BYTES",
    default: { kind: "bytes", value: 2 * MiB, min: 1 * KiB, max: 16 * MiB },
    help: "The largest request message a client may send.",
  },
  {
    flag: "snapshot-entries",
    placeholder: "N",
    default: { kind: "integer", value: 10_000, min: 1, max: 10_000_000 },
    help: "Take a snapshot (and compact the log behind it) once this many entries were applied since the last one.",
  },
  {
    flag: "snapshot-bytes",
    placeholder: "BYTES",
    default: { kind: "bytes", value: 64 * MiB, min: 1 * KiB, max: 16 * GiB },
    help: "Or once the writes applied since the last snapshot carry this many bytes, whichever comes first.",
  },
  {
    flag: "snapshot-retain-entries",
    placeholder: "N",
    default: { kind: "integer", value: 5_000, min: 0, max: 10_000_000 },
    help: "Entries kept in the log below a snapshot, so that a slightly lagging follower catches up without a snapshot transfer.",
  },
  {
    flag: "quota-bytes",
    placeholder: "BYTES",
    default: { kind: "bytes", value: 2 * GiB, min: 1 * MiB, max: 64 * GiB },
    help: "The space quota: once the store's keys and values take this much, writes that add data are refused (reads and deletes go on).",
  },
  {
    flag: "txn-ops-max",
    placeholder: "N",
    default: { kind: "integer", value: 128, min: 1, max: 10_000 },
    help: "The most compares, and the most operations in each branch, of one Txn a node accepts. Checked before proposing, so members may differ.",
  },
  {
    flag: "watchers-per-connection-max",
    placeholder: "N",
    default: { kind: "integer", value: 1_000, min: 1, max: 100_000 },
    help: "The most concurrent Watch streams on one client connection.",
  },
  {
    flag: "request-timeout-ms",
    placeholder: "MS",
    default: { kind: "integer", value: 5_000, min: 1, max: 3_600_000 },
    help: "The deadline of a request whose client set none.",
  },
  {
    flag: "shutdown-timeout-ms",
    placeholder: "MS",
    default: { kind: "integer", value: 10_000, min: 0, max: 600_000 },
    help: "On SIGTERM, how long to hand off leadership and drain requests before closing them.",
  },
  {
    flag: "log-level",
    placeholder: "LEVEL",
    default: { kind: "text", value: "info" },
    help: "One of fatal, error, warn, info, debug, trace, silent.",
  },
  {
    flag: "storage-stall-ms",
    placeholder: "MS",
    default: { kind: "integer", value: 5_000, min: 100, max: 600_000 },
    help: "A log write not on disk after this long marks the storage stalled: the node reports not ready and, if it leads, hands leadership to a follower.",
  },
  {
    flag: "join",
    placeholder: "URL,...",
    default: { kind: "text", value: "none" },
    help: "Client URLs of a running cluster. A node whose data directory is empty and that the cluster does not know joins it there: it adds itself as a learner (the cluster picks its id), catches up, and promotes itself once caught up. Ignored once the node holds data.",
  },
  {
    flag: "promote-lag-entries",
    placeholder: "N",
    default: { kind: "integer", value: 1000, min: 0, max: 1_000_000_000 },
    help: "A learner is promoted to voter only when its log is at most this many entries behind the leader's (checked by the leader).",
  },
  {
    flag: "forward-writes",
    placeholder: "true|false",
    default: { kind: "boolean", value: true },
    help: "Whether a follower hands a client's Put, Delete or Txn to the leader over the peer connection and answers it itself; false: it answers not-leader with the leader's URL.",
  },
  {
    flag: "cors-origins",
    placeholder: "ORIGIN,...",
    default: { kind: "text", value: "none" },
    help: "Browser origins allowed to call the client port (for example https://app.example.com), or * for any.",
  },
] as const satisfies readonly SettingSpec[];

export type SettingFlag = (typeof settingSpecs)[number]["flag"];

export function envName(flag: string): string {
  return `RAFTKV_${flag.toUpperCase().replace(/-/g, "_")}`;
}

/** Names a setting both ways, for error messages. */
export function describeSetting(flag: string): string {
  return `--${flag} (${envName(flag)})`;
}

type Spec = (typeof settingSpecs)[number];

/** The flags whose default is of kind `K`: `integerSetting("tick-ms")` compiles, `integerSetting("name")` does not. */
export type SettingFlagOf<K extends SettingDefault["kind"]> = Extract<Spec, { readonly default: { readonly kind: K } }>["flag"];

/** The default of `flag`, typed by its kind. */
export function settingDefault<K extends SettingDefault["kind"]>(flag: SettingFlagOf<K>): Extract<SettingDefault, { readonly kind: K }> {
  const spec = settingSpecs.find((s) => s.flag === flag);
  assert(spec !== undefined, `no setting --${flag}`);
  // SettingFlagOf<K> admits only flags whose default has kind K, so the table's entry has that kind.
  return spec.default as Extract<SettingDefault, { readonly kind: K }>;
}

/** A byte count as a person writes it: 4KiB, 1MiB, 1536 (exact only; a count that is no whole unit stays in bytes). */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ["GiB", GiB],
    ["MiB", MiB],
    ["KiB", KiB],
  ] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return String(n);
}

/** The default of a setting as `--help` shows it, with the allowed range of a number. */
export function describeDefault(d: SettingDefault): string {
  switch (d.kind) {
    case "integer":
      return `${d.value} (allowed: ${d.min} to ${d.max})`;
    case "bytes":
      return `${formatBytes(d.value)} (allowed: ${formatBytes(d.min)} to ${formatBytes(d.max)})`;
    case "boolean":
      return String(d.value);
    case "text":
      return d.value;
    case "derived":
      return d.text;
  }
}
