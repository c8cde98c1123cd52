import { CorruptLogError } from "./errors.js";
import { nonZeroEnd, nextNonZero, readCheckedFrame, readFrame } from "./record.js";
import { PayloadError, decodeRecord, type WalRecord } from "./wal-codec.js";

/**
 * What follows the last complete batch:
 * - `clean`: only zeros (the segment was zero-filled before use).
 * - `torn`: the remains of a write that a crash cut short, to be zeroed: `bytes` bytes from `offset`,
 *   holding `records` intact records of the unfinished batch. Only the last segment can have one.
 */
export type SegmentTail =
  | { readonly kind: "clean" }
  | { readonly kind: "torn"; readonly offset: number; readonly bytes: number; readonly records: number; readonly reason: string };

/** The framing of one segment, checked: its complete batches are exactly the bytes [0, dataEnd). */
export interface SegmentScan {
  /** Complete batches. */
  readonly batches: number;
  /** The id of the last complete batch, if any. */
  readonly lastBatchId: number | undefined;
  /** Offset just past the last complete batch: where the next write goes. */
  readonly dataEnd: number;
  readonly tail: SegmentTail;
}

export interface ScanOptions {
  /** Only the last segment may end with a torn write: all older ones were synced before it was started. */
  readonly isLast: boolean;
  /** The id the segment's first batch must have (one past the previous segment's last), if known. */
  readonly expectedBatchId: number | undefined;
}

/** Every payload is longer than this, so a candidate record with a shorter length is noise. */
const payloadBytesMin = 16;

/**
 * Checks the framing of one segment (pass 1 of replay): checksums, batch order, and what follows the
 * last complete batch. Throws CorruptLogError, naming the file and byte offset, for anything a crash
 * cannot explain:
 * - a checksummed record out of batch order;
 * - anything but zeros after the last complete batch of a segment that is not the last;
 * - in the last segment, damage followed by an intact record of a later batch: a later write was
 *   started only after this one was synced, so this one was acknowledged and is now damaged.
 * Damage followed only by zeros, garbage or records of the same unfinished batch is a torn write.
 */
export function scanSegment(file: string, buf: Uint8Array, options: ScanOptions): SegmentScan {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let nextId = options.expectedBatchId;
  let batches = 0;
  let lastBatchId: number | undefined;
  /** The batch being read: its id, first offset and records so far. */
  let open: { id: number; offset: number; records: number } | undefined;
  let offset = 0;
  let stopReason: string | undefined;
  while (true) {
    const frame = readFrame(buf, view, offset);
    if (frame.kind !== "record") {
      if (frame.kind === "bad") stopReason = frame.reason;
      break;
    }
    if (open === undefined) {
      if (nextId !== undefined && frame.batchId !== nextId) {
        throw new CorruptLogError(file, offset, `found write batch ${frame.batchId} where batch ${nextId} should be`);
      }
      open = { id: frame.batchId, offset, records: 0 };
    } else if (frame.batchId !== open.id) {
      throw new CorruptLogError(file, offset, `write batch ${open.id} is interrupted by a record of batch ${frame.batchId}`);
    }
    open.records++;
    offset = frame.end;
    if (frame.batchEnd) {
      batches++;
      lastBatchId = open.id;
      nextId = open.id + 1;
      open = undefined;
    }
  }

  const dataEnd = open?.offset ?? offset;
  const dirtyEnd = nonZeroEnd(buf, dataEnd, buf.byteLength);
  let tail: SegmentTail = { kind: "clean" };
  if (dirtyEnd > dataEnd) {
    const reason = stopReason ?? (open === undefined ? "non-zero bytes after the last record" : "unfinished write batch");
    if (!options.isLast) throw new CorruptLogError(file, offset, `${reason} in a segment that is not the newest`);
    checkNoLaterBatch(file, buf, view, offset, dirtyEnd, open?.id ?? nextId);
    tail = { kind: "torn", offset: dataEnd, bytes: dirtyEnd - dataEnd, records: open?.records ?? 0, reason };
  }
  return { batches, lastBatchId, dataEnd, tail };
}

/**
 * Decodes the records of [0, scan.dataEnd) of a checked segment, in order (pass 2 of replay). `data` must
 * be those bytes, owned by the caller: entries' data are views into it, never copied one by one (a
 * million small copies and allocations would cost seconds). Throws CorruptLogError for a checksummed
 * record whose content is invalid.
 */
export function forEachRecord(
  file: string,
  data: Uint8Array,
  visit: (record: WalRecord, offset: number, segmentStart: boolean) => void,
): void {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const entryData = (at: number, bytes: number): Uint8Array => data.subarray(at, at + bytes);
  for (let offset = 0; offset < data.byteLength;) {
    const frame = readCheckedFrame(view, offset);
    let record: WalRecord;
    try {
      record = decodeRecord(frame, view, entryData);
    } catch (error) {
      if (error instanceof PayloadError) {
        throw new CorruptLogError(file, offset, `invalid ${frame.type} record: ${error.message}`);
      }
      throw error;
    }
    visit(record, offset, offset === 0);
    offset = frame.end;
  }
}

/**
 * Looks for intact records in the damaged region [damageAt, end) of the last segment. Records of the
 * unfinished batch may have reached the disk out of order (a torn write on power loss); a record of any
 * other batch means the damage hit data that had been synced.
 */
function checkNoLaterBatch(
  file: string,
  buf: Uint8Array,
  view: DataView,
  damageAt: number,
  end: number,
  unfinishedId: number | undefined,
): void {
  let tornId = unfinishedId;
  let at = damageAt + 1;
  while (at < end) {
    // A record's length field (bytes 4-7) is never zero, so skip stretches where it would be.
    if (at + 8 <= buf.byteLength && view.getUint32(at + 4, true) === 0) {
      at = Math.max(at + 1, nextNonZero(buf, at + 4, end) - 7);
      continue;
    }
    const frame = readFrame(buf, view, at);
    if (frame.kind === "record" && frame.payloadBytes >= payloadBytesMin) {
      tornId ??= frame.batchId;
      if (frame.batchId !== tornId) {
        throw new CorruptLogError(
          file,
          damageAt,
          `damaged record followed by an intact record of a later write (batch ${frame.batchId} at byte ${at}), ` +
            `so the damaged data had been synced`,
        );
      }
      at = frame.end;
      continue;
    }
    at++;
  }
}
