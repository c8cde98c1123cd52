import { parseServiceUrl } from "./addresses.js";

/**
 * The members a new cluster starts with, written as one string so it fits a flag or an environment
 * variable:
 *
 *     ID[:NAME]=PEER_URL|CLIENT_URL,ID[:NAME]=PEER_URL|CLIENT_URL,...
 *
 * for example `1=http://127.0.0.1:2380|http://127.0.0.1:2379,2=http://127.0.0.1:22380|http://127.0.0.1:22379`
 * or, in Kubernetes, `1:raftkv-0=http://raftkv-0.raftkv:2380|http://raftkv-0.raftkv:2379,...`.
 *
 * Every member carries its client URL as well as its peer URL because a follower answers a write
 * with the leader's client URL (the `raftkv-leader` header), so every node must know every client URL.
 * The name is optional and defaults to `node-ID`.
 */
export interface InitialMember {
  readonly id: number;
  readonly name: string;
  readonly peerUrl: string;
  readonly clientUrl: string;
}

/** Most members a cluster may start with; Raft clusters beyond 7 voters only get slower. */
export const initialMembersMax = 9;

export function defaultMemberName(id: number): string {
  return `node-${id}`;
}

/** Parses the format above; returns a reason naming the bad entry on failure. */
export function parseInitialCluster(text: string): readonly InitialMember[] | { readonly error: string } {
  const entries = text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  if (entries.length === 0) {
    return { error: "empty; expected ID=PEER_URL|CLIENT_URL entries separated by commas" };
  }
  if (entries.length > initialMembersMax) {
    return { error: `${entries.length} members; at most ${initialMembersMax} are supported` };
  }
  const members: InitialMember[] = [];
  for (const entry of entries) {
    const match = /^(\d+)(?::([A-Za-z0-9][A-Za-z0-9._-]*))?=([^|]+)\|([^|]+)$/.exec(entry);
    if (match === null) {
      return {
        error: `entry ${JSON.stringify(entry)} is not ID[:NAME]=PEER_URL|CLIENT_URL (for example 1=http://127.0.0.1:2380|http://127.0.0.1:2379)`,
      };
    }
    const id = Number(match[1]);
    if (!Number.isSafeInteger(id) || id < 1) {
      return { error: `entry ${JSON.stringify(entry)}: the id must be a positive integer` };
    }
    const peer = parseServiceUrl(match[3] ?? "");
    if ("error" in peer) return { error: `entry ${JSON.stringify(entry)}: peer URL: ${peer.error}` };
    const client = parseServiceUrl(match[4] ?? "");
    if ("error" in client) return { error: `entry ${JSON.stringify(entry)}: client URL: ${client.error}` };
    const name = match[2] ?? defaultMemberName(id);
    for (const other of members) {
      if (other.id === id) return { error: `id ${id} appears twice` };
      if (other.name === name) return { error: `name ${JSON.stringify(name)} appears twice` };
      if (other.peerUrl === peer.url) return { error: `peer URL ${peer.url} appears twice` };
      if (other.clientUrl === client.url) return { error: `client URL ${client.url} appears twice` };
    }
    members.push({ id, name, peerUrl: peer.url, clientUrl: client.url });
  }
  return members.sort((a, b) => a.id - b.id);
}

export function formatInitialCluster(members: readonly InitialMember[]): string {
  return members.map((m) => `${m.id}${m.name === defaultMemberName(m.id) ? "" : `:${m.name}`}=${m.peerUrl}|${m.clientUrl}`).join(",");
}
