import { assert } from "../lib/assert.js";
import { create } from "@bufbuild/protobuf";
import { CommandResultSchema } from "../../gen/raftkv/v1/command_pb.js";
import type { CommandResult } from "../../gen/raftkv/v1/command_pb.js";
import type { KeyValue } from "../../gen/raftkv/v1/kv_pb.js";

/** What the state machine remembers about one client for exactly-once writes (Raft thesis 6.3). */
export interface Session {
  readonly clientId: string;
  /** The highest sequence applied for the client. */
  readonly sequence: number;
  /** The log index at which the client was last seen (its latest mutation or retry). */
  readonly lastSeenIndex: number;
  /**
   * The first result of `sequence`; owned by the table, callers get clones. When `resultDropped`, only
   * its kind and header (the revision) are left.
   */
  readonly result: CommandResult;
  /** What `result` is charged against sessionsBytesMax. */
  readonly resultBytes: number;
  /**
   * The result's data (prev_kv, Txn responses) was dropped to keep the table within sessionsBytesMax.
   * The sequence is still remembered, so a retry is still never applied twice; it is answered with an
   * error that says the request was applied and at which revision.
   */
  readonly resultDropped: boolean;
}

export interface SessionLimits {
  readonly sessionsMax: number;
  readonly sessionsBytesMax: number;
  readonly sessionIdleEntries: number;
}

/**
 * The session table, bounded in count and in bytes. A Map iterates in insertion order and every touch
 * re-inserts, so the first entry is always the least recently seen: expiry and eviction both take from
 * the front. Everything here is decided by log indexes and result sizes, never by the clock, so every
 * replica keeps exactly the same sessions.
 *
 * The two bounds act differently. Beyond sessionsMax the least recently seen session is forgotten
 * whole (a retry from it would apply again; the documented price of a bounded table). Beyond
 * sessionsBytesMax only results are dropped, least recently seen first, and every sequence is kept: a
 * few clients with large results (prev_kv of big values, read-only Txns) must not make the table forget
 * other clients' sequences, which would turn their retries into second applies.
 */
export class SessionTable {
  private readonly sessions = new Map<string, Session>();
  /** The ids of sessions whose result is still whole, least recently seen first (as `sessions`). */
  private readonly retained = new Set<string>();
  private bytes = 0;

  constructor(private readonly limits: SessionLimits) {}

  get size(): number {
    return this.sessions.size;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  get(clientId: string): Session | undefined {
    return this.sessions.get(clientId);
  }

  /** Forgets every session idle for more than sessionIdleEntries entries as of `index`. */
  expire(index: number): void {
    for (const session of this.sessions.values()) {
      if (index - session.lastSeenIndex <= this.limits.sessionIdleEntries) return;
      this.remove(session);
    }
  }

  /** Marks the client as seen at `index` (a retry of its latest request). */
  touch(clientId: string, index: number): void {
    const session = this.sessions.get(clientId);
    assert(session !== undefined, `touch of unknown session ${clientId}`);
    assert(index >= session.lastSeenIndex, "sessions are touched in log order");
    this.sessions.delete(clientId);
    this.sessions.set(clientId, { ...session, lastSeenIndex: index });
    if (this.retained.delete(clientId)) this.retained.add(clientId);
  }

  /**
   * Remembers the result of a client's newest request, then forgets the least recently seen sessions
   * while there are more than sessionsMax, and drops the least recently seen results while over
   * sessionsBytesMax. The newest session is never touched, so a single result larger than
   * sessionsBytesMax is still remembered whole (each result is bounded by the response limits).
   */
  record(session: Session): void {
    const previous = this.sessions.get(session.clientId);
    if (previous !== undefined) this.remove(previous);
    this.sessions.set(session.clientId, session);
    if (!session.resultDropped) this.retained.add(session.clientId);
    this.bytes += session.resultBytes;
    for (const oldest of this.sessions.values()) {
      if (this.sessions.size <= this.limits.sessionsMax || oldest === session) break;
      this.remove(oldest);
    }
    for (const clientId of this.retained) {
      if (this.bytes <= this.limits.sessionsBytesMax || clientId === session.clientId) break;
      this.dropResult(this.sessions.get(clientId) as Session);
    }
  }

  /** Every session, least recently seen first (the order a snapshot stores them in). */
  values(): IterableIterator<Session> {
    return this.sessions.values();
  }

  clear(): void {
    this.sessions.clear();
    this.retained.clear();
    this.bytes = 0;
  }

  private remove(session: Session): void {
    this.sessions.delete(session.clientId);
    this.retained.delete(session.clientId);
    this.bytes -= session.resultBytes;
    assert(this.bytes >= 0, "session byte accounting went negative");
  }

  /** Keeps the session (and its place in the recency order), with only the result's kind and header. */
  private dropResult(session: Session): void {
    const result = resultHeaderOnly(session.result);
    const resultBytes = commandResultBytes(result);
    this.sessions.set(session.clientId, { ...session, result, resultBytes, resultDropped: true });
    this.retained.delete(session.clientId);
    this.bytes += resultBytes - session.resultBytes;
    assert(this.bytes >= 0, "session byte accounting went negative");
  }
}

/** The result with its data removed: the same kind, the header (revision) and nothing else. */
export function resultHeaderOnly(result: CommandResult): CommandResult {
  const r = result.result;
  switch (r.case) {
    case "put":
      return create(CommandResultSchema, { result: { case: "put", value: { header: r.value.header } } });
    case "delete":
      return create(CommandResultSchema, { result: { case: "delete", value: { header: r.value.header } } });
    case "txn":
      return create(CommandResultSchema, { result: { case: "txn", value: { header: r.value.header } } });
    case undefined:
      return create(CommandResultSchema, {});
  }
}

const messageOverheadBytes = 32;

/** What a result is charged: its keys and values plus a fixed overhead per message. */
export function commandResultBytes(result: CommandResult): number {
  const kvBytes = (kv: KeyValue | undefined): number => (kv === undefined ? 0 : kv.key.length + kv.value.length + messageOverheadBytes);
  const sum = (kvs: readonly KeyValue[]): number => kvs.reduce((total, kv) => total + kvBytes(kv), 0);
  const r = result.result;
  switch (r.case) {
    case "put":
      return messageOverheadBytes + kvBytes(r.value.prevKv);
    case "delete":
      return messageOverheadBytes + sum(r.value.prevKvs);
    case "txn": {
      let total = messageOverheadBytes;
      for (const op of r.value.responses) {
        const o = op.response;
        total += messageOverheadBytes;
        if (o.case === "put") total += kvBytes(o.value.prevKv);
        else if (o.case === "get") total += kvBytes(o.value.kv);
        else if (o.case === "delete") total += sum(o.value.prevKvs);
        else if (o.case === "range") total += sum(o.value.kvs);
      }
      return total;
    }
    case undefined:
      return messageOverheadBytes;
  }
}
