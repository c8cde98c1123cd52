import { clone, create } from "@bufbuild/protobuf";
import { assert } from "../lib/assert.js";
import { CommandResultSchema } from "../../gen/raftkv/v1/command_pb.js";
import type { Command, CommandResult } from "../../gen/raftkv/v1/command_pb.js";
import {
  CompareResult,
  CompareTarget,
  DeleteResponseSchema,
  GetResponseSchema,
  PutResponseSchema,
  RangeResponseSchema,
  ResponseOpSchema,
  TxnResponseSchema,
} from "../../gen/raftkv/v1/kv_pb.js";
import type {
  Compare,
  DeleteRequest,
  DeleteResponse,
  Event,
  GetRequest,
  GetResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
  WatchRequest,
} from "../../gen/raftkv/v1/kv_pb.js";
import { decodeCommand } from "./command-codec.js";
import { KvError, isKvError } from "./errors.js";
import { compareBytes, keyToString } from "./key-codec.js";
import { KeyIndex, keySpan, type FrozenKeys } from "./key-index.js";
import { recordBytes, responseHeader, toKeyValue } from "./key-record.js";
import type { KeyRecord } from "./key-record.js";
import { resolveKvOptions } from "./options.js";
import type { KvOptions } from "./options.js";
import { SessionTable, commandResultBytes } from "./session-table.js";
import { decodeKvSnapshot, encodeKvSnapshot, encodeKvSnapshotChunks } from "./snapshot-codec.js";
import type { MemberRecord, SnapshotState } from "./snapshot-codec.js";
import { validateCommand, validateGet, validateRange, validateWatch } from "./validate.js";
import { WatchHistory } from "./watch-history.js";
import type { EventKind, HistoryEvent } from "./watch-history.js";
import { WatchHub, toEvent } from "./watch-hub.js";
import type { Watcher } from "./watch-hub.js";

/**
 * The outcome of applying one entry: the result of the mutation it carried (what the client is
 * answered, and what its session remembers), or a typed error. `replayed` is true when the entry was a
 * retry of an already applied (client_id, sequence) and the remembered first result is returned without
 * applying again. Response headers carry the revision only; the rpc layer fills in raft_term and
 * member_id. Every result is the caller's to keep.
 */
export type ApplyResult =
  | { readonly kind: "applied"; readonly result: CommandResult; readonly replayed: boolean }
  | { readonly kind: "error"; readonly error: KvError };

/** Retained events from a revision on, or the oldest revision still retained when that is too old. */
export type EventsSince =
  { readonly kind: "events"; readonly events: readonly Event[] } | { readonly kind: "compacted"; readonly compactRevision: number };

/**
 * A registered watcher, with the revision of the store at registration (the header revision of the
 * stream's first message), or the oldest revision a watch can start at now.
 */
export type WatchStart =
  | { readonly kind: "watching"; readonly watcher: Watcher; readonly revision: number }
  | { readonly kind: "compacted"; readonly compactRevision: number };

/**
 * The replicated key-value state machine. Deterministic: replicas that apply the same entries (with
 * the same cluster-wide options) hold the same state and encode byte-identical snapshots.
 *
 * Error convention: `apply` never throws on bad input (a corrupt or invalid entry is an outcome every
 * replica must agree on, returned as `kind: "error"`); the direct reads and `watch` throw KvError on
 * bad input; a broken invariant throws AssertionError.
 */
export interface KvStore {
  readonly options: KvOptions;
  /** The revision of the latest change; 0 before any. */
  readonly revision: number;
  /** The log index of the latest entry applied (or restored); 0 before any. */
  readonly appliedIndex: number;
  /** The oldest revision a watch can start at. */
  readonly compactRevision: number;
  readonly keyCount: number;
  /** The live keys' key and value bytes: what the space quota (--quota-bytes) is checked against. */
  readonly dataBytes: number;
  readonly sessionCount: number;
  readonly watcherCount: number;

  /** Applies the NORMAL entry at `index`. Indexes must increase from call to call (log order). */
  apply(index: number, command: Uint8Array): ApplyResult;
  /**
   * Applies the membership change at `index` (a conf entry) that changed member `nodeId` and left
   * `members` (every member's name and URLs, the entry's context). Raises memberIdMax to `nodeId`.
   */
  applyMembership(index: number, nodeId: number, members: readonly MemberRecord[]): void;
  /** The current members' names and URLs, ascending by id. */
  readonly members: readonly MemberRecord[];
  /** The highest member id the cluster ever had (ids are never reused). */
  readonly memberIdMax: number;
  /** Reads one key at the current revision (the ReadIndex path and serializable reads). */
  get(request: GetRequest): GetResponse;
  /** Reads one page of a key or prefix at the current revision. */
  range(request: RangeRequest): RangeResponse;
  /** The retained events of the request's key or prefix from its start_revision on (none when it is 0). */
  eventsSince(request: WatchRequest): EventsSince;
  /** Registers a watcher (start_revision 0: changes after the current revision). */
  watch(request: WatchRequest): WatchStart;
  /** The whole state as a KvSnapshot message (command.proto). Blocks for the whole encoding. */
  encodeSnapshot(): Uint8Array;
  /**
   * The same bytes as `encodeSnapshot`, in chunks of about snapshotChunkBytes, encoded lazily. The
   * state is captured when this is called, in O(1) for the keys (a frozen view: KeyIndex.freeze) and
   * by copying references for the bounded sessions and watch history, so entries applied while the
   * chunks are consumed do not change them, and the caller can yield to the event loop between chunks
   * instead of blocking it for the whole encoding. The caller must close() what it does not read to
   * the end: until then the store keeps the old record of every key that changes.
   */
  snapshotChunks(): SnapshotChunks;
  /**
   * Replaces the whole state by a snapshot. Throws KvError "invalidSnapshot" and keeps the state when
   * the bytes are not a valid snapshot. Every watcher is canceled with reason "restored".
   */
  restore(snapshot: Uint8Array): void;
}

/** A snapshot's encoding, read lazily (KvStore.snapshotChunks). */
export interface SnapshotChunks extends Iterable<Uint8Array> {
  /** Releases the frozen view; chunks not read yet are never produced. Idempotent; reading to the end closes too. */
  close(): void;
}

export function createKvStore(options: Partial<KvOptions> = {}): KvStore {
  return new Store(resolveKvOptions(options));
}

/** The per-command context: the revision its writes get and the response bytes it may still return. */
interface Execution {
  readonly revision: number;
  changed: boolean;
  budgetBytes: number;
}

class Store implements KvStore {
  private keys = new KeyIndex();
  private readonly sessions: SessionTable;
  private readonly history: WatchHistory;
  private readonly hub: WatchHub;
  private currentRevision = 0;
  private applied = 0;
  private memberRecords = new Map<number, MemberRecord>();
  private highestMemberId = 0;

  constructor(readonly options: KvOptions) {
    this.sessions = new SessionTable(options);
    this.history = new WatchHistory(options);
    this.hub = new WatchHub(this.history, options);
  }

  get revision(): number {
    return this.currentRevision;
  }
  get appliedIndex(): number {
    return this.applied;
  }
  get compactRevision(): number {
    return this.history.compactRevision;
  }
  get keyCount(): number {
    return this.keys.size;
  }

  get dataBytes(): number {
    return this.keys.bytes;
  }
  get sessionCount(): number {
    return this.sessions.size;
  }
  get watcherCount(): number {
    return this.hub.size;
  }
  get members(): readonly MemberRecord[] {
    return [...this.memberRecords.values()].sort((a, b) => a.id - b.id);
  }
  get memberIdMax(): number {
    return this.highestMemberId;
  }

  applyMembership(index: number, nodeId: number, members: readonly MemberRecord[]): void {
    assert(
      Number.isSafeInteger(index) && index > this.applied,
      () => `membership change at index ${index} after ${this.applied}: entries are applied once each, in log order`,
    );
    this.applied = index;
    this.memberRecords = new Map(members.map((m) => [m.id, m]));
    for (const id of [nodeId, ...this.memberRecords.keys()]) this.highestMemberId = Math.max(this.highestMemberId, id);
  }

  apply(index: number, bytes: Uint8Array): ApplyResult {
    assert(
      Number.isSafeInteger(index) && index > this.applied,
      () => `apply of index ${index} after ${this.applied}: entries are applied once each, in log order`,
    );
    this.applied = index;
    // Expiry first, driven only by the index, so it happens identically for every entry on every replica.
    this.sessions.expire(index);

    let command: Command;
    try {
      command = decodeCommand(bytes);
      validateCommand(command, this.options);
    } catch (error) {
      return errorResult(error);
    }

    const clientId = command.clientId;
    const sequence = Number(command.sequence);
    if (clientId !== "") {
      const session = this.sessions.get(clientId);
      if (session !== undefined && sequence === session.sequence) {
        if (session.result.result.case !== command.op.case) {
          // The client reused a sequence for another kind of request: a client bug, not a retry.
          return errorResult(new KvError({ kind: "sequenceReused", clientId, sequence, appliedAs: session.result.result.case ?? "none" }));
        }
        this.sessions.touch(clientId, index);
        if (session.resultDropped) {
          const revision = resultRevision(session.result);
          return errorResult(new KvError({ kind: "resultNotRetained", clientId, sequence, revision }));
        }
        return { kind: "applied", result: clone(CommandResultSchema, session.result), replayed: true };
      }
      if (session !== undefined && sequence < session.sequence) {
        return errorResult(new KvError({ kind: "staleSequence", clientId, sequence, latest: session.sequence }));
      }
    }

    const execution: Execution = {
      revision: this.currentRevision + 1,
      changed: false,
      budgetBytes: this.options.responseBytesMax,
    };
    let result: CommandResult;
    try {
      result = this.execute(command, execution);
    } catch (error) {
      // Commands are checked completely before their first write, so a failure never leaves half a change.
      assert(!execution.changed, "a command failed after changing state");
      return errorResult(error);
    }
    if (execution.changed) this.currentRevision = execution.revision;
    stampHeaders(result, this.currentRevision);
    this.history.evictOverflow((event) => this.hub.evicted(event));
    this.hub.settle();
    if (clientId !== "") {
      this.sessions.record({
        clientId,
        sequence,
        lastSeenIndex: index,
        result: clone(CommandResultSchema, result),
        resultBytes: commandResultBytes(result),
        resultDropped: false,
      });
    }
    return { kind: "applied", result, replayed: false };
  }

  get(request: GetRequest): GetResponse {
    validateGet(request, this.options);
    const response = this.getOp(request, this.readExecution());
    response.header = responseHeader(this.currentRevision);
    return response;
  }

  range(request: RangeRequest): RangeResponse {
    validateRange(request, this.options);
    const response = this.rangeOp(request, this.readExecution());
    response.header = responseHeader(this.currentRevision);
    return response;
  }

  eventsSince(request: WatchRequest): EventsSince {
    validateWatch(request, this.options);
    const start = Number(request.startRevision);
    if (start === 0) return { kind: "events", events: [] };
    if (start < this.history.compactRevision) return { kind: "compacted", compactRevision: this.history.compactRevision };
    const span = keySpan(keyToString(request.key), request.prefix);
    const events: Event[] = [];
    for (let seq = this.history.seqAtRevision(start); seq < this.history.endSeq; seq++) {
      const event = this.history.at(seq) as HistoryEvent;
      if (event.key >= span.start && (span.end === undefined || event.key < span.end)) {
        events.push(toEvent(event, request.prevKv));
      }
    }
    return { kind: "events", events };
  }

  watch(request: WatchRequest): WatchStart {
    validateWatch(request, this.options);
    const start = request.startRevision === 0n ? this.currentRevision + 1 : Number(request.startRevision);
    if (start < this.history.compactRevision) return { kind: "compacted", compactRevision: this.history.compactRevision };
    const watcher = this.hub.register(keySpan(keyToString(request.key), request.prefix), start, request.prevKv);
    return { kind: "watching", watcher, revision: this.currentRevision };
  }

  encodeSnapshot(): Uint8Array {
    const state = this.capture();
    try {
      return encodeKvSnapshot(state);
    } finally {
      state.records.close();
    }
  }

  snapshotChunks(): SnapshotChunks {
    const state = this.capture();
    const chunks = encodeKvSnapshotChunks(state, this.options.snapshotChunkBytes);
    return { [Symbol.iterator]: () => chunks, close: () => state.records.close() };
  }

  /** A point-in-time view of the state: the keys' frozen view and lists of immutable objects. */
  private capture(): SnapshotState & { readonly records: FrozenKeys } {
    return {
      appliedIndex: this.applied,
      revision: this.currentRevision,
      compactRevision: this.history.compactRevision,
      records: this.keys.freeze(),
      sessions: [...this.sessions.values()],
      history: [...this.history.all()],
      members: this.members,
      memberIdMax: this.highestMemberId,
    };
  }

  restore(bytes: Uint8Array): void {
    const snapshot = decodeKvSnapshot(bytes);
    this.hub.cancelAll({ kind: "restored" });
    this.keys = KeyIndex.fromSorted(snapshot.keys, snapshot.records);
    this.currentRevision = snapshot.revision;
    this.applied = snapshot.appliedIndex;
    this.sessions.clear();
    for (const session of snapshot.sessions) this.sessions.record(session);
    this.history.replace(snapshot.history, snapshot.compactRevision);
    this.memberRecords = new Map(snapshot.members.map((m) => [m.id, m]));
    this.highestMemberId = snapshot.memberIdMax;
  }

  private readExecution(): Execution {
    return { revision: this.currentRevision, changed: false, budgetBytes: this.options.responseBytesMax };
  }

  private execute(command: Command, execution: Execution): CommandResult {
    const op = command.op;
    switch (op.case) {
      case "put":
        return create(CommandResultSchema, { result: { case: "put", value: this.putOp(op.value, execution) } });
      case "delete":
        this.checkDeleteResponse(op.value, "delete.prev_kv");
        return create(CommandResultSchema, { result: { case: "delete", value: this.deleteOp(op.value, execution) } });
      case "txn":
        return create(CommandResultSchema, { result: { case: "txn", value: this.txnOp(op.value, execution) } });
      case undefined:
        throw new KvError({ kind: "malformedCommand", reason: "the command holds no operation (put, delete or txn)" });
    }
  }

  private putOp(request: PutRequest, execution: Execution): PutResponse {
    const key = keyToString(request.key);
    const previous = this.keys.get(key);
    // Copies: the request's bytes are views into the entry buffer, which the caller may reuse.
    const record: KeyRecord = {
      key: request.key.slice(),
      value: request.value.slice(),
      createRevision: previous === undefined ? execution.revision : previous.createRevision,
      modRevision: execution.revision,
      version: previous === undefined ? 1 : previous.version + 1,
    };
    this.keys.set(key, record);
    execution.changed = true;
    this.recordEvent(execution.revision, "put", key, record, previous);
    if (!request.prevKv || previous === undefined) return create(PutResponseSchema);
    execution.budgetBytes -= recordBytes(previous);
    return create(PutResponseSchema, { prevKv: toKeyValue(previous) });
  }

  /**
   * A Delete's prev_kvs cannot be paged, so a Delete that would return more than responseBytesMax is
   * refused before it deletes anything. Inside a Txn this sees the state before the Txn, which is the
   * state the delete acts on: no other write of the same Txn may touch its keys.
   */
  private checkDeleteResponse(request: DeleteRequest, field: string): void {
    if (!request.prevKv) return;
    const max = this.options.responseBytesMax;
    let total = 0;
    for (const [, record] of this.keys.scan(keySpan(keyToString(request.key), request.prefix))) {
      total += recordBytes(record);
      if (total > max) {
        throw new KvError({ kind: "limitExceeded", limit: "responseBytesMax", field, actual: total, max });
      }
    }
  }

  private deleteOp(request: DeleteRequest, execution: Execution): DeleteResponse {
    // Collected first: the index must not change while it is being scanned.
    const victims = [...this.keys.scan(keySpan(keyToString(request.key), request.prefix))];
    for (const [key, previous] of victims) {
      this.keys.delete(key);
      const tombstone: KeyRecord = {
        key: previous.key,
        value: new Uint8Array(0),
        createRevision: 0,
        modRevision: execution.revision,
        version: 0,
      };
      this.recordEvent(execution.revision, "delete", key, tombstone, previous);
    }
    if (victims.length > 0) execution.changed = true;
    if (!request.prevKv) return create(DeleteResponseSchema, { deleted: BigInt(victims.length) });
    for (const [, previous] of victims) execution.budgetBytes -= recordBytes(previous);
    return create(DeleteResponseSchema, {
      deleted: BigInt(victims.length),
      prevKvs: victims.map(([, previous]) => toKeyValue(previous)),
    });
  }

  private getOp(request: GetRequest, execution: Execution): GetResponse {
    const record = this.keys.get(keyToString(request.key));
    if (record === undefined) return create(GetResponseSchema);
    execution.budgetBytes -= recordBytes(record);
    return create(GetResponseSchema, { kv: toKeyValue(record) });
  }

  /**
   * One page: stops at the request's limit, at rangeKeysMax, or before the key that would overdraw
   * the response budget (shared by the reads of a Txn). `more` and `next_key` tell the client where to
   * continue; `count` covers the whole selection from the continuation key on.
   */
  private rangeOp(request: RangeRequest, execution: Execution): RangeResponse {
    const span = keySpan(keyToString(request.key), request.prefix);
    const from = request.continueKey.length > 0 ? keyToString(request.continueKey) : span.start;
    const count = BigInt(this.keys.count(span, from));
    if (request.countOnly) return create(RangeResponseSchema, { count });
    const limit = request.limit === 0n ? this.options.rangeKeysMax : Math.min(Number(request.limit), this.options.rangeKeysMax);
    const kvs = [];
    for (const [, record] of this.keys.scan(span, from)) {
      const bytes = recordBytes(record, request.keysOnly);
      if (kvs.length >= limit || bytes > execution.budgetBytes) {
        return create(RangeResponseSchema, { kvs, count, more: true, nextKey: record.key });
      }
      execution.budgetBytes -= bytes;
      kvs.push(toKeyValue(record, request.keysOnly));
    }
    return create(RangeResponseSchema, { kvs, count });
  }

  private txnOp(request: TxnRequest, execution: Execution): TxnResponse {
    const succeeded = request.compare.every((compare) => this.holds(compare));
    const ops = succeeded ? request.success : request.failure;
    const list = succeeded ? "success" : "failure";
    ops.forEach((op, i) => {
      if (op.request.case === "delete") this.checkDeleteResponse(op.request.value, `txn.${list}[${i}].delete.prev_kv`);
    });
    const responses = ops.map((op) => this.txnStep(op, execution));
    return create(TxnResponseSchema, { succeeded, responses });
  }

  private txnStep(op: RequestOp, execution: Execution): ResponseOp {
    const request = op.request;
    switch (request.case) {
      case "put":
        return create(ResponseOpSchema, { response: { case: "put", value: this.putOp(request.value, execution) } });
      case "get":
        return create(ResponseOpSchema, { response: { case: "get", value: this.getOp(request.value, execution) } });
      case "delete":
        return create(ResponseOpSchema, { response: { case: "delete", value: this.deleteOp(request.value, execution) } });
      case "range":
        return create(ResponseOpSchema, { response: { case: "range", value: this.rangeOp(request.value, execution) } });
      case undefined:
        // validateTxn refuses an empty operation before the Txn starts.
        assert(false, "a validated Txn holds an empty operation");
    }
  }

  /** etcd semantics: a missing key has version and revisions 0, and no VALUE compare holds on it. */
  private holds(compare: Compare): boolean {
    const record = this.keys.get(keyToString(compare.key));
    let order: number;
    switch (compare.target) {
      case CompareTarget.VALUE:
        if (record === undefined) return false;
        order = Math.sign(compareBytes(record.value, compare.value));
        break;
      case CompareTarget.VERSION:
        order = compareNumbers(record?.version ?? 0, compare.number);
        break;
      case CompareTarget.MOD_REVISION:
        order = compareNumbers(record?.modRevision ?? 0, compare.number);
        break;
      case CompareTarget.CREATE_REVISION:
        order = compareNumbers(record?.createRevision ?? 0, compare.number);
        break;
      default:
        assert(false, `a validated compare has target ${compare.target}`);
    }
    switch (compare.result) {
      case CompareResult.EQUAL:
        return order === 0;
      case CompareResult.NOT_EQUAL:
        return order !== 0;
      case CompareResult.GREATER:
        return order > 0;
      case CompareResult.LESS:
        return order < 0;
      default:
        assert(false, `a validated compare has result ${compare.result}`);
    }
  }

  private recordEvent(revision: number, kind: EventKind, key: string, kv: KeyRecord, prevKv: KeyRecord | undefined): void {
    this.hub.observe(this.history.append(revision, kind, key, kv, prevKv));
  }
}

/** Compares a stored number with a uint64 operand exactly (the operand may exceed 2^53). */
function compareNumbers(stored: number, operand: bigint): number {
  const left = BigInt(stored);
  return left === operand ? 0 : left > operand ? 1 : -1;
}

/** Every response of a command, nested ones included, reports the revision after the command. */
function stampHeaders(result: CommandResult, revision: number): void {
  const r = result.result;
  if (r.case === undefined) return;
  r.value.header = responseHeader(revision);
  if (r.case !== "txn") return;
  for (const op of r.value.responses) {
    if (op.response.case !== undefined) op.response.value.header = responseHeader(revision);
  }
}

/** The revision a stored result was applied at (its header; every stored result has one). */
function resultRevision(result: CommandResult): number {
  return Number(result.result.value?.header?.revision ?? 0n);
}

/** Domain errors become results; anything else is a bug and propagates. */
function errorResult(error: unknown): ApplyResult {
  if (isKvError(error)) return { kind: "error", error };
  throw error;
}
