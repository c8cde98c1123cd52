/**
 * Durable storage: a segmented write-ahead log with group commit, snapshot files, crash recovery, and
 * the core's synchronous read view of the log. See docs/storage.md for the on-disk layout.
 */
export { openStorage, segmentBytesDefault, segmentBytesMin, entryDataBytesMax } from "./durable-log.js";
export type { DurableLog, StorageOptions } from "./durable-log.js";
export { CorruptLogError, StorageClosedError, StorageFailedError, StorageOverloadedError } from "./errors.js";
export type { FileHandle, FileSystem } from "./file-system.js";
export { createNodeFileSystem } from "./node-file-system.js";
export { BackupFileError, BackupFileWriter, inspectBackupFile, readBackupFile, type BackupInfo, type BackupMeta } from "./backup-file.js";
export { seedStorage } from "./seed.js";
