/**
 * Typed errors of the storage module. Each names what failed and what an operator can do about it, because
 * these messages end up in logs read by a person at start-up or during an outage.
 */

/**
 * The data on disk is damaged somewhere that cannot be explained by a crash (a crash can only tear the
 * last write of the last segment). Start-up stops instead of serving a log with a hole in it.
 */
export class CorruptLogError extends Error {
  override readonly name = "CorruptLogError";
  constructor(
    /** The damaged file (absolute or relative to the data directory, as opened). */
    readonly file: string,
    /** The byte offset in `file` where the damage starts. */
    readonly offset: number,
    /** What is wrong, in words. */
    readonly reason: string,
    /** What the operator can do. */
    readonly hint: string = corruptLogHint,
  ) {
    super(`corrupt storage: ${file} at byte ${offset}: ${reason}. ${hint}`);
  }
}

export const corruptLogHint =
  "Acknowledged data may be damaged, so this node refuses to start rather than serve a log with a hole. " +
  "Keep a copy of the data directory for diagnosis, then either restore it from a backup or remove this " +
  "member from the cluster, wipe its data directory and add it back so that it catches up from the leader";

/**
 * The log stopped accepting writes because the disk failed (ENOSPC, EIO, ...). Every write acknowledged
 * before the failure is durable; nothing after it was acknowledged. The node should stop, and restart
 * once the disk is fixed: recovery repairs whatever the failed write left behind.
 */
export class StorageFailedError extends Error {
  override readonly name = "StorageFailedError";
  constructor(
    /** The operation that failed, e.g. "fdatasync wal/0000000000000003.wal". */
    readonly operation: string,
    /** The file-system error code (ENOSPC, EIO, ...) or "unknown". */
    readonly code: string,
    options: { cause: unknown },
  ) {
    super(
      `storage stopped accepting writes: ${operation} failed with ${code}. Acknowledged writes are safe; ` +
        `restart the node once the disk has space or has been replaced`,
      options,
    );
  }
}

/** The log was closed; no more writes are accepted. */
export class StorageClosedError extends Error {
  override readonly name = "StorageClosedError";
  constructor() {
    super("storage is closed");
  }
}

/**
 * Too many saves are waiting for the disk. The save was refused without changing anything; the caller
 * should slow down (the driver applies back-pressure to proposals) and retry.
 */
export class StorageOverloadedError extends Error {
  override readonly name = "StorageOverloadedError";
  constructor(
    readonly pendingSaves: number,
    readonly pendingSavesMax: number,
  ) {
    super(`storage overloaded: ${pendingSaves} saves are waiting for the disk (limit ${pendingSavesMax})`);
  }
}

/** The error code of a Node file-system error, or "unknown". */
export function errorCode(error: unknown): string {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    return error.code;
  }
  return "unknown";
}
