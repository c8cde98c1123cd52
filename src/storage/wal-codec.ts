import { assert } from "../lib/assert.js";
import { decodeConfEntry } from "../core/conf-change.js";
import type { ConfState, Entry, EntryType, HardState } from "../core/types.js";
import { recordHeaderBytes, writeRecord, type RecordFrame } from "./record.js";

/**
 * Payloads of WAL records. Numbers are float64 holding safe integers (indexes and terms are JS numbers
 * everywhere in raftkv); decoding checks every one, because a record that passed its checksum can still
 * have been written by a buggy or newer version.
 */
export const walFormatVersion = 1;

/**
 * The first record of every segment. It carries the state a reader needs to start replay from this
 * segment alone, which is what lets compaction delete every older segment.
 */
export interface SegmentHeader {
  readonly formatVersion: number;
  readonly seq: number;
  /** Index and term of the last entry written before this segment (what the segment's entries follow). */
  readonly prevIndex: number;
  readonly prevTerm: number;
  /** The hard state in force when the segment was started. */
  readonly hardState: HardState;
  /** The membership the directory was created with; used only while there is no snapshot. */
  readonly bootstrapConf: ConfState;
}

export type WalRecord =
  | { readonly type: "segmentHeader"; readonly header: SegmentHeader }
  | { readonly type: "hardState"; readonly hardState: HardState }
  /** An entry replaces every entry at or after its index (a follower overwriting a conflicting tail). */
  | { readonly type: "entry"; readonly entry: Entry }
  /** The log was reset to start after an installed snapshot at (index, term): every earlier record is void. */
  | { readonly type: "reset"; readonly index: number; readonly term: number };

/** A checksummed record whose content makes no sense. */
export class PayloadError extends Error {
  override readonly name = "PayloadError";
}

const f64 = 8;
export const entryFixedBytes = 2 * f64 + 1;
const hardStateBytes = 3 * f64;
const resetBytes = 2 * f64;
/** An entry's type as the u8 in its record (docs/storage.md). */
const entryTypeCodes: Readonly<Record<EntryType, number>> = { normal: 0, noop: 1, conf: 2 };
/** Entry types by code; an array, as decoding runs for every entry in replay. */
const entryTypeByCode: readonly (EntryType | undefined)[] = ((): (EntryType | undefined)[] => {
  const types: (EntryType | undefined)[] = [];
  for (const [type, code] of Object.entries(entryTypeCodes)) types[code] = type as EntryType;
  return types;
})();

/** More members than any Raft group has; bounds decoding of a damaged count. */
export const confMembersMax = 1024;

export function recordBytes(record: WalRecord): number {
  return recordHeaderBytes + payloadBytes(record);
}

/** Encodes records as one batch; the last record carries the batch-end flag. */
export function encodeBatch(batchId: number, records: readonly WalRecord[]): Uint8Array {
  assert(records.length > 0, "empty batch");
  let total = 0;
  for (const record of records) total += recordBytes(record);
  const buf = new Uint8Array(total);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let offset = 0;
  records.forEach((record, i) => {
    offset = writeRecord(buf, view, offset, record.type, batchId, i === records.length - 1, payloadBytes(record), (at) =>
      writePayload(record, buf, view, at),
    );
  });
  assert(offset === total, "batch size mismatch");
  return buf;
}

function payloadBytes(record: WalRecord): number {
  switch (record.type) {
    case "segmentHeader":
      return 4 + 3 * f64 + hardStateBytes + confBytes(record.header.bootstrapConf);
    case "hardState":
      return hardStateBytes;
    case "entry":
      return entryFixedBytes + record.entry.data.byteLength;
    case "reset":
      return resetBytes;
  }
}

function writePayload(record: WalRecord, buf: Uint8Array, view: DataView, at: number): void {
  switch (record.type) {
    case "segmentHeader": {
      const h = record.header;
      view.setUint32(at, h.formatVersion, true);
      at = putNumbers(view, at + 4, [h.seq, h.prevIndex, h.prevTerm]);
      at = putHardState(view, at, h.hardState);
      writeConf(view, at, h.bootstrapConf);
      return;
    }
    case "hardState":
      putHardState(view, at, record.hardState);
      return;
    case "entry": {
      const e = record.entry;
      at = putNumbers(view, at, [e.index, e.term]);
      view.setUint8(at, entryTypeCodes[e.type]);
      buf.set(e.data, at + 1);
      return;
    }
    case "reset":
      putNumbers(view, at, [record.index, record.term]);
      return;
  }
}

/**
 * Decodes the payload of a checksummed frame. `entryData` produces an entry's data from its position, so
 * the caller decides whether entries share a buffer. Throws PayloadError when the content is invalid.
 */
export function decodeRecord(frame: RecordFrame, view: DataView, entryData: (offset: number, bytes: number) => Uint8Array): WalRecord {
  const at = frame.payloadOffset;
  const bytes = frame.payloadBytes;
  switch (frame.type) {
    case "segmentHeader": {
      const fixed = 4 + 3 * f64 + hardStateBytes;
      if (bytes < fixed) throw new PayloadError("segment header too short");
      const formatVersion = view.getUint32(at, true);
      if (formatVersion !== walFormatVersion) {
        throw new PayloadError(`unsupported format version ${formatVersion} (this build reads ${walFormatVersion})`);
      }
      const seq = getNumber(view, at + 4);
      const prevIndex = getNumber(view, at + 4 + f64);
      const prevTerm = getNumber(view, at + 4 + 2 * f64);
      const hardState = getHardState(view, at + 4 + 3 * f64);
      const bootstrapConf = readConf(view, at + fixed, bytes - fixed);
      return { type: "segmentHeader", header: { formatVersion, seq, prevIndex, prevTerm, hardState, bootstrapConf } };
    }
    case "hardState":
      if (bytes !== hardStateBytes) throw new PayloadError("hard state record of the wrong size");
      return { type: "hardState", hardState: getHardState(view, at) };
    case "entry": {
      if (bytes < entryFixedBytes) throw new PayloadError("entry record too short");
      const index = getNumber(view, at);
      const term = getNumber(view, at + f64);
      const code = view.getUint8(at + 2 * f64);
      const type = entryTypeByCode[code];
      if (type === undefined) throw new PayloadError(`unknown entry type ${code}`);
      if (index < 1) throw new PayloadError("entry index 0");
      const data = entryData(at + entryFixedBytes, bytes - entryFixedBytes);
      // The core applies every membership change in its log: one it cannot read is damage, not data.
      if (type === "conf" && decodeConfEntry(data) === undefined) throw new PayloadError("membership change that does not decode");
      return { type: "entry", entry: { index, term, type, data } };
    }
    case "reset": {
      if (bytes !== resetBytes) throw new PayloadError("reset record of the wrong size");
      return { type: "reset", index: getNumber(view, at), term: getNumber(view, at + f64) };
    }
  }
}

export function confBytes(conf: ConfState): number {
  return 8 + (conf.voters.length + conf.learners.length) * f64;
}

/** Writes a membership (voters then learners, each a u32 count and the ids). Returns the offset past it. */
export function writeConf(view: DataView, at: number, conf: ConfState): number {
  for (const ids of [conf.voters, conf.learners]) {
    view.setUint32(at, ids.length, true);
    at = putNumbers(view, at + 4, ids);
  }
  return at;
}

/** Reads a membership that must occupy exactly `bytes` bytes. */
export function readConf(view: DataView, at: number, bytes: number): ConfState {
  const end = at + bytes;
  const lists: number[][] = [];
  for (let i = 0; i < 2; i++) {
    if (end - at < 4) throw new PayloadError("membership truncated");
    const count = view.getUint32(at, true);
    if (count > confMembersMax || end - at - 4 < count * f64) throw new PayloadError("membership count out of range");
    const ids: number[] = [];
    for (let k = 0; k < count; k++) ids.push(getNumber(view, at + 4 + k * f64));
    lists.push(ids);
    at += 4 + count * f64;
  }
  if (at !== end) throw new PayloadError("membership has trailing bytes");
  const [voters = [], learners = []] = lists;
  return { voters, learners };
}

function putHardState(view: DataView, at: number, hs: HardState): number {
  return putNumbers(view, at, [hs.term, hs.vote, hs.commit]);
}

function getHardState(view: DataView, at: number): HardState {
  return { term: getNumber(view, at), vote: getNumber(view, at + f64), commit: getNumber(view, at + 2 * f64) };
}

function putNumbers(view: DataView, at: number, values: readonly number[]): number {
  for (const value of values) {
    assert(Number.isSafeInteger(value) && value >= 0, () => `storage can only encode safe non-negative integers, got ${value}`);
    view.setFloat64(at, value, true);
    at += f64;
  }
  return at;
}

function getNumber(view: DataView, at: number): number {
  const value = view.getFloat64(at, true);
  if (!Number.isSafeInteger(value) || value < 0) throw new PayloadError(`invalid number ${value}`);
  return value;
}
