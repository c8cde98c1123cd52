import { randomUUID } from "node:crypto";
import { link, mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";

/** Another live process holds the data directory: two nodes on one WAL would corrupt it and vote twice. */
export class DataDirLockedError extends Error {
  override readonly name = "DataDirLockedError";
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(`the data directory ${dir} is in use by process ${pid}; stop that process, or give this node another --data-dir`);
  }
}

/**
 * Takes `dir/LOCK` (holding our pid) and returns its release. A lock left by a process that no longer
 * runs (kill -9, power loss) is taken over; in a container a restarted node is often pid 1 again, which
 * is us, and also counts as stale.
 *
 * Processes starting at once on one directory are kept apart by atomic steps only; a live lock is
 * never removed or replaced:
 * - a lock appears complete: the pid is written and synced in a file of our own, which is then
 *   hard-linked to LOCK (link fails if LOCK exists), so nobody can read a LOCK without a pid and
 *   mistake a lock being taken for a stale one;
 * - a stale lock (one file, one inode) is taken over by one process only: the one that creates the
 *   marker `LOCK.takeover.<inode>` (again by an exclusive link). It checks that LOCK is still that
 *   inode, then renames its own file over it. Everyone else sees the marker and stands back.
 */
export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, "LOCK");
  const mine = join(dir, `LOCK.${process.pid}.${randomUUID()}`);
  const handle = await open(mine, "wx");
  try {
    await handle.writeFile(`${process.pid}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    // Bounded: the lock is free, or held by a live process, or stale; the loop runs again only when
    // the lock vanished between two of our steps (its holder released it).
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(mine, path);
        return () => rm(path, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      if (await takeOverStaleLock(dir, path, mine)) return () => rm(path, { force: true });
    }
    throw new Error(`could not take the lock ${path}: it keeps appearing and disappearing`);
  } finally {
    await rm(mine, { force: true });
  }
}

/**
 * Replaces LOCK with `mine` when the process it names is gone. Throws DataDirLockedError when it runs;
 * false when LOCK vanished meanwhile (try again).
 */
async function takeOverStaleLock(dir: string, path: string, mine: string): Promise<boolean> {
  const judged = await stat(path).catch(() => undefined);
  if (judged === undefined) return false;
  const pid = await readPid(path);
  if (pid !== undefined && pid !== process.pid && isRunning(pid)) throw new DataDirLockedError(dir, pid);
  const marker = join(dir, `LOCK.takeover.${judged.ino}`);
  try {
    await link(mine, marker);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    const taker = await readPid(marker);
    // The marker is gone (it is a link to a complete pid file, so nothing else reads as no pid): the
    // takeover it marked has ended since our link failed. Look at LOCK again. (Reading this as an
    // interrupted takeover refused a start for nothing: CI, five processes on one stale lock.)
    if (taker === undefined) return false;
    if (isRunning(taker)) throw new DataDirLockedError(dir, taker);
    // The marker cannot be removed safely (another process may be judging it right now), and it is
    // left only by a process that died within a few system calls of a takeover: say what to do.
    throw new Error(
      `a takeover of the stale lock ${path} by process ${String(taker)} was interrupted; make sure no raftkv process uses ${dir}, then remove ${marker}`,
      { cause: error },
    );
  }
  try {
    const current = await stat(path).catch(() => undefined);
    if (current === undefined) return false;
    // Only marker holders replace LOCK, and we hold the marker of the inode we judged: if LOCK is
    // another inode now, its holder is someone who took over before us (and removed their marker).
    if (current.ino !== judged.ino || current.dev !== judged.dev) {
      const holder = await readPid(path);
      throw new DataDirLockedError(dir, holder ?? 0);
    }
    await rename(mine, path);
    return true;
  } finally {
    await rm(marker, { force: true });
  }
}

async function readPid(path: string): Promise<number | undefined> {
  const pid = Number((await readFile(path, "utf8").catch(() => "")).trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
