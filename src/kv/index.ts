/**
 * The replicated key-value state machine: keys with revisions, exactly-once client sessions, the watch
 * history and watchers, and snapshot encode/restore. Deterministic: same entries in, same state out.
 */
export { createKvStore } from "./kv-store.js";
export type { ApplyResult, EventsSince, KvStore, SnapshotChunks, WatchStart } from "./kv-store.js";
export { defaultKvOptions, resolveKvOptions } from "./options.js";
export type { KvOptions } from "./options.js";
export { KvError, describeKey, isKvError } from "./errors.js";
export type { KvErrorDetail, KvErrorKind, KvLimit } from "./errors.js";
export { decodeCommand, encodeCommand } from "./command-codec.js";
export { validateCommand, validateDelete, validateGet, validatePut, validateRange, validateTxn, validateWatch } from "./validate.js";
export type { ValidationLimits } from "./validate.js";
export type { WatchCancelReason, WatchTake, Watcher, WatcherState } from "./watch-hub.js";
export { kvSnapshotFormatVersion } from "./snapshot-codec.js";
export type { MemberRecord } from "./snapshot-codec.js";
