/**
 * Every setting of `raftkv serve`: its flag, its environment variable and its help line. One table feeds
 * the argument parser, the environment lookup and `raftkv serve --help`, so none of them can forget a
 * setting.
 */
export interface SettingSpec {
  /** The flag without dashes; the environment variable is RAFTKV_ + the flag in upper snake case. */
  readonly flag: string;
  /** What the value looks like, for the help text. */
  readonly placeholder: string;
  /** The default as a person reads it (the resolved default may depend on other settings). */
  readonly defaultText: string;
  readonly help: string;
}

export const settingSpecs = [
  { flag: "id", placeholder: "N", defaultText: "from --name (StatefulSet ordinal + 1, or its --initial-cluster entry), else the only --initial-cluster member (1 without one)", help: "This node's member id, a positive integer unique in the cluster." },
  { flag: "name", placeholder: "NAME", defaultText: "$HOSTNAME in Kubernetes, else from --initial-cluster, else node-ID", help: "This node's human-readable name. A StatefulSet name like raftkv-2 also gives the id (ordinal 2 -> id 3)." },
  { flag: "data-dir", placeholder: "DIR", defaultText: "data/NAME", help: "Where this node keeps its write-ahead log and snapshots." },
  { flag: "cluster-id", placeholder: "TEXT", defaultText: "raftkv", help: "Every peer message carries it; nodes of another cluster are refused." },
  { flag: "listen-peer", placeholder: "HOST:PORT", defaultText: "127.0.0.1:<port of the advertised peer URL>", help: "Where to accept connections from other nodes (RaftService only, HTTP/2 cleartext)." },
  { flag: "listen-client", placeholder: "HOST:PORT", defaultText: "127.0.0.1:<port of the advertised client URL>", help: "Where to accept clients: gRPC (HTTP/2), Connect and gRPC-web (HTTP/1.1 or HTTP/2), /metrics, /healthz, /readyz." },
  { flag: "advertise-peer-url", placeholder: "URL", defaultText: "this node's peer URL in --initial-cluster", help: "The URL other nodes use to reach the peer port." },
  { flag: "advertise-client-url", placeholder: "URL", defaultText: "this node's client URL in --initial-cluster", help: "The URL clients use to reach the client port; followers send it as the leader hint." },
  { flag: "initial-cluster", placeholder: "ID[:NAME]=PEER_URL|CLIENT_URL,...", defaultText: "this node alone", help: "The members the cluster starts with, each with its peer and client URL." },
  { flag: "tick-ms", placeholder: "MS", defaultText: "100", help: "The length of one Raft tick." },
  { flag: "election-ticks", placeholder: "N", defaultText: "10", help: "Ticks without a leader before a follower campaigns (randomized up to twice this)." },
  { flag: "heartbeat-ticks", placeholder: "N", defaultText: "1", help: "Ticks between leader heartbeats; at most a third of --election-ticks." },
  { flag: "key-bytes-max", placeholder: "BYTES", defaultText: "4KiB", help: "The longest key a node accepts (at most 64KiB). Checked before proposing, so members may differ during a rolling change." },
  { flag: "value-bytes-max", placeholder: "BYTES", defaultText: "1MiB", help: "The longest value a node accepts (at most 3MiB). Checked before proposing, so members may differ during a rolling change." },
  { flag: "request-bytes-max", placeholder: "BYTES", defaultText: "2MiB", help: "The largest request message a client may send (at most 16MiB)." },
  { flag: "txn-ops-max", placeholder: "N", defaultText: "128", help: "The most compares, and the most operations in each branch, of one Txn a node accepts (at most 10000). Checked before proposing, so members may differ." },
  { flag: "watchers-per-connection-max", placeholder: "N", defaultText: "1000", help: "The most concurrent Watch streams on one client connection." },
  { flag: "request-timeout-ms", placeholder: "MS", defaultText: "5000", help: "The deadline of a request whose client set none." },
  { flag: "shutdown-timeout-ms", placeholder: "MS", defaultText: "10000", help: "On SIGTERM, how long to hand off leadership and drain requests before closing them." },
  { flag: "log-level", placeholder: "LEVEL", defaultText: "info", help: "One of fatal, error, warn, info, debug, trace, silent." },
  { flag: "forward-writes", placeholder: "true|false", defaultText: "true", help: "Whether a follower hands a client's Put, Delete or Txn to the leader over the peer connection and answers it itself; false: it answers not-leader with the leader's URL." },
  { flag: "cors-origins", placeholder: "ORIGIN,...", defaultText: "none", help: "Browser origins allowed to call the client port (for example https://app.example.com), or * for any." },
] as const satisfies readonly SettingSpec[];

export type SettingFlag = (typeof settingSpecs)[number]["flag"];

export function envName(flag: string): string {
  return `RAFTKV_${flag.toUpperCase().replace(/-/g, "_")}`;
}

/** Names a setting both ways, for error messages. */
export function describeSetting(flag: string): string {
  return `--${flag} (${envName(flag)})`;
}
