import { crc32c } from "@node-rs/crc32";
import { assert } from "../lib/assert.js";

/**
 * Record framing, shared by every WAL record (little-endian):
 *
 *   offset  size  field
 *        0     4  crc32c of bytes [4, 20 + length): the rest of the header and the payload
 *        4     4  length of the payload in bytes
 *        8     8  batch id (float64 holding a safe integer): the write batch the record belongs to
 *       16     1  type (recordTypes)
 *       17     1  flags: bit 0 = last record of its batch
 *       18     2  zero
 *       20     …  payload
 *
 * A batch is what one group commit writes with one write and one fdatasync. Replay applies a batch only
 * once it has seen its last record, so a crash never leaves half a save on disk; batch ids increase by one
 * per batch across all segments, which is what tells a torn last write (records of the newest batch after
 * the damage) from damage in the middle (records of a later batch after the damage). An all-zero header
 * marks the end of the data: segments are zero-filled before use, and type 0 is not a valid type.
 */
export const recordHeaderBytes = 20;

/** The largest payload one record may carry; larger entries are refused rather than split. */
export const recordPayloadBytesMax = 1 << 30;

export const recordTypes = {
  segmentHeader: 1,
  hardState: 2,
  entry: 3,
  reset: 4,
} as const;
export type RecordType = keyof typeof recordTypes;

/** Record types by code (index); undefined for invalid codes. An array: this is replay's hottest path. */
const typeByCode: readonly (RecordType | undefined)[] = (() => {
  const types: (RecordType | undefined)[] = new Array<RecordType | undefined>(256).fill(undefined);
  for (const [name, code] of Object.entries(recordTypes)) types[code] = name as RecordType;
  return types;
})();

const flagBatchEnd = 1;

export interface RecordFrame {
  readonly kind: "record";
  readonly offset: number;
  readonly type: RecordType;
  readonly batchId: number;
  readonly batchEnd: boolean;
  readonly payloadOffset: number;
  readonly payloadBytes: number;
  /** Offset just past the record. */
  readonly end: number;
}

/** What readFrame finds: a record, zeros (the end of the data), or damage. */
export type FrameRead = RecordFrame | { readonly kind: "zero" } | { readonly kind: "bad"; readonly reason: string };

const zeroRead: FrameRead = { kind: "zero" };

/** Writes a complete record (header and payload) at `offset`; returns the offset past it. */
export function writeRecord(
  buf: Uint8Array,
  view: DataView,
  offset: number,
  type: RecordType,
  batchId: number,
  batchEnd: boolean,
  payloadBytes: number,
  writePayload: (payloadOffset: number) => void,
): number {
  assert(payloadBytes <= recordPayloadBytesMax, () => `record payload of ${payloadBytes} bytes is too large`);
  assert(Number.isSafeInteger(batchId) && batchId >= 0, () => `bad batch id ${batchId}`);
  const end = offset + recordHeaderBytes + payloadBytes;
  assert(end <= buf.byteLength, "record does not fit its buffer");
  view.setUint32(offset + 4, payloadBytes, true);
  view.setFloat64(offset + 8, batchId, true);
  view.setUint8(offset + 16, recordTypes[type]);
  view.setUint8(offset + 17, batchEnd ? flagBatchEnd : 0);
  view.setUint16(offset + 18, 0, true);
  writePayload(offset + recordHeaderBytes);
  view.setUint32(offset, crc32c(buf.subarray(offset + 4, end)), true);
  return end;
}

/**
 * Reads the record at `offset`, checking everything that can be checked without knowing what came before.
 * Never throws: damage is reported as `bad` with the reason.
 */
export function readFrame(buf: Uint8Array, view: DataView, offset: number): FrameRead {
  const available = buf.byteLength - offset;
  if (available < recordHeaderBytes) {
    return isZero(buf, offset, buf.byteLength) ? zeroRead : { kind: "bad", reason: "truncated record header" };
  }
  const flags = view.getUint8(offset + 17);
  const type = typeByCode[view.getUint8(offset + 16)];
  if (type === undefined || flags > flagBatchEnd || view.getUint16(offset + 18, true) !== 0) {
    return isZero(buf, offset, offset + recordHeaderBytes) ? zeroRead : { kind: "bad", reason: "invalid record header" };
  }
  const payloadBytes = view.getUint32(offset + 4, true);
  if (payloadBytes > available - recordHeaderBytes) {
    return { kind: "bad", reason: `record length ${payloadBytes} runs past the end of the file` };
  }
  const batchId = view.getFloat64(offset + 8, true);
  if (!Number.isSafeInteger(batchId) || batchId < 0) return { kind: "bad", reason: "invalid batch id" };
  const end = offset + recordHeaderBytes + payloadBytes;
  if (crc32c(buf.subarray(offset + 4, end)) !== view.getUint32(offset, true)) {
    return { kind: "bad", reason: "record checksum mismatch" };
  }
  return {
    kind: "record",
    offset,
    type,
    batchId,
    batchEnd: (flags & flagBatchEnd) !== 0,
    payloadOffset: offset + recordHeaderBytes,
    payloadBytes,
    end,
  };
}

/**
 * Reads the header of a record that readFrame has already accepted (no checks, no checksum): the second
 * pass of replay, over bytes known to be good.
 */
export function readCheckedFrame(view: DataView, offset: number): RecordFrame {
  const payloadBytes = view.getUint32(offset + 4, true);
  const type = typeByCode[view.getUint8(offset + 16)];
  assert(type !== undefined, "re-read of a record that was not checked");
  return {
    kind: "record",
    offset,
    type,
    batchId: view.getFloat64(offset + 8, true),
    batchEnd: (view.getUint8(offset + 17) & flagBatchEnd) !== 0,
    payloadOffset: offset + recordHeaderBytes,
    payloadBytes,
    end: offset + recordHeaderBytes + payloadBytes,
  };
}

const zeroChunk = new Uint8Array(64 * 1024);

/** True when buf[from, to) is all zero bytes; compares in native chunks, since segments are large. */
export function isZero(buf: Uint8Array, from: number, to: number): boolean {
  for (let at = from; at < to; at += zeroChunk.byteLength) {
    const len = Math.min(zeroChunk.byteLength, to - at);
    if (!Buffer.from(buf.buffer, buf.byteOffset + at, len).equals(zeroChunk.subarray(0, len))) return false;
  }
  return true;
}

/** The offset just past the last non-zero byte in buf[from, to), or `from` when all are zero. */
export function nonZeroEnd(buf: Uint8Array, from: number, to: number): number {
  let chunkEnd = to;
  while (chunkEnd > from) {
    const chunkStart = Math.max(from, chunkEnd - zeroChunk.byteLength);
    if (!isZero(buf, chunkStart, chunkEnd)) {
      let at = chunkEnd;
      while (buf[at - 1] === 0) at--;
      return at;
    }
    chunkEnd = chunkStart;
  }
  return from;
}

/** The offset of the first non-zero byte in buf[from, to), or `to` when all are zero. */
export function nextNonZero(buf: Uint8Array, from: number, to: number): number {
  let chunkStart = from;
  while (chunkStart < to) {
    const chunkEnd = Math.min(to, chunkStart + zeroChunk.byteLength);
    if (!isZero(buf, chunkStart, chunkEnd)) {
      let at = chunkStart;
      while (buf[at] === 0) at++;
      return at;
    }
    chunkStart = chunkEnd;
  }
  return to;
}
