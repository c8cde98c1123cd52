import type { KeyRecord } from "./key-record.js";

/**
 * KvSnapshot.kvs, the bulk of every snapshot, written and read by hand: one KeyValue per live key, as a
 * length-delimited field 5 of KvSnapshot (command.proto, kv.proto). protobuf-es's reflection-based
 * codec built a message object per key and its BinaryWriter grew and copied its buffer chunk after
 * chunk: most of a snapshot's encoding and decoding time under `node --cpu-prof`. The bytes
 * are exactly what toBinary writes (fields in number order, proto3 defaults omitted); snapshot tests
 * compare the two.
 */

/** KvSnapshot's field number of kvs. */
export const kvsFieldNumber = 5;
const wireVarint = 0;
const wireFixed64 = 1;
export const wireLengthDelimited = 2;
const wireFixed32 = 5;
/** The tag byte of a length-delimited field 5. */
const kvsTag = (kvsFieldNumber << 3) | wireLengthDelimited;

/** The bytes of the varint encoding of `n`, a non-negative safe integer. */
function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    bytes++;
  }
  return bytes;
}

function writeVarint(out: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) {
    out[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos++] = n;
  return pos;
}

/** The bytes of a uint64 field holding `n` (none for 0, a proto3 default). */
function counterBytes(n: number): number {
  return n === 0 ? 0 : 1 + varintBytes(n);
}

/** The bytes of a bytes field holding `b` (none when empty). */
function bytesFieldBytes(b: Uint8Array): number {
  return b.byteLength === 0 ? 0 : 1 + varintBytes(b.byteLength) + b.byteLength;
}

function keyValueBytes(r: KeyRecord): number {
  return (
    bytesFieldBytes(r.key) +
    bytesFieldBytes(r.value) +
    counterBytes(r.createRevision) +
    counterBytes(r.modRevision) +
    counterBytes(r.version)
  );
}

/** The bytes `record` takes as one kvs element: tag, length, KeyValue. */
export function kvsElementBytes(record: KeyRecord): number {
  const inner = keyValueBytes(record);
  return 1 + varintBytes(inner) + inner;
}

/** Writes `record` as one kvs element at `pos` of `out` (which has room: kvsElementBytes); returns the end. */
export function writeKvsElement(out: Uint8Array, pos: number, record: KeyRecord): number {
  out[pos++] = kvsTag;
  pos = writeVarint(out, pos, keyValueBytes(record));
  pos = writeBytesField(out, pos, 1, record.key);
  pos = writeBytesField(out, pos, 2, record.value);
  pos = writeCounterField(out, pos, 3, record.createRevision);
  pos = writeCounterField(out, pos, 4, record.modRevision);
  return writeCounterField(out, pos, 5, record.version);
}

function writeBytesField(out: Uint8Array, pos: number, field: number, b: Uint8Array): number {
  if (b.byteLength === 0) return pos;
  out[pos++] = (field << 3) | wireLengthDelimited;
  pos = writeVarint(out, pos, b.byteLength);
  out.set(b, pos);
  return pos + b.byteLength;
}

function writeCounterField(out: Uint8Array, pos: number, field: number, n: number): number {
  if (n === 0) return pos;
  out[pos++] = (field << 3) | wireVarint;
  return writeVarint(out, pos, n);
}

/** A malformed encoding; the caller words it for its context. */
export class WireError extends Error {
  override readonly name = "WireError";
}

/** Reads the bytes of a message field by field, by hand (see the module comment). */
export class WireReader {
  pos: number;

  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    readonly end = bytes.byteLength,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint as a safe integer; WireError when it is malformed, truncated or above 2^53 - 1. */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError("truncated varint");
      const byte = this.bytes[this.pos++] as number;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) throw new WireError(`varint ${value} exceeds ${Number.MAX_SAFE_INTEGER}`);
        return value;
      }
      scale *= 128;
    }
    throw new WireError("varint longer than 10 bytes");
  }

  /** The next tag as field number and wire type. */
  tag(): { field: number; wireType: number } {
    const tag = this.varint();
    return { field: Math.floor(tag / 8), wireType: tag % 8 };
  }

  /** A length-delimited payload, as a view of the input (no copy). */
  delimited(): Uint8Array {
    const length = this.varint();
    if (length > this.end - this.pos) throw new WireError(`length ${length} runs past the end`);
    const view = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return view;
  }

  /** Skips the value of a field of `wireType`. */
  skip(wireType: number): void {
    switch (wireType) {
      case wireVarint:
        this.varint();
        return;
      case wireFixed64:
        this.advance(8);
        return;
      case wireLengthDelimited:
        this.delimited();
        return;
      case wireFixed32:
        this.advance(4);
        return;
      default:
        throw new WireError(`unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) throw new WireError("truncated field");
    this.pos += n;
  }
}

/** A KeyValue's fields, the bytes still views into the input. */
export interface KeyValueView {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

const empty: Uint8Array = new Uint8Array(0);

/** Decodes the KeyValue in `payload` (unknown fields skipped, a repeated scalar field's last value wins, as protobuf has it). */
export function readKeyValue(payload: Uint8Array): KeyValueView {
  const reader = new WireReader(payload);
  let key: Uint8Array = empty;
  let value: Uint8Array = empty;
  let createRevision = 0;
  let modRevision = 0;
  let version = 0;
  while (!reader.done) {
    const { field, wireType } = reader.tag();
    if (field === 1 && wireType === wireLengthDelimited) key = reader.delimited();
    else if (field === 2 && wireType === wireLengthDelimited) value = reader.delimited();
    else if (field === 3 && wireType === wireVarint) createRevision = reader.varint();
    else if (field === 4 && wireType === wireVarint) modRevision = reader.varint();
    else if (field === 5 && wireType === wireVarint) version = reader.varint();
    else reader.skip(wireType);
  }
  return { key, value, createRevision, modRevision, version };
}
