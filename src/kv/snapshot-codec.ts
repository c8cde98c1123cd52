import { clone, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ClientSessionSchema, CommandResultSchema, KvSnapshotSchema, MemberRecordSchema } from "../../gen/raftkv/v1/command_pb.js";
import type { KvSnapshot } from "../../gen/raftkv/v1/command_pb.js";
import { EventSchema, EventType } from "../../gen/raftkv/v1/kv_pb.js";
import type { KeyValue } from "../../gen/raftkv/v1/kv_pb.js";
import { KvError } from "./errors.js";
import { keyToString } from "./key-codec.js";
import {
  kvsElementBytes,
  kvsFieldNumber,
  readKeyValue,
  WireReader,
  wireLengthDelimited,
  writeKvsElement,
  type KeyValueView,
} from "./key-value-wire.js";
import { toSafeNumber } from "./key-record.js";
import type { KeyRecord } from "./key-record.js";
import { commandResultBytes } from "./session-table.js";
import type { Session } from "./session-table.js";
import type { EventKind, HistoryEvent } from "./watch-history.js";
import { toEvent } from "./watch-hub.js";

/** The KvSnapshot layout this code writes and reads (KvSnapshot.format_version). */
export const kvSnapshotFormatVersion = 1;

/** The state a snapshot holds, every list in its defined order. */
export interface SnapshotState {
  readonly appliedIndex: number;
  readonly revision: number;
  readonly compactRevision: number;
  /** In ascending key order; read once, lazily (a frozen view of the store: KeyIndex.freeze). */
  readonly records: Iterable<KeyRecord>;
  /** Least recently seen first. */
  readonly sessions: readonly Session[];
  /** Oldest first. */
  readonly history: readonly Pick<HistoryEvent, "revision" | "kind" | "key" | "kv" | "prevKv">[];
  /** Ascending by id. */
  readonly members: readonly MemberRecord[];
  readonly memberIdMax: number;
}

/** A member's name and URLs, as the membership changes in the log last set them. */
export interface MemberRecord {
  readonly id: number;
  readonly name: string;
  readonly peerUrl: string;
  readonly clientUrl: string;
}

/** KvSnapshot field numbers of the repeated fields (command.proto). */
const sessionsField = 6;
const historyField = 7;
const membersField = 8;
const memberIdMaxField = 9;

/**
 * Encodes a snapshot piece by piece, so a large store can be written or streamed without blocking the
 * event loop for the whole encoding: the caller may yield between chunks. The state is the caller's
 * frozen view (records, sessions and events are immutable; the records are a lazy view, KeyIndex.freeze).
 *
 * The concatenated chunks are exactly the bytes `toBinary(KvSnapshotSchema, ...)` writes for the
 * whole message: a message's encoding is the concatenation of its fields' encodings in field order, and
 * each element of a repeated message field is one length-delimited record of that field.
 */
export function* encodeKvSnapshotChunks(state: SnapshotState, chunkBytes: number): Generator<Uint8Array, void, undefined> {
  let writer = new BinaryWriter();
  const scalars = create(KvSnapshotSchema, {
    formatVersion: kvSnapshotFormatVersion,
    appliedIndex: BigInt(state.appliedIndex),
    revision: BigInt(state.revision),
    compactRevision: BigInt(state.compactRevision),
  });
  const head = toBinary(KvSnapshotSchema, scalars, { writeUnknownFields: false });
  // The head and the records go straight into chunk-sized buffers (key-value-wire.ts); the small rest
  // through protobuf-es's writer.
  let out = new Uint8Array(Math.max(chunkBytes, head.byteLength));
  out.set(head, 0);
  let pos = head.byteLength;
  for (const record of state.records) {
    const size = kvsElementBytes(record);
    if (pos + size > out.byteLength) {
      if (pos > 0) yield out.subarray(0, pos);
      out = new Uint8Array(Math.max(chunkBytes, size));
      pos = 0;
    }
    pos = writeKvsElement(out, pos, record);
  }
  if (pos > 0) yield out.subarray(0, pos);
  let buffered = 0;
  /** A chunk once about chunkBytes are buffered: the caller may yield to the event loop between two. */
  function* flushIfFull(): Generator<Uint8Array, void, undefined> {
    if (buffered < chunkBytes) return;
    yield writer.finish();
    writer = new BinaryWriter();
    buffered = 0;
  }
  for (const session of state.sessions) {
    const encoded = toBinary(
      ClientSessionSchema,
      create(ClientSessionSchema, {
        clientId: session.clientId,
        sequence: BigInt(session.sequence),
        lastSeenIndex: BigInt(session.lastSeenIndex),
        result: session.result,
        resultDropped: session.resultDropped,
      }),
      { writeUnknownFields: false },
    );
    writer.tag(sessionsField, WireType.LengthDelimited).bytes(encoded);
    buffered += encoded.length;
    yield* flushIfFull();
  }
  for (const event of state.history) {
    const encoded = toBinary(EventSchema, toEvent({ ...event, seq: 0, bytes: 0 }, true));
    writer.tag(historyField, WireType.LengthDelimited).bytes(encoded);
    buffered += encoded.length;
    yield* flushIfFull();
  }
  for (const member of state.members) {
    const encoded = toBinary(MemberRecordSchema, create(MemberRecordSchema, { ...member, id: BigInt(member.id) }));
    writer.tag(membersField, WireType.LengthDelimited).bytes(encoded);
    buffered += encoded.length;
    yield* flushIfFull();
  }
  writeCounter(writer, memberIdMaxField, state.memberIdMax);
  // Whatever is buffered, counted or not (member_id_max is not), ends the encoding.
  const last = writer.finish();
  if (last.byteLength > 0) yield last;
}

/** A uint64 field holding a safe integer; values below 2^32 take the cheaper uint32 path (same varint). */
function writeCounter(writer: BinaryWriter, field: number, value: number): void {
  if (value === 0) return;
  writer.tag(field, WireType.Varint);
  if (value <= 0xffffffff) writer.uint32(value);
  else writer.uint64(value);
}

export function encodeKvSnapshot(state: SnapshotState): Uint8Array {
  const chunks = [...encodeKvSnapshotChunks(state, 1 << 20)];
  const bytes = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** A decoded snapshot, with the key string of each record (same order) so the store need not convert again. */
export interface DecodedSnapshot extends SnapshotState {
  readonly records: readonly KeyRecord[];
  readonly keys: readonly string[];
}

/**
 * Decodes and checks a snapshot completely before anything uses it, so a bad snapshot is refused as a
 * whole (typed "invalidSnapshot") and the store keeps its state.
 */
export function decodeKvSnapshot(bytes: Uint8Array): DecodedSnapshot {
  let snapshot: KvSnapshot;
  let kvs: Uint8Array[];
  try {
    const split = splitKvs(bytes);
    kvs = split.kvs;
    snapshot = fromBinary(KvSnapshotSchema, split.rest, { readUnknownFields: false });
  } catch (error) {
    bad(`cannot decode: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (snapshot.formatVersion !== kvSnapshotFormatVersion) {
    bad(`format version ${snapshot.formatVersion} is not supported (this build reads version ${kvSnapshotFormatVersion})`);
  }
  const appliedIndex = safe(snapshot.appliedIndex, "applied_index");
  const revision = safe(snapshot.revision, "revision");
  const compactRevision = safe(snapshot.compactRevision, "compact_revision");
  if (compactRevision < 1 || compactRevision > revision + 1) {
    bad(`compact_revision ${compactRevision} is outside [1, revision + 1 = ${revision + 1}]`);
  }
  const { records, keys } = decodeRecords(kvs, revision);
  const sessions = decodeSessions(snapshot.sessions, appliedIndex);
  const history = decodeHistory(snapshot.history, compactRevision, revision);
  const memberIdMax = safe(snapshot.memberIdMax, "member_id_max");
  const members = decodeMembers(snapshot.members, memberIdMax);
  return { appliedIndex, revision, compactRevision, records, keys, sessions, history, members, memberIdMax };
}

/**
 * The kvs elements of a KvSnapshot (views of `bytes`), and every other field's bytes as they were, in
 * order: the message without its kvs, for protobuf-es to decode (a message's fields may come in any
 * order and each is self-delimited, so dropping some leaves a valid encoding of the rest).
 */
function splitKvs(bytes: Uint8Array): { kvs: Uint8Array[]; rest: Uint8Array } {
  const reader = new WireReader(bytes);
  const kvs: Uint8Array[] = [];
  const rest: Uint8Array[] = [];
  let restBytes = 0;
  while (!reader.done) {
    const start = reader.pos;
    const { field, wireType } = reader.tag();
    if (field === kvsFieldNumber && wireType === wireLengthDelimited) {
      kvs.push(reader.delimited());
      continue;
    }
    reader.skip(wireType);
    rest.push(bytes.subarray(start, reader.pos));
    restBytes += reader.pos - start;
  }
  const joined = new Uint8Array(restBytes);
  let offset = 0;
  for (const part of rest) {
    joined.set(part, offset);
    offset += part.byteLength;
  }
  return { kvs, rest: joined };
}

/** The live keys, which must come in strictly ascending order. */
function decodeRecords(kvs: readonly Uint8Array[], revision: number): { records: KeyRecord[]; keys: string[] } {
  const records: KeyRecord[] = [];
  const keys: string[] = [];
  let previousKey: string | undefined;
  kvs.forEach((payload, i) => {
    let kv: KeyValueView;
    try {
      kv = readKeyValue(payload);
    } catch (error) {
      bad(`kvs[${i}]: cannot decode: ${error instanceof Error ? error.message : String(error)}`);
    }
    const record = liveRecord(kv, `kvs[${i}]`, revision);
    const key = keyToString(record.key);
    if (previousKey !== undefined && key <= previousKey) bad(`kvs[${i}]: keys are not in strictly ascending order`);
    previousKey = key;
    records.push(record);
    keys.push(key);
  });
  return { records, keys };
}

/** Members: ascending, unique, positive ids, none above member_id_max. */
function decodeMembers(wire: KvSnapshot["members"], memberIdMax: number): MemberRecord[] {
  let previous = 0;
  return wire.map((m, i) => {
    const id = safe(m.id, `members[${i}].id`);
    if (id <= previous || id > memberIdMax) bad(`members[${i}]: id ${id} is out of order or above member_id_max ${memberIdMax}`);
    previous = id;
    return { id, name: m.name, peerUrl: m.peerUrl, clientUrl: m.clientUrl };
  });
}

/** Client sessions: unique ids, least recently seen first, none seen after the applied index. */
function decodeSessions(wire: KvSnapshot["sessions"], appliedIndex: number): Session[] {
  const sessions: Session[] = [];
  const clientIds = new Set<string>();
  let previousSeen = 0;
  wire.forEach((s, i) => {
    const at = `sessions[${i}]`;
    if (s.clientId === "") bad(`${at}: empty client_id`);
    if (clientIds.has(s.clientId)) bad(`${at}: client_id ${JSON.stringify(s.clientId)} appears twice`);
    clientIds.add(s.clientId);
    const sequence = safe(s.sequence, `${at}.sequence`);
    const lastSeenIndex = safe(s.lastSeenIndex, `${at}.last_seen_index`);
    if (sequence < 1) bad(`${at}: sequence must be at least 1`);
    if (lastSeenIndex < previousSeen || lastSeenIndex > appliedIndex) {
      bad(`${at}: last_seen_index ${lastSeenIndex} is out of order or beyond applied_index ${appliedIndex}`);
    }
    previousSeen = lastSeenIndex;
    if (s.result === undefined || s.result.result.case === undefined) bad(`${at}: no result`);
    // A clone: its bytes must not stay views into the snapshot buffer.
    const result = clone(CommandResultSchema, s.result);
    sessions.push({
      clientId: s.clientId,
      sequence,
      lastSeenIndex,
      result,
      resultBytes: commandResultBytes(result),
      resultDropped: s.resultDropped,
    });
  });
  return sessions;
}

/** The watch history: puts and deletes, oldest first, none older than the compact revision. */
function decodeHistory(wire: KvSnapshot["history"], compactRevision: number, revision: number): SnapshotState["history"] {
  const history: SnapshotState["history"][number][] = [];
  let previousRevision = compactRevision;
  wire.forEach((event, i) => {
    const at = `history[${i}]`;
    if (event.kv === undefined) bad(`${at}: no kv`);
    let kind: EventKind;
    let kv: KeyRecord;
    if (event.type === EventType.PUT) {
      kind = "put";
      kv = liveRecord(event.kv, `${at}.kv`, revision);
    } else if (event.type === EventType.DELETE) {
      kind = "delete";
      kv = tombstone(event.kv, `${at}.kv`, revision);
    } else {
      bad(`${at}: unknown event type ${event.type}`);
    }
    if (kv.modRevision < previousRevision) bad(`${at}: revision ${kv.modRevision} is out of order or older than compact_revision`);
    previousRevision = kv.modRevision;
    const prevKv = event.prevKv === undefined ? undefined : liveRecord(event.prevKv, `${at}.prev_kv`, revision);
    history.push({ revision: kv.modRevision, kind, key: keyToString(kv.key), kv, prevKv });
  });
  return history;
}

function liveRecord(kv: KeyValue | KeyValueView, at: string, revision: number): KeyRecord {
  const record = toRecord(kv, at);
  if (record.key.length === 0) bad(`${at}: empty key`);
  if (record.version < 1) bad(`${at}: version must be at least 1`);
  if (record.createRevision < 1 || record.createRevision > record.modRevision || record.modRevision > revision) {
    bad(`${at}: revisions must satisfy 1 <= create_revision <= mod_revision <= revision ${revision}`);
  }
  return record;
}

function tombstone(kv: KeyValue, at: string, revision: number): KeyRecord {
  const record = toRecord(kv, at);
  if (record.key.length === 0) bad(`${at}: empty key`);
  if (record.modRevision < 1 || record.modRevision > revision) bad(`${at}: mod_revision out of range`);
  return record;
}

function toRecord(kv: KeyValue | KeyValueView, at: string): KeyRecord {
  // Copies: the decoded bytes are views into the snapshot buffer, which the caller may reuse.
  return {
    key: kv.key.slice(),
    value: kv.value.slice(),
    createRevision: counter(kv.createRevision, `${at}.create_revision`),
    modRevision: counter(kv.modRevision, `${at}.mod_revision`),
    version: counter(kv.version, `${at}.version`),
  };
}

/** A KeyValue counter: read by hand it is a safe integer already (WireReader.varint), by protobuf-es a bigint. */
function counter(value: bigint | number, field: string): number {
  return typeof value === "number" ? value : safe(value, field);
}

function safe(value: bigint, field: string): number {
  const n = toSafeNumber(value);
  if (n === undefined) bad(`${field} ${value} exceeds ${Number.MAX_SAFE_INTEGER}`);
  return n;
}

function bad(reason: string): never {
  throw new KvError({ kind: "invalidSnapshot", reason });
}
