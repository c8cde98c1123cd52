import { create, type MessageInitShape } from "@bufbuild/protobuf";
import * as pb from "../../gen/raftkv/v1/raft_pb.js";
import {
  decodeConfEntry,
  type ConfState,
  type Entry,
  type EntryType,
  type Message,
  type NodeId,
  type SnapshotMeta,
  type SnapshotRequest,
} from "../core/index.js";
import { assert, unreachable } from "../lib/assert.js";

/**
 * Conversion between the core's messages and their protobuf form (raft.proto mirrors core/types.ts field
 * by field).
 *
 * Outgoing (core -> protobuf) values come from our own core, so a value the wire cannot carry is a bug
 * and trips an assertion. Incoming (protobuf -> core) values come from another process and are never
 * trusted: every decoder is total. It returns either a core message that satisfies the wire contract or a
 * ConvertError naming the offending field, and never throws.
 */

/** The messages that travel in a Step call; snapshots have their own streaming call (InstallSnapshot). */
export type StepMessage = Exclude<Message, SnapshotRequest>;

/** Why a protobuf value cannot become a core value. `path` names the field, e.g. `messages[2].append_entries.entries[0].type`. */
export class ConvertError extends Error {
  override readonly name = "ConvertError";
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

export type Converted<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ConvertError };

const safeIntegerMax = BigInt(Number.MAX_SAFE_INTEGER);

// ---------------------------------------------------------------------------------------------------
// core -> protobuf

function u64(n: number, what: string): bigint {
  assert(Number.isSafeInteger(n) && n >= 0, () => `convert: ${what} = ${n} is not a non-negative safe integer`);
  return BigInt(n);
}

const entryTypeToProto: Readonly<Record<EntryType, pb.EntryType>> = {
  normal: pb.EntryType.NORMAL,
  noop: pb.EntryType.NOOP,
  conf: pb.EntryType.CONFIG,
};

function entryToProto(e: Entry): pb.Entry {
  return create(pb.EntrySchema, {
    term: u64(e.term, "entry.term"),
    index: u64(e.index, "entry.index"),
    type: entryTypeToProto[e.type],
    data: e.data,
  });
}

export function confStateToProto(conf: ConfState): pb.ConfState {
  return create(pb.ConfStateSchema, {
    voters: conf.voters.map((id) => u64(id, "conf.voters")),
    learners: conf.learners.map((id) => u64(id, "conf.learners")),
  });
}

export function snapshotMetaToProto(meta: SnapshotMeta): pb.SnapshotMeta {
  return create(pb.SnapshotMetaSchema, {
    index: u64(meta.index, "snapshot.index"),
    term: u64(meta.term, "snapshot.term"),
    conf: confStateToProto(meta.conf),
  });
}

export function messageToProto(m: StepMessage): pb.RaftMessage {
  return create(pb.RaftMessageSchema, { message: messageBodyToProto(m) });
}

/** The oneof of a RaftMessage: which kind of message, and its fields. */
type MessageBody = NonNullable<MessageInitShape<typeof pb.RaftMessageSchema>["message"]>;

function messageBodyToProto(m: StepMessage): MessageBody {
  const envelope = { from: u64(m.from, "from"), to: u64(m.to, "to"), term: u64(m.term, "term") };
  switch (m.type) {
    case "vote": {
      const lastLog = { lastLogIndex: u64(m.lastLogIndex, "lastLogIndex"), lastLogTerm: u64(m.lastLogTerm, "lastLogTerm") };
      return { case: "vote", value: { ...envelope, preVote: m.preVote, ...lastLog, transfer: m.transfer } };
    }
    case "voteResp":
      return { case: "voteResponse", value: { ...envelope, preVote: m.preVote, granted: m.granted } };
    case "append": {
      const prev = { prevIndex: u64(m.prevIndex, "prevIndex"), prevTerm: u64(m.prevTerm, "prevTerm") };
      return {
        case: "appendEntries",
        value: { ...envelope, ...prev, entries: m.entries.map(entryToProto), commit: u64(m.commit, "commit") },
      };
    }
    case "appendResp": {
      const hint = { hintIndex: u64(m.hintIndex, "hintIndex"), hintTerm: u64(m.hintTerm, "hintTerm") };
      return { case: "appendEntriesResponse", value: { ...envelope, reject: m.reject, index: u64(m.index, "index"), ...hint } };
    }
    case "heartbeat":
      return { case: "heartbeat", value: { ...envelope, commit: u64(m.commit, "commit"), readRound: u64(m.readRound, "readRound") } };
    case "heartbeatResp":
      return { case: "heartbeatResponse", value: { ...envelope, readRound: u64(m.readRound, "readRound") } };
    case "timeoutNow":
      return { case: "timeoutNow", value: envelope };
    case "readIndex":
      return { case: "readIndex", value: { ...envelope, requestIds: m.requestIds.map((r) => u64(r, "requestIds")) } };
    case "readIndexResp":
      return {
        case: "readIndexResponse",
        value: { ...envelope, requestIds: m.requestIds.map((r) => u64(r, "requestIds")), index: u64(m.index, "index") },
      };
    default:
      return unreachable(m, "message type");
  }
}

// ---------------------------------------------------------------------------------------------------
// protobuf -> core
//
// The decoders below throw ConvertError internally, which keeps each one a straight list of fields; the
// exported functions catch it at the boundary and return a Converted, so nothing escapes to a caller.

function num(v: bigint, path: string): number {
  // Generated code only yields uint64 values in [0, 2^64), but a message built in-process could hold any bigint.
  if (typeof v !== "bigint" || v < 0n) throw new ConvertError(path, `${String(v)} is not a uint64`);
  if (v > safeIntegerMax) throw new ConvertError(path, `${v} exceeds 2^53-1, the largest index, term or id raftkv accepts`);
  return Number(v);
}

function nodeId(v: bigint, path: string): NodeId {
  const id = num(v, path);
  if (id === 0) throw new ConvertError(path, "node id 0 means no node and is not valid here");
  return id;
}

function entryTypeFromProto(t: pb.EntryType, path: string): EntryType {
  switch (t) {
    case pb.EntryType.NORMAL:
      return "normal";
    case pb.EntryType.NOOP:
      return "noop";
    case pb.EntryType.CONFIG:
      return "conf";
    default:
      // Covers ENTRY_TYPE_UNSPECIFIED and numbers this build does not know (proto3 enums are open).
      throw new ConvertError(path, `entry type ${String(t)} is not normal, noop or config`);
  }
}

function entryFromProto(e: pb.Entry, path: string): Entry {
  const type = entryTypeFromProto(e.type, `${path}.type`);
  // The core applies every membership change it appends: one it cannot read must not reach the log.
  if (type === "conf" && decodeConfEntry(e.data) === undefined)
    throw new ConvertError(`${path}.data`, "a membership change that does not decode");
  return { term: num(e.term, `${path}.term`), index: num(e.index, `${path}.index`), type, data: e.data };
}

function idList(ids: readonly bigint[], path: string, seen: Set<NodeId>): NodeId[] {
  return ids.map((v, i) => {
    const id = nodeId(v, `${path}[${i}]`);
    if (seen.has(id)) throw new ConvertError(`${path}[${i}]`, `node ${id} is listed twice in the membership`);
    seen.add(id);
    return id;
  });
}

function confStateFromProto(c: pb.ConfState | undefined, path: string): ConfState {
  if (c === undefined) throw new ConvertError(path, "missing");
  const seen = new Set<NodeId>();
  const voters = idList(c.voters, `${path}.voters`, seen);
  const learners = idList(c.learners, `${path}.learners`, seen);
  if (voters.length === 0) throw new ConvertError(`${path}.voters`, "a membership needs at least one voter");
  return { voters, learners };
}

function snapshotMetaFromProtoUnchecked(meta: pb.SnapshotMeta | undefined, path: string): SnapshotMeta {
  if (meta === undefined) throw new ConvertError(path, "missing");
  return {
    index: num(meta.index, `${path}.index`),
    term: num(meta.term, `${path}.term`),
    conf: confStateFromProto(meta.conf, `${path}.conf`),
  };
}

function stepMessageFromProto(p: pb.RaftMessage, path: string): StepMessage {
  const body = p.message;
  switch (body.case) {
    case "vote":
      return voteFromProto(body.value, `${path}.vote`);
    case "voteResponse":
      return voteResponseFromProto(body.value, `${path}.vote_response`);
    case "appendEntries":
      return appendFromProto(body.value, `${path}.append_entries`);
    case "appendEntriesResponse":
      return appendResponseFromProto(body.value, `${path}.append_entries_response`);
    case "heartbeat": {
      const v = body.value;
      const at = `${path}.heartbeat`;
      return {
        type: "heartbeat",
        ...envelopeFromProto(v, at),
        commit: num(v.commit, `${at}.commit`),
        readRound: num(v.readRound, `${at}.read_round`),
      };
    }
    case "heartbeatResponse": {
      const at = `${path}.heartbeat_response`;
      return { type: "heartbeatResp", ...envelopeFromProto(body.value, at), readRound: num(body.value.readRound, `${at}.read_round`) };
    }
    case "timeoutNow":
      return { type: "timeoutNow", ...envelopeFromProto(body.value, `${path}.timeout_now`) };
    case "readIndex": {
      const at = `${path}.read_index`;
      return { type: "readIndex", ...envelopeFromProto(body.value, at), requestIds: requestIdsFromProto(body.value.requestIds, at) };
    }
    case "readIndexResponse": {
      const v = body.value;
      const at = `${path}.read_index_response`;
      return {
        type: "readIndexResp",
        ...envelopeFromProto(v, at),
        requestIds: requestIdsFromProto(v.requestIds, at),
        index: num(v.index, `${at}.index`),
      };
    }
    case undefined:
      throw new ConvertError(path, "no message set (the oneof is empty, or holds a kind this build does not know)");
    default:
      throw new ConvertError(path, `unknown message kind ${String((body as { case: unknown }).case)}`);
  }
}

/** The fields every message kind starts with. */
function envelopeFromProto(
  v: { readonly from: bigint; readonly to: bigint; readonly term: bigint },
  at: string,
): { from: NodeId; to: NodeId; term: number } {
  return { from: nodeId(v.from, `${at}.from`), to: nodeId(v.to, `${at}.to`), term: num(v.term, `${at}.term`) };
}

function requestIdsFromProto(ids: readonly bigint[], at: string): number[] {
  return ids.map((r, i) => num(r, `${at}.request_ids[${i}]`));
}

function voteFromProto(v: pb.VoteRequest, at: string): StepMessage {
  return {
    type: "vote",
    ...envelopeFromProto(v, at),
    preVote: v.preVote,
    lastLogIndex: num(v.lastLogIndex, `${at}.last_log_index`),
    lastLogTerm: num(v.lastLogTerm, `${at}.last_log_term`),
    transfer: v.transfer,
  };
}

function voteResponseFromProto(v: pb.VoteResponse, at: string): StepMessage {
  return { type: "voteResp", ...envelopeFromProto(v, at), preVote: v.preVote, granted: v.granted };
}

function appendFromProto(v: pb.AppendEntriesRequest, at: string): StepMessage {
  const prevIndex = num(v.prevIndex, `${at}.prev_index`);
  const entries = v.entries.map((e, i) => entryFromProto(e, `${at}.entries[${i}]`));
  // The wire contract (raft.proto): entries are consecutive from prev_index + 1. The core relies on it
  // when it splices them into its log, so a gap or an overlap never gets past this point.
  entries.forEach((e, i) => {
    if (e.index !== prevIndex + 1 + i) {
      throw new ConvertError(`${at}.entries[${i}].index`, `is ${e.index}, expected ${prevIndex + 1 + i} (prev_index + ${i + 1})`);
    }
  });
  return {
    type: "append",
    ...envelopeFromProto(v, at),
    prevIndex,
    prevTerm: num(v.prevTerm, `${at}.prev_term`),
    entries,
    commit: num(v.commit, `${at}.commit`),
  };
}

function appendResponseFromProto(v: pb.AppendEntriesResponse, at: string): StepMessage {
  return {
    type: "appendResp",
    ...envelopeFromProto(v, at),
    reject: v.reject,
    index: num(v.index, `${at}.index`),
    hintIndex: num(v.hintIndex, `${at}.hint_index`),
    hintTerm: num(v.hintTerm, `${at}.hint_term`),
  };
}

function converted<T>(decode: () => T): Converted<T> {
  try {
    return { ok: true, value: decode() };
  } catch (e) {
    if (e instanceof ConvertError) return { ok: false, error: e };
    throw e;
  }
}

/** One incoming message; `path` prefixes the field names in an error. */
export function messageFromProto(p: pb.RaftMessage, path = "message"): Converted<StepMessage> {
  return converted(() => stepMessageFromProto(p, path));
}

/**
 * The messages of one Step call. Each must come from `from` and be addressed to `to` (the batch's own
 * envelope): a receiver checks the envelope once and can then trust every message in it.
 */
export function stepMessagesFromProto(messages: readonly pb.RaftMessage[], from: NodeId, to: NodeId): Converted<StepMessage[]> {
  return converted(() =>
    messages.map((p, i) => {
      const path = `messages[${i}]`;
      const m = stepMessageFromProto(p, path);
      if (m.from !== from) throw new ConvertError(`${path}.from`, `is node ${m.from}, but the batch comes from node ${from}`);
      if (m.to !== to) throw new ConvertError(`${path}.to`, `is node ${m.to}, but the batch is addressed to node ${to}`);
      return m;
    }),
  );
}

export function snapshotMetaFromProto(meta: pb.SnapshotMeta | undefined, path = "meta"): Converted<SnapshotMeta> {
  return converted(() => snapshotMetaFromProtoUnchecked(meta, path));
}

/** A uint64 as a JS number, or an error when it is above 2^53-1. */
export function u64FromProto(v: bigint, path: string): Converted<number> {
  return converted(() => num(v, path));
}

/** A node id (a non-zero uint64 up to 2^53-1). */
export function nodeIdFromProto(v: bigint, path: string): Converted<NodeId> {
  return converted(() => nodeId(v, path));
}
