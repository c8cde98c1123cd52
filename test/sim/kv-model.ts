import { assert } from "../../src/lib/assert.js";
import type { KvInput, KvOutput } from "./history.js";

/**
 * The simulator's replicated state machine: a map of string registers with put and compare-and-swap
 * commands. Deliberately tiny and deterministic (same entries in, same state and same bytes out), so
 * that any divergence the checkers see comes from the Raft core, not from here.
 *
 * A command carries the id of the client operation that proposed it: the simulator uses it to resolve
 * the client's operation when the entry is applied, and to catch an operation applied twice or applied
 * after its client was told it failed.
 */
export type KvWrite = Extract<KvInput, { kind: "put" | "cas" }>;

export interface KvCommand {
  readonly opId: number;
  readonly write: KvWrite;
}

/** Bad bytes in a command or snapshot: always a simulator or core bug, reported with the offending text. */
export class KvDecodeError extends Error {
  override readonly name = "KvDecodeError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeCommand(command: KvCommand): Uint8Array {
  const w = command.write;
  const wire = w.kind === "put" ? ["put", command.opId, w.key, w.value] : ["cas", command.opId, w.key, w.expected, w.value];
  return encoder.encode(JSON.stringify(wire));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  const text = decodeText(data, "command");
  const wire: unknown = parseJson(text, "command");
  if (!Array.isArray(wire)) throw new KvDecodeError(`command is not an array: ${text}`);
  const [kind, opId, key] = wire as unknown[];
  if (typeof opId !== "number" || !Number.isSafeInteger(opId) || typeof key !== "string") {
    throw new KvDecodeError(`command has a bad op id or key: ${text}`);
  }
  if (kind === "put" && wire.length === 4 && typeof wire[3] === "string") {
    return { opId, write: { kind: "put", key, value: wire[3] } };
  }
  if (kind === "cas" && wire.length === 5 && (typeof wire[3] === "string" || wire[3] === null) && typeof wire[4] === "string") {
    return { opId, write: { kind: "cas", key, expected: wire[3], value: wire[4] } };
  }
  throw new KvDecodeError(`command is neither a put nor a cas: ${text}`);
}

export class KvStateMachine {
  private readonly values = new Map<string, string>();
  /** The log index of the last entry this state reflects. */
  private appliedIndex: number;

  private constructor(index: number) {
    this.appliedIndex = index;
  }

  static empty(): KvStateMachine {
    return new KvStateMachine(0);
  }

  /** Rebuilds the state from snapshot bytes; empty bytes are the empty state before index 1. */
  static restore(data: Uint8Array): KvStateMachine {
    if (data.byteLength === 0) return KvStateMachine.empty();
    const text = decodeText(data, "snapshot");
    const wire: unknown = parseJson(text, "snapshot");
    if (typeof wire !== "object" || wire === null || Array.isArray(wire)) throw new KvDecodeError(`snapshot is not an object: ${text}`);
    const { index, values } = wire as { index?: unknown; values?: unknown };
    if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0 || !Array.isArray(values)) {
      throw new KvDecodeError(`snapshot lacks an index or values: ${text}`);
    }
    const sm = new KvStateMachine(index);
    for (const pair of values as unknown[]) {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" || typeof pair[1] !== "string") {
        throw new KvDecodeError(`snapshot has a bad key/value pair: ${text}`);
      }
      sm.values.set(pair[0], pair[1]);
    }
    return sm;
  }

  get index(): number {
    return this.appliedIndex;
  }

  get(key: string): string | null {
    return this.values.get(key) ?? null;
  }

  /** Applies the command at `index` (which must be the next index) and returns what its client sees. */
  apply(index: number, command: KvCommand): KvOutput {
    this.skip(index);
    const w = command.write;
    const current = this.get(w.key);
    if (w.kind === "put") {
      this.values.set(w.key, w.value);
      return { kind: "put" };
    }
    const swaps = current === w.expected;
    if (swaps) this.values.set(w.key, w.value);
    return { kind: "cas", swapped: swaps };
  }

  /** Moves past an entry that carries no command (a leader's no-op). */
  skip(index: number): void {
    assert(index === this.appliedIndex + 1, () => `kv model: applying index ${index} after ${this.appliedIndex}`);
    this.appliedIndex = index;
  }

  /** Deterministic bytes: keys sorted, so equal states at equal indexes encode identically. */
  encode(): Uint8Array {
    const keys = [...this.values.keys()].sort();
    return encoder.encode(JSON.stringify({ index: this.appliedIndex, values: keys.map((k) => [k, this.values.get(k)]) }));
  }
}

function decodeText(data: Uint8Array, what: string): string {
  try {
    return decoder.decode(data);
  } catch {
    throw new KvDecodeError(`${what} is not valid UTF-8 (${data.byteLength} bytes)`);
  }
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new KvDecodeError(`${what} is not JSON: ${text.slice(0, 200)}`);
  }
}
