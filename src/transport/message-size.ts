import type { Entry } from "../core/index.js";
import type { StepMessage } from "./convert.js";

/**
 * Upper bounds of protobuf encoded sizes, computed from a core message without encoding it. The batcher
 * packs Step calls by these bounds, so a batch it builds never exceeds msgBytesMax on the wire and the
 * receiver (whose read limit is msgBytesMax) never refuses it for size. A property test checks that every
 * bound is at least the real size.
 *
 * The bounds take the worst case of each varint: a field tag is 1 byte (all field numbers are < 16), a
 * uint64 or enum value at most 10 bytes, a length prefix at most 5 bytes (lengths stay below 2^32).
 */
const TAG = 1;
const VARINT_MAX = 10;
const LENGTH_MAX = 5;
const SCALAR_FIELD_MAX = TAG + VARINT_MAX;
/** A nested message or bytes field: its tag and length prefix, without the content. */
const LENGTH_DELIMITED_OVERHEAD = TAG + LENGTH_MAX;

/** from, to, term */
const ENVELOPE_MAX = 3 * SCALAR_FIELD_MAX;

/** One `RaftMessage` in `StepRequest.messages`: the repeated field's framing plus the oneof field's framing. */
const WRAPPER_MAX = 2 * LENGTH_DELIMITED_OVERHEAD;

function entryBytesMax(e: Entry): number {
  // term, index, type, then data (tag + length + bytes), all inside the entry's own framing.
  return LENGTH_DELIMITED_OVERHEAD + 3 * SCALAR_FIELD_MAX + LENGTH_DELIMITED_OVERHEAD + e.data.byteLength;
}

function packedIdsMax(count: number): number {
  return count === 0 ? 0 : LENGTH_DELIMITED_OVERHEAD + count * VARINT_MAX;
}

/** The most bytes `m` can take inside a StepRequest, framing included. */
export function stepMessageBytesMax(m: StepMessage): number {
  let body = ENVELOPE_MAX;
  switch (m.type) {
    case "vote":
      body += 4 * SCALAR_FIELD_MAX; // pre_vote, last_log_index, last_log_term, transfer
      break;
    case "voteResp":
      body += 2 * SCALAR_FIELD_MAX;
      break;
    case "append":
      body += 3 * SCALAR_FIELD_MAX; // prev_index, prev_term, commit
      for (const e of m.entries) body += entryBytesMax(e);
      break;
    case "appendResp":
      body += 4 * SCALAR_FIELD_MAX;
      break;
    case "heartbeat":
      body += 2 * SCALAR_FIELD_MAX;
      break;
    case "heartbeatResp":
      body += SCALAR_FIELD_MAX;
      break;
    case "timeoutNow":
      break;
    case "readIndex":
      body += packedIdsMax(m.requestIds.length);
      break;
    case "readIndexResp":
      body += packedIdsMax(m.requestIds.length) + SCALAR_FIELD_MAX;
      break;
  }
  return WRAPPER_MAX + body;
}

/** A fixed64 field: one tag byte and eight bytes. */
const FIXED64_FIELD_BYTES = 9;

/** The most bytes a StepRequest's own fields (cluster_id, from, to, incarnation) take, messages excluded. */
export function stepEnvelopeBytesMax(clusterId: string): number {
  return LENGTH_DELIMITED_OVERHEAD + Buffer.byteLength(clusterId, "utf8") + 2 * SCALAR_FIELD_MAX + FIXED64_FIELD_BYTES;
}

/** The most bytes one snapshot chunk message takes besides its data (oneof framing, offset, data framing). */
export const SNAPSHOT_CHUNK_OVERHEAD_MAX = LENGTH_DELIMITED_OVERHEAD + SCALAR_FIELD_MAX + LENGTH_DELIMITED_OVERHEAD;
