import { dirname } from "node:path";
import type { Snapshot } from "../core/types.js";
import type { Logger } from "../lib/logger.js";
import { openStorage } from "./durable-log.js";
import type { FileSystem } from "./file-system.js";
import { createNodeFileSystem } from "./node-file-system.js";

/**
 * Creates Raft storage in an empty directory `dir` whose log starts right after `snapshot`, with the
 * hard state (term = the snapshot's term, no vote, commit = its index): what a member looks like after
 * it installed that snapshot from a leader and before it heard anything else. It goes through the
 * storage's own operations (openStorage, installSnapshot, save), so the files are exactly those a node
 * would have written and recovery reads them the usual way; no byte is framed by hand.
 *
 * Everything is written under `<dir>.seeding` and renamed to `dir` once durable: a crash half-way leaves
 * no `dir` at all, never one a node would start from with a log that lacks the snapshot.
 */
export async function seedStorage(dir: string, snapshot: Snapshot, logger: Logger, fs: FileSystem = createNodeFileSystem()): Promise<void> {
  if (snapshot.meta.index < 1 || snapshot.meta.term < 1) throw new RangeError("a seed snapshot needs an index and a term of at least 1");
  if (await exists(fs, dir)) throw new Error(`${dir} already exists; seeding needs a directory that does not`);
  const staging = `${dir}.seeding`;
  if (await exists(fs, staging)) throw new Error(`${staging} is left from an interrupted seed; remove it and try again`);
  const log = await openStorage({ dir: staging, initialConf: snapshot.meta.conf, logger, fs });
  try {
    await log.installSnapshot(snapshot);
    await log.save({ term: snapshot.meta.term, vote: 0, commit: snapshot.meta.index }, []);
  } finally {
    await log.close();
  }
  await fs.rename(staging, dir);
  await fs.syncDir(dirname(dir));
}

async function exists(fs: FileSystem, path: string): Promise<boolean> {
  try {
    await fs.readdir(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}
