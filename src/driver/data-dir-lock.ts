import { mkdir, open, readFile, rm } from "node:fs/promises";
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
 * Takes `dir/LOCK` (created exclusively, holding our pid) and returns its release. A lock left by a
 * process that no longer runs (kill -9, power loss) is taken over; in a container a restarted node is
 * often pid 1 again, which is us, and also counts as stale.
 */
export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, "LOCK");
  // Bounded: one attempt, and one more after removing a stale lock.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(`${process.pid}\n`);
      await handle.sync();
      await handle.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const pid = Number((await readFile(path, "utf8").catch(() => "")).trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isRunning(pid)) throw new DataDirLockedError(dir, pid);
      await rm(path, { force: true });
    }
  }
  throw new Error(`could not take the lock ${path}: another process keeps recreating it`);
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
