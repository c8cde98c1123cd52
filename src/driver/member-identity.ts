import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, readdir, rename } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { NodeId } from "../core/index.js";

/**
 * Who a data directory belongs to: `<data-dir>/member.json`, written once, before the write-ahead log
 * exists. The incarnation is a random 64-bit id that no other data directory shares: peers remember the
 * incarnation each member first showed them and refuse a member whose incarnation changed (it lost its
 * data and with it every vote and acknowledgement it gave; see peer-incarnations.ts).
 */
export interface MemberIdentity {
  readonly clusterId: string;
  readonly memberId: NodeId;
  /** Never 0: 0 on the wire means "no incarnation" (a peer still starting). */
  readonly incarnation: bigint;
}

const identityFile = "member.json";
const identityFormatVersion = 1;

/** The data directory cannot be used as it is; the message says why and what to do. */
export class DataDirError extends Error {
  override readonly name = "DataDirError";
}

export function identityPath(dataDir: string): string {
  return join(dataDir, identityFile);
}

/** A fresh incarnation: 64 random bits, never 0. */
export function newIncarnation(): bigint {
  for (;;) {
    const value = randomBytes(8).readBigUInt64BE(0);
    if (value !== 0n) return value;
  }
}

export function formatIncarnation(incarnation: bigint): string {
  return incarnation.toString(16).padStart(16, "0");
}

function parseIncarnation(text: unknown): bigint | undefined {
  if (typeof text !== "string" || !/^[0-9a-f]{16}$/.test(text)) return undefined;
  const value = BigInt(`0x${text}`);
  return value === 0n ? undefined : value;
}

/**
 * Reads member.json. Undefined when it does not exist; DataDirError when it is unreadable or belongs to
 * another cluster or member (a data directory mounted on the wrong pod must not join as someone else).
 */
export async function readIdentity(
  dataDir: string,
  expected: { clusterId: string; memberId?: NodeId },
): Promise<MemberIdentity | undefined> {
  const path = identityPath(dataDir);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new DataDirError(
      `${path} is not valid JSON; it is written atomically, so the file was damaged outside raftkv. Restore it from a backup of this member, or treat the member as lost (docs/operations.md#a-member-lost-its-data-directory)`,
    );
  }
  const record = parsed as { formatVersion?: unknown; clusterId?: unknown; memberId?: unknown; incarnation?: unknown };
  const incarnation = parseIncarnation(record.incarnation);
  if (
    record.formatVersion !== identityFormatVersion ||
    typeof record.clusterId !== "string" ||
    typeof record.memberId !== "number" ||
    incarnation === undefined
  ) {
    throw new DataDirError(
      `${path} is not a raftkv member identity (format version ${identityFormatVersion}); it was damaged or written by something else`,
    );
  }
  if (record.clusterId !== expected.clusterId) {
    throw new DataDirError(
      `the data directory ${dataDir} belongs to cluster ${JSON.stringify(record.clusterId)}, but this node was started for cluster ${JSON.stringify(expected.clusterId)} (--cluster-id); give it the right --data-dir or --cluster-id`,
    );
  }
  // A node that joined a running cluster learned its id from the cluster: it has none to expect.
  if (expected.memberId !== undefined && record.memberId !== expected.memberId) {
    throw new DataDirError(
      `the data directory ${dataDir} belongs to member ${record.memberId}, but this node was started as member ${expected.memberId}; give each member its own --data-dir`,
    );
  }
  return { clusterId: record.clusterId, memberId: record.memberId, incarnation };
}

/** Writes member.json durably: a temporary file, fsync, rename, fsync of the directory. */
export async function writeIdentity(dataDir: string, identity: MemberIdentity): Promise<void> {
  const text = `${JSON.stringify({ formatVersion: identityFormatVersion, clusterId: identity.clusterId, memberId: identity.memberId, incarnation: formatIncarnation(identity.incarnation) })}\n`;
  await writeFileDurably(identityPath(dataDir), text);
}

/** Replaces `path` with `text` so that a crash leaves either the old or the new content, never a mix. */
export async function writeFileDurably(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, "w");
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  const dirHandle = await open(dir, "r");
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/**
 * Whether the Raft storage under `raftDir` holds anything at all (a WAL segment or a snapshot file, even
 * a partial one). A directory that holds nothing is one this member has never written to, or one that
 * lost everything: only the peers can tell which (bootstrap-check.ts).
 */
export async function hasRaftState(raftDir: string): Promise<boolean> {
  for (const sub of ["wal", "snap"]) {
    let names: string[];
    try {
      names = await readdir(join(raftDir, sub));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw error;
    }
    if (names.length > 0) return true;
  }
  return false;
}
