/**
 * The few file-system operations storage uses, as a seam: production passes the Node implementation
 * (node-file-system.ts); tests pass a simulated disk that tears writes, loses what was not synced,
 * flips bits and fails with ENOSPC or EIO.
 *
 * Durability model the storage code relies on (and the simulated disk enforces):
 * - Bytes written to a file are durable only after `datasync()` or `sync()` on that file returns.
 * - A created, renamed or unlinked name is durable only after `syncDir()` on its directory returns.
 * - After a crash, a file holds its durable bytes plus possibly a prefix of later writes, the last of
 *   which may be torn (a prefix of its bytes).
 * Errors are Node-style: an Error with a `code` such as ENOENT, ENOSPC or EIO.
 */
export interface FileSystem {
  /** Creates the directory and any missing parents; succeeds when it already exists. */
  mkdirp(path: string): Promise<void>;
  /** The names in a directory (not paths), in no particular order. */
  readdir(path: string): Promise<string[]>;
  /** The whole content of a file. The caller owns the returned buffer. */
  readFile(path: string): Promise<Uint8Array>;
  /**
   * Opens a file for reading and writing. `create` makes a new empty file (replacing any existing one);
   * `existing` fails with ENOENT when there is none.
   */
  open(path: string, mode: "create" | "existing"): Promise<FileHandle>;
  /** Renames within one directory, atomically replacing `to` if it exists. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** fsync of a directory: makes the creations, renames and unlinks in it durable. */
  syncDir(path: string): Promise<void>;
}

export interface FileHandle {
  /** The file's current size in bytes. */
  size(): Promise<number>;
  /** Reads into `into` from `position` until it is full or the file ends; returns the bytes read. */
  read(into: Uint8Array, position: number): Promise<number>;
  /**
   * Writes all of `data` at `position` (extending the file if needed). The caller must not change
   * `data` until the promise settles.
   */
  write(data: Uint8Array, position: number): Promise<void>;
  /** fdatasync: the written bytes (and the size, if it changed) are durable when this resolves. */
  datasync(): Promise<void>;
  /** fsync: like datasync, plus all metadata. Used for new files. */
  sync(): Promise<void>;
  close(): Promise<void>;
}
