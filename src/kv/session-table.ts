import { assert } from "../lib/assert.js";
import type { CommandResult } from "../../gen/raftkv/v1/command_pb.js";
import type { KeyValue } from "../../gen/raftkv/v1/kv_pb.js";

/** What the state machine remembers about one client for exactly-once writes (Raft thesis 6.3). */
export interface Session {
  readonly clientId: string;
  /** The highest sequence applied for the client. */
  readonly sequence: number;
  /** The log index at which the client was last seen (its latest mutation or retry). */
  readonly lastSeenIndex: number;
  /** The first result of `sequence`; owned by the table, callers get clones. */
  readonly result: CommandResult;
  /** What `result` is charged against sessionsBytesMax. */
  readonly resultBytes: number;
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
 */
export class SessionTable {
  private readonly sessions = new Map<string, Session>();
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
  }

  /**
   * Remembers the result of a client's newest request, then evicts the least recently seen sessions
   * while the table is over its limits. The newest session itself is never evicted, so a single result
   * larger than sessionsBytesMax is still remembered (each result is bounded by the response limits).
   */
  record(session: Session): void {
    const previous = this.sessions.get(session.clientId);
    if (previous !== undefined) this.remove(previous);
    this.sessions.set(session.clientId, session);
    this.bytes += session.resultBytes;
    for (const oldest of this.sessions.values()) {
      const over = this.sessions.size > this.limits.sessionsMax || this.bytes > this.limits.sessionsBytesMax;
      if (!over || oldest === session) break;
      this.remove(oldest);
    }
  }

  /** Every session, least recently seen first (the order a snapshot stores them in). */
  values(): IterableIterator<Session> {
    return this.sessions.values();
  }

  clear(): void {
    this.sessions.clear();
    this.bytes = 0;
  }

  private remove(session: Session): void {
    this.sessions.delete(session.clientId);
    this.bytes -= session.resultBytes;
    assert(this.bytes >= 0, "session byte accounting went negative");
  }
}

const messageOverheadBytes = 32;

/** What a result is charged: its keys and values plus a fixed overhead per message. */
export function commandResultBytes(result: CommandResult): number {
  const kvBytes = (kv: KeyValue | undefined): number =>
    kv === undefined ? 0 : kv.key.length + kv.value.length + messageOverheadBytes;
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
