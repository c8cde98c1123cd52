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
const tagBytes = 1;
const varintMax = 10;
const lengthMax = 5;
const scalarFieldMax = tagBytes + varintMax;
/** A nested message or bytes field: its tag and length prefix, without the content. */
const lengthDelimitedOverhead = tagBytes + lengthMax;

/** from, to, term */
const envelopeMax = 3 * scalarFieldMax;

/** One `RaftMessage` in `StepRequest.messages`: the repeated field's framing plus the oneof field's framing. */
const wrapperMax = 2 * lengthDelimitedOverhead;

function entryBytesMax(e: Entry): number {
  // term, index, type, then data (tag + length + bytes), all inside the entry's own framing.
  return lengthDelimitedOverhead + 3 * scalarFieldMax + lengthDelimitedOverhead + e.data.byteLength;
}

function packedIdsMax(count: number): number {
  return count === 0 ? 0 : lengthDelimitedOverhead + count * varintMax;
}

/** The most bytes `m` can take inside a StepRequest, framing included. */
export function stepMessageBytesMax(m: StepMessage): number {
  let body = envelopeMax;
  switch (m.type) {
    case "vote":
      body += 4 * scalarFieldMax; // pre_vote, last_log_index, last_log_term, transfer
      break;
    case "voteResp":
      body += 2 * scalarFieldMax;
      break;
    case "append":
      body += 3 * scalarFieldMax; // prev_index, prev_term, commit
      for (const e of m.entries) body += entryBytesMax(e);
      break;
    case "appendResp":
      body += 4 * scalarFieldMax;
      break;
    case "heartbeat":
      body += 2 * scalarFieldMax;
      break;
    case "heartbeatResp":
      body += scalarFieldMax;
      break;
    case "timeoutNow":
      break;
    case "readIndex":
      body += packedIdsMax(m.requestIds.length);
      break;
    case "readIndexResp":
      body += packedIdsMax(m.requestIds.length) + scalarFieldMax;
      break;
  }
  return wrapperMax + body;
}

/** A fixed64 field: one tag byte and eight bytes. */
const fixed64FieldBytes = 9;

/** The most bytes a StepRequest's own fields (cluster_id, from, to, incarnation) take, messages excluded. */
export function stepEnvelopeBytesMax(clusterId: string): number {
  return lengthDelimitedOverhead + Buffer.byteLength(clusterId, "utf8") + 2 * scalarFieldMax + fixed64FieldBytes;
}

/** The most bytes one snapshot chunk message takes besides its data (oneof framing, offset, data framing). */
export const snapshotChunkOverheadMax = lengthDelimitedOverhead + scalarFieldMax + lengthDelimitedOverhead;
