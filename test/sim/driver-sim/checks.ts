import { Buffer } from "node:buffer";
import type { Message, NodeId } from "../../../src/core/index.js";
import type { ApplyResult, KvStore, SnapshotChunks } from "../../../src/kv/index.js";
import type { SimStorage } from "./sim-storage.js";

/**
 * The driver simulator's own checkers (linearizability is the shared one of ../linearizability.ts).
 */
export type DriverViolationKind =
  /** A message that promises something about the sender's disk left before the disk held it. */
  | "ackBeforeDurable"
  /** Two processes applied different commands at one log index. */
  | "stateMachineSafety"
  /** A write a client was told succeeded was replaced at its index by another command. */
  | "lostWrite"
  /** Two leaders in one term. */
  | "electionSafety"
  /** After the faults healed, the live nodes did not converge on one leader and one applied state. */
  | "liveness"
  /** Converged nodes hold different key-value stores. */
  | "divergedStores"
  | "linearizability"
  /** A Driver answered a client with an error its contract does not allow, or logged an error. */
  | "unexpected"
  | "exception";

export interface DriverViolation {
  readonly kind: DriverViolationKind;
  /** Virtual time (ms) at which it was seen. */
  readonly at: number;
  readonly message: string;
}

/**
 * What the core's waitsForDurability() says a message promises, checked against the sender's *durable*
 * disk at the moment the message leaves the process (src/core/types.ts):
 * - an accepted appendResp for index i: the disk holds entry i with the term the node's log gives it
 *   (or a snapshot covering i), and the term it answers in;
 * - a granted vote (not a PreVote): the disk's hard state has that term and that vote, or a later term;
 * - a vote request (not a PreVote): the candidate's own vote in that term is on the disk.
 * Returns what is wrong, or undefined.
 */
export function checkDurablePromise(message: Message, storage: SimStorage): string | undefined {
  const disk = storage.disk;
  const hs = disk.durable.hardState;
  const term = (t: number, vote: NodeId): string | undefined => {
    if (hs.term > t) return undefined;
    if (hs.term < t) return `the durable term is ${hs.term}`;
    return hs.vote === vote ? undefined : `the durable vote in term ${t} is ${hs.vote}`;
  };
  switch (message.type) {
    case "appendResp": {
      if (message.reject) return undefined;
      if (hs.term < message.term) return `acknowledges ${message.index} in term ${message.term}, but the durable term is ${hs.term}`;
      const i = message.index;
      if (i <= disk.durable.snapshot().meta.index) return undefined;
      const durableTerm = disk.termAt(i);
      if (durableTerm === undefined) return `acknowledges ${i}, but the durable log ends at ${disk.durable.lastIndex()}`;
      const logTerm = storage.viewTermAt(i);
      if (logTerm !== undefined && logTerm !== durableTerm)
        return `acknowledges ${i} of term ${logTerm}, but the durable entry ${i} has term ${durableTerm}`;
      return undefined;
    }
    case "voteResp": {
      if (!message.granted || message.preVote) return undefined;
      const wrong = term(message.term, message.to);
      return wrong === undefined ? undefined : `grants its vote to ${message.to} in term ${message.term}, but ${wrong}`;
    }
    case "vote": {
      if (message.preVote) return undefined;
      const wrong = term(message.term, message.from);
      return wrong === undefined ? undefined : `asks for votes in term ${message.term}, but ${wrong}`;
    }
    default:
      return undefined;
  }
}

/**
 * Every command any process ever applied, by log index, across crashes: two processes must never
 * apply different commands at one index (state machine safety), and a write acknowledged to a client
 * must never be replaced at its index (no acknowledged write lost). Commands are unique in a run (every
 * write carries a unique value), so their bytes identify them.
 */
export class AppliedLog {
  private readonly byIndex = new Map<number, { readonly command: string; readonly node: NodeId; readonly at: number }>();
  private readonly indexOf = new Map<string, number>();
  /** Acknowledged writes: command -> client op id. */
  private readonly acked = new Map<string, number>();
  /** The highest index any process applied a command at. */
  highest = 0;

  constructor(
    private readonly now: () => number,
    private readonly violation: (kind: DriverViolationKind, message: string) => void,
  ) {}

  applied(node: NodeId, index: number, data: Uint8Array): void {
    const command = Buffer.from(data).toString("base64");
    const first = this.byIndex.get(index);
    if (first === undefined) {
      this.byIndex.set(index, { command, node, at: this.now() });
      this.indexOf.set(command, index);
      this.highest = Math.max(this.highest, index);
      return;
    }
    if (first.command === command) return;
    const opId = this.acked.get(first.command);
    if (opId !== undefined) {
      this.violation(
        "lostWrite",
        `node ${node} applied another command at index ${index}, where op ${opId}'s write was applied by node ${first.node} at ${first.at} ms and acknowledged`,
      );
    } else {
      this.violation(
        "stateMachineSafety",
        `node ${node} applied a different command at index ${index} than node ${first.node} did at ${first.at} ms`,
      );
    }
  }

  /** A client was told its write succeeded: the process that answered has applied it. */
  acknowledged(opId: number, data: Uint8Array): void {
    const command = Buffer.from(data).toString("base64");
    const index = this.indexOf.get(command);
    if (index === undefined) {
      this.violation("unexpected", `op ${opId} was acknowledged but no process applied its command`);
      return;
    }
    if (this.byIndex.get(index)?.command !== command) {
      this.violation("lostWrite", `op ${opId} was acknowledged, but index ${index} holds another command`);
      return;
    }
    this.acked.set(command, opId);
  }
}

/**
 * The real KvStore of one process, with every apply reported to the AppliedLog. Reads and snapshots go
 * straight to the store; nothing else changes.
 */
export class RecordingStore implements KvStore {
  constructor(
    private readonly inner: KvStore,
    private readonly onApply: (index: number, data: Uint8Array) => void,
  ) {}

  get options(): KvStore["options"] {
    return this.inner.options;
  }
  get revision(): number {
    return this.inner.revision;
  }
  get appliedIndex(): number {
    return this.inner.appliedIndex;
  }
  get compactRevision(): number {
    return this.inner.compactRevision;
  }
  get keyCount(): number {
    return this.inner.keyCount;
  }
  get dataBytes(): number {
    return this.inner.dataBytes;
  }
  get sessionCount(): number {
    return this.inner.sessionCount;
  }
  get watcherCount(): number {
    return this.inner.watcherCount;
  }

  apply(index: number, command: Uint8Array): ApplyResult {
    this.onApply(index, command);
    return this.inner.apply(index, command);
  }

  get(...args: Parameters<KvStore["get"]>): ReturnType<KvStore["get"]> {
    return this.inner.get(...args);
  }
  range(...args: Parameters<KvStore["range"]>): ReturnType<KvStore["range"]> {
    return this.inner.range(...args);
  }
  eventsSince(...args: Parameters<KvStore["eventsSince"]>): ReturnType<KvStore["eventsSince"]> {
    return this.inner.eventsSince(...args);
  }
  watch(...args: Parameters<KvStore["watch"]>): ReturnType<KvStore["watch"]> {
    return this.inner.watch(...args);
  }
  encodeSnapshot(): Uint8Array {
    return this.inner.encodeSnapshot();
  }
  snapshotChunks(): SnapshotChunks {
    return this.inner.snapshotChunks();
  }
  restore(snapshot: Uint8Array): void {
    this.inner.restore(snapshot);
  }
  applyMembership(...args: Parameters<KvStore["applyMembership"]>): void {
    this.inner.applyMembership(...args);
  }
  get members(): KvStore["members"] {
    return this.inner.members;
  }
  get memberIdMax(): number {
    return this.inner.memberIdMax;
  }
}
