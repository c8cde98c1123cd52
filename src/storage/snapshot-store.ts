import { join } from "node:path";
import { assert } from "../lib/assert.js";
import type { Snapshot } from "../core/types.js";
import { CorruptLogError } from "./errors.js";
import type { FileSystem } from "./file-system.js";
import { tmpSuffix, parseSnapshotName, snapshotName } from "./layout.js";
import type { Logger } from "../lib/logger.js";
import { snapshotCorruptHint, decodeSnapshotFile, decodeSnapshotFileInTurns, encodeSnapshotPrefix } from "./snapshot-file.js";

/**
 * The snapshot directory, written the boring crash-safe way: write to a temporary name, fsync, rename,
 * fsync the directory. A crash leaves either the old set of snapshots or the new one, plus perhaps a
 * temporary file that the next start removes. The newest `keep` snapshots stay, so an operator can fall
 * back to an older one if the newest is damaged.
 */
export class SnapshotStore {
  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    private readonly keep: number,
    private readonly logger: Logger,
  ) {
    assert(Number.isSafeInteger(keep) && keep >= 1, "snapshotsKept must be at least 1");
  }

  /** Removes leftovers of interrupted writes and returns the newest snapshot, verified, if there is one. */
  async open(): Promise<Snapshot | undefined> {
    let removed = 0;
    for (const name of await this.fs.readdir(this.dir)) {
      if (name.endsWith(tmpSuffix)) {
        this.logger.warn("removing a snapshot file left by an interrupted write", {
          repair: "snapshot-temp-removed",
          reason: "a snapshot is renamed into place only once complete, so this one never was",
          file: join(this.dir, name),
        });
        await this.fs.unlink(join(this.dir, name));
        removed++;
      } else if (parseSnapshotName(name) === undefined) {
        this.logger.warn("ignoring an unexpected file in the snapshot directory", { file: join(this.dir, name) });
      }
    }
    if (removed > 0) await this.fs.syncDir(this.dir);
    const newest = (await this.list()).at(-1);
    if (newest === undefined) return undefined;
    const file = join(this.dir, newest.name);
    return checkNamed(file, newest, decodeSnapshotFile(file, await this.fs.readFile(file)));
  }

  /**
   * Reads back and verifies the snapshot at (index, term) while the node runs (its checksum a slice per
   * loop turn). Throws when its file is gone (a newer snapshot replaced it) or damaged.
   */
  async read(index: number, term: number): Promise<Snapshot> {
    const file = join(this.dir, snapshotName(index, term));
    return checkNamed(file, { index, term }, await decodeSnapshotFileInTurns(file, await this.fs.readFile(file)));
  }

  /** Writes a snapshot durably (its file and its name), then removes all but the newest `keep`. */
  async write(snapshot: Snapshot): Promise<void> {
    const name = snapshotName(snapshot.meta.index, snapshot.meta.term);
    const path = join(this.dir, name);
    const tmp = path + tmpSuffix;
    const prefix = await encodeSnapshotPrefix(snapshot);
    try {
      const handle = await this.fs.open(tmp, "create");
      try {
        await handle.write(prefix, 0);
        await handle.write(snapshot.data, prefix.byteLength);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.fs.rename(tmp, path);
    } catch (error) {
      // Free the space now (a full disk is the likely cause); a start-up would remove it anyway.
      await this.fs
        .unlink(tmp)
        .catch((unlinkError: unknown) =>
          this.logger.warn("could not remove a failed snapshot write", { file: tmp, error: String(unlinkError) }),
        );
      throw error;
    }
    await this.fs.syncDir(this.dir);
    await this.prune();
  }

  /**
   * Removes all but the newest `keep` snapshots. Losing an unlink in a crash only leaves an extra old
   * snapshot, so the directory is synced once at the end.
   */
  private async prune(): Promise<void> {
    const all = await this.list();
    const old = all.slice(0, Math.max(0, all.length - this.keep));
    for (const snap of old) await this.fs.unlink(join(this.dir, snap.name));
    if (old.length > 0) await this.fs.syncDir(this.dir);
  }

  /** Snapshot files by ascending index (then term). */
  private async list(): Promise<{ name: string; index: number; term: number }[]> {
    const out: { name: string; index: number; term: number }[] = [];
    for (const name of await this.fs.readdir(this.dir)) {
      const parsed = parseSnapshotName(name);
      if (parsed !== undefined) out.push({ name, ...parsed });
    }
    return out.sort((a, b) => a.index - b.index || a.term - b.term);
  }
}

/** `snapshot`, read from `file`, after checking it is the one the file's name says. */
function checkNamed(file: string, named: { readonly index: number; readonly term: number }, snapshot: Snapshot): Snapshot {
  if (snapshot.meta.index !== named.index || snapshot.meta.term !== named.term) {
    throw new CorruptLogError(
      file,
      16,
      `the file holds the snapshot at index ${snapshot.meta.index} term ${snapshot.meta.term}, not the one its name says`,
      snapshotCorruptHint,
    );
  }
  return snapshot;
}
