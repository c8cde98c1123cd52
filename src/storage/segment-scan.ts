import { CorruptLogError } from "./errors.js";
import { nonZeroEnd, nextNonZero, readFrame, type RecordFrame } from "./record.js";
import { ENTRY_FIXED_BYTES, PayloadError, decodeRecord, type WalRecord } from "./wal-codec.js";

/** A complete write batch read back from a segment. */
export interface ScannedBatch {
  readonly id: number;
  /** Offset of the batch's first record in the segment. */
  readonly offset: number;
  readonly records: readonly WalRecord[];
}

/**
 * What follows the last complete batch:
 * - `clean`: only zeros (the segment was zero-filled before use).
 * - `torn`: the remains of a write that a crash cut short, to be zeroed: `bytes` bytes from `offset`,
 *   holding `records` intact records of the unfinished batch. Only the last segment can have one.
 */
export type SegmentTail =
  | { readonly kind: "clean" }
  | { readonly kind: "torn"; readonly offset: number; readonly bytes: number; readonly records: number; readonly reason: string };

export interface SegmentScan {
  readonly batches: readonly ScannedBatch[];
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
const PAYLOAD_BYTES_MIN = 16;

interface FramedBatch {
  readonly id: number;
  readonly offset: number;
  readonly frames: RecordFrame[];
}

/**
 * Reads one segment: its complete batches, decoded, and the state of what follows them. Throws
 * CorruptLogError, naming the file and byte offset, for anything a crash cannot explain:
 * - a checksummed record out of batch order, or whose content is invalid;
 * - anything but zeros after the last complete batch of a segment that is not the last;
 * - in the last segment, damage followed by an intact record of a later batch: a later write was
 *   started only after this one was synced, so this one was acknowledged and is now damaged.
 * Damage followed only by zeros, garbage or records of the same unfinished batch is a torn write.
 */
export function scanSegment(file: string, buf: Uint8Array, options: ScanOptions): SegmentScan {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const complete: FramedBatch[] = [];
  let nextId = options.expectedBatchId;
  let open: FramedBatch | undefined;
  let offset = 0;
  let stopReason: string | undefined;
  while (true) {
    const read = readFrame(buf, view, offset);
    if (read.kind !== "record") {
      if (read.kind === "bad") stopReason = read.reason;
      break;
    }
    const frame = read.frame;
    if (open === undefined) {
      if (nextId !== undefined && frame.batchId !== nextId) {
        throw new CorruptLogError(file, offset, `found write batch ${frame.batchId} where batch ${nextId} should be`);
      }
      open = { id: frame.batchId, offset, frames: [] };
    } else if (frame.batchId !== open.id) {
      throw new CorruptLogError(file, offset, `write batch ${open.id} is interrupted by a record of batch ${frame.batchId}`);
    }
    open.frames.push(frame);
    offset = frame.end;
    if (frame.batchEnd) {
      complete.push(open);
      nextId = open.id + 1;
      open = undefined;
    }
  }

  const dataEnd = open?.offset ?? offset;
  const dirtyEnd = nonZeroEnd(buf, dataEnd, buf.byteLength);
  let tail: SegmentTail = { kind: "clean" };
  if (dirtyEnd > dataEnd) {
    const reason = stopReason ?? (open === undefined ? "non-zero bytes after the last record" : "unfinished write batch");
    if (!options.isLast) {
      throw new CorruptLogError(file, offset, `${reason} in a segment that is not the newest`);
    }
    checkNoLaterBatch(file, buf, view, offset, dirtyEnd, open?.id ?? nextId);
    tail = { kind: "torn", offset: dataEnd, bytes: dirtyEnd - dataEnd, records: open?.frames.length ?? 0, reason };
  }
  return { batches: decodeBatches(file, buf, view, complete), dataEnd, tail };
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
    const read = readFrame(buf, view, at);
    if (read.kind === "record" && read.frame.payloadBytes >= PAYLOAD_BYTES_MIN) {
      tornId ??= read.frame.batchId;
      if (read.frame.batchId !== tornId) {
        throw new CorruptLogError(
          file,
          damageAt,
          `damaged record followed by an intact record of a later write (batch ${read.frame.batchId} at byte ${at}), ` +
            `so the damaged data had been synced`,
        );
      }
      at = read.frame.end;
      continue;
    }
    at++;
  }
}

/** Decodes complete batches, copying all entry data of the segment into one buffer they share. */
function decodeBatches(file: string, buf: Uint8Array, view: DataView, batches: readonly FramedBatch[]): ScannedBatch[] {
  let dataBytes = 0;
  for (const batch of batches) {
    for (const frame of batch.frames) {
      if (frame.type === "entry") dataBytes += Math.max(0, frame.payloadBytes - ENTRY_FIXED_BYTES);
    }
  }
  // One shared allocation: a million separate small buffers would cost seconds on replay.
  const arena = new Uint8Array(dataBytes);
  let arenaUsed = 0;
  const entryData = (at: number, bytes: number): Uint8Array => {
    arena.set(buf.subarray(at, at + bytes), arenaUsed);
    arenaUsed += bytes;
    return arena.subarray(arenaUsed - bytes, arenaUsed);
  };
  return batches.map((batch) => ({
    id: batch.id,
    offset: batch.offset,
    records: batch.frames.map((frame) => {
      try {
        return decodeRecord(frame, view, entryData);
      } catch (error) {
        if (error instanceof PayloadError) {
          throw new CorruptLogError(file, frame.offset, `invalid ${frame.type} record: ${error.message}`);
        }
        throw error;
      }
    }),
  }));
}
