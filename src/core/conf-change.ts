import type { ConfState, NodeId } from "./types.js";

/**
 * A single-server membership change (Ongaro's thesis, 4.1), carried by a log entry of type `conf`.
 *
 * - `addLearner`: a new member that receives the log but neither votes nor counts for a quorum;
 * - `addVoter`: a new voting member (a learner first and `promote` is safer: an empty voter counts
 *   toward the quorum before it holds anything);
 * - `promote`: a learner becomes a voter;
 * - `remove`: a member (learner or voter, the leader included) leaves;
 * - `update`: the member set is unchanged; only `context` (the member's name and URLs) is new.
 *
 * `context` is opaque to the core: the driver puts the member's metadata there (a protobuf Member), so
 * it is replicated, persisted and compacted with the change itself.
 */
export type ConfChangeOp = "addLearner" | "addVoter" | "promote" | "remove" | "update";

export interface ConfChange {
  readonly op: ConfChangeOp;
  readonly nodeId: NodeId;
  readonly context: Uint8Array;
}

const opCodes: Readonly<Record<ConfChangeOp, number>> = { addLearner: 1, addVoter: 2, promote: 3, remove: 4, update: 5 };
const opByCode: ReadonlyMap<number, ConfChangeOp> = new Map(Object.entries(opCodes).map(([op, code]) => [code, op as ConfChangeOp]));

/** The version byte of the encoding below; a decoder refuses any other. */
const confChangeVersion = 1;
/** More members than any Raft group has; bounds decoding of a damaged count. */
const membersMax = 1024;

/** A `conf` entry as it is in the log: the change, and the whole membership it results in. */
export interface ConfEntry {
  readonly change: ConfChange;
  /**
   * The membership once the change is made. Carried whole, not as a delta: a node that joins learns
   * the membership from the first conf entry it receives, although the cluster's initial one was never
   * in the log (it was each founding member's bootstrap configuration).
   */
  readonly conf: ConfState;
}

/**
 * The data of a `conf` entry: version (u8), op code (u8), node id (u64), voter count (u16) and ids
 * (u64 each), learner count (u16) and ids, then the context. Big-endian.
 */
export function encodeConfEntry(entry: ConfEntry): Uint8Array {
  const { change, conf } = entry;
  const headerBytes = 2 + 8 + 2 + 8 * conf.voters.length + 2 + 8 * conf.learners.length;
  const out = new Uint8Array(headerBytes + change.context.byteLength);
  const view = new DataView(out.buffer);
  let at = 0;
  view.setUint8(at++, confChangeVersion);
  view.setUint8(at++, opCodes[change.op]);
  view.setBigUint64(at, BigInt(change.nodeId));
  at += 8;
  for (const ids of [conf.voters, conf.learners]) {
    view.setUint16(at, ids.length);
    at += 2;
    for (const id of ids) {
      view.setBigUint64(at, BigInt(id));
      at += 8;
    }
  }
  out.set(change.context, at);
  return out;
}

/**
 * The change and membership a `conf` entry carries, or undefined when its data is not one this build
 * can read (a bad version or op, an id of 0 or beyond 2^53, a member twice, no voter). The core applies
 * every conf entry of its log, so the transport's and the WAL's decoders refuse such an entry before it
 * gets there.
 */
export function decodeConfEntry(data: Uint8Array): ConfEntry | undefined {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0;
  const id = (): NodeId | undefined => {
    if (at + 8 > data.byteLength) return undefined;
    const value = view.getBigUint64(at);
    at += 8;
    return value === 0n || value > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(value);
  };
  const ids = (seen: Set<NodeId>): NodeId[] | undefined => {
    if (at + 2 > data.byteLength) return undefined;
    const count = view.getUint16(at);
    at += 2;
    if (count > membersMax) return undefined;
    const out: NodeId[] = [];
    for (let i = 0; i < count; i++) {
      const member = id();
      if (member === undefined || seen.has(member)) return undefined;
      seen.add(member);
      out.push(member);
    }
    return out;
  };
  if (data.byteLength < 2 || view.getUint8(0) !== confChangeVersion) return undefined;
  const op = opByCode.get(view.getUint8(1));
  at = 2;
  const nodeId = id();
  const seen = new Set<NodeId>();
  const voters = ids(seen);
  const learners = ids(seen);
  if (op === undefined || nodeId === undefined || voters === undefined || learners === undefined || voters.length === 0) return undefined;
  return { change: { op, nodeId, context: data.subarray(at) }, conf: { voters, learners } };
}

/** Why `cc` cannot apply to `conf`, in words for an operator; undefined when it can. */
export function confChangeRefusal(conf: ConfState, cc: ConfChange): string | undefined {
  const voter = conf.voters.includes(cc.nodeId);
  const learner = conf.learners.includes(cc.nodeId);
  switch (cc.op) {
    case "addLearner":
    case "addVoter":
      return voter || learner ? `node ${cc.nodeId} is already a member` : undefined;
    case "promote":
      if (voter) return `node ${cc.nodeId} is already a voter`;
      return learner ? undefined : `node ${cc.nodeId} is not a member`;
    case "remove":
      if (!voter && !learner) return `node ${cc.nodeId} is not a member`;
      // Without a voter no one can ever commit again, not even a change that adds one back.
      return voter && conf.voters.length === 1 ? `node ${cc.nodeId} is the last voter` : undefined;
    case "update":
      return voter || learner ? undefined : `node ${cc.nodeId} is not a member`;
  }
}

/** The membership after `cc`; `cc` must be valid for `conf` (confChangeRefusal) or be an `update`. */
export function applyConfChange(conf: ConfState, cc: ConfChange): ConfState {
  const id = cc.nodeId;
  const voters = conf.voters.filter((v) => v !== id);
  const learners = conf.learners.filter((l) => l !== id);
  switch (cc.op) {
    case "addLearner":
      return { voters: conf.voters, learners: [...learners, id] };
    case "addVoter":
    case "promote":
      return { voters: [...voters, id], learners };
    case "remove":
      return { voters, learners };
    case "update":
      return conf;
  }
}
