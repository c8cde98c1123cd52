import { create } from "@bufbuild/protobuf";
import { KeyValueSchema, ResponseHeaderSchema } from "../../gen/raftkv/v1/kv_pb.js";
import type { KeyValue, ResponseHeader } from "../../gen/raftkv/v1/kv_pb.js";

/**
 * One key as the store holds it. Immutable: a change makes a new record, so the key index, the watch
 * history and remembered results can share records without copying. The byte arrays are owned by the
 * store (copied out of the decoded command, which may be a view into a buffer the caller reuses).
 */
export interface KeyRecord {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  /** The revision that created the key (0 for the tombstone a delete event carries). */
  readonly createRevision: number;
  /** The revision of the key's last change (for a tombstone: the deleting revision). */
  readonly modRevision: number;
  /** Puts since creation: 1 after creation (0 for a tombstone). */
  readonly version: number;
}

/** What a response or the watch history is charged for a record: its key and value bytes. */
export function recordBytes(record: KeyRecord, keysOnly = false): number {
  return record.key.length + (keysOnly ? 0 : record.value.length);
}

export function toKeyValue(record: KeyRecord, keysOnly = false): KeyValue {
  return create(KeyValueSchema, {
    key: record.key,
    value: keysOnly ? new Uint8Array(0) : record.value,
    createRevision: BigInt(record.createRevision),
    modRevision: BigInt(record.modRevision),
    version: BigInt(record.version),
  });
}

/**
 * The header the state machine fills: only the revision. The rpc layer sets raft_term and member_id,
 * which depend on the answering node and not on the replicated state.
 */
export function responseHeader(revision: number): ResponseHeader {
  return create(ResponseHeaderSchema, { revision: BigInt(revision) });
}

/** A uint64 from the wire as a JS number, or undefined when it exceeds Number.MAX_SAFE_INTEGER. */
export function toSafeNumber(value: bigint): number | undefined {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
}
