/**
 * The typed domain errors of the state machine. They describe bad input or an overloaded resource,
 * never a bug (bugs go through `assert`). The rpc layer maps each kind to one Connect code; every
 * message is written for the person who sent the request.
 */

/** The configured limits a request can exceed (see KvOptions). */
export type KvLimit = "keyBytesMax" | "valueBytesMax" | "clientIdBytesMax" | "txnOpsMax" | "responseBytesMax";

export type KvErrorDetail =
  /** The command bytes are not a valid Command (a corrupt entry, or one written by an incompatible version). */
  | { readonly kind: "malformedCommand"; readonly reason: string }
  /** A field holds a value that can never be valid (empty key, unspecified enum, ...). */
  | { readonly kind: "invalidArgument"; readonly field: string; readonly reason: string }
  /** A size or count limit was exceeded; asking for less would succeed. */
  | { readonly kind: "limitExceeded"; readonly limit: KvLimit; readonly field: string; readonly actual: number; readonly max: number }
  /** Two writes of one Txn list touch the same key; they would share one revision. */
  | { readonly kind: "duplicateKeyInTxn"; readonly key: Uint8Array }
  /** A mutation's sequence is below the latest applied for its client: a late duplicate, never applied. */
  | { readonly kind: "staleSequence"; readonly clientId: string; readonly sequence: number; readonly latest: number }
  /**
   * A retry of a mutation that was applied once, whose result the session table no longer holds (it
   * dropped the data to stay within its byte limit). Not applied again.
   */
  | { readonly kind: "resultNotRetained"; readonly clientId: string; readonly sequence: number; readonly revision: number }
  /** A mutation carries the sequence of its client's latest applied request, which was of another kind. Not applied. */
  | { readonly kind: "sequenceReused"; readonly clientId: string; readonly sequence: number; readonly appliedAs: string }
  /** Every watcher slot is taken. */
  | { readonly kind: "tooManyWatchers"; readonly max: number }
  /** Snapshot bytes that cannot be restored; the store keeps its previous state. */
  | { readonly kind: "invalidSnapshot"; readonly reason: string };

export type KvErrorKind = KvErrorDetail["kind"];

export class KvError extends Error {
  override readonly name = "KvError";
  readonly detail: KvErrorDetail;

  constructor(detail: KvErrorDetail) {
    super(describeKvError(detail));
    this.detail = detail;
  }

  get kind(): KvErrorKind {
    return this.detail.kind;
  }
}

export function isKvError(error: unknown): error is KvError {
  return error instanceof KvError;
}

/** A key for a message: printable ASCII as is, anything else as hex, shortened past 64 bytes. */
export function describeKey(key: Uint8Array): string {
  const shown = key.subarray(0, 64);
  const printable = shown.every((b) => b >= 0x20 && b < 0x7f);
  const text = printable
    ? JSON.stringify(String.fromCharCode(...shown))
    : `0x${Array.from(shown, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  return key.length > shown.length ? `${text}... (${key.length} bytes)` : text;
}

function describeKvError(detail: KvErrorDetail): string {
  switch (detail.kind) {
    case "malformedCommand":
      return `malformed command: ${detail.reason}`;
    case "invalidArgument":
      return `invalid ${detail.field}: ${detail.reason}`;
    case "limitExceeded":
      return `${detail.field} is too large: ${detail.actual} exceeds the limit of ${detail.max} (${detail.limit})`;
    case "duplicateKeyInTxn":
      return `a transaction writes key ${describeKey(detail.key)} more than once; all its writes share one revision, so each key may be written once`;
    case "staleSequence":
      return `sequence ${detail.sequence} of client ${JSON.stringify(detail.clientId)} is older than the latest applied (${detail.latest}); it was not applied`;
    case "resultNotRetained":
      return `sequence ${detail.sequence} of client ${JSON.stringify(detail.clientId)} was already applied (at revision ${detail.revision}) and was not applied again; its result is no longer retained`;
    case "sequenceReused":
      return `sequence ${detail.sequence} of client ${JSON.stringify(detail.clientId)} was already used by a request of another kind (${detail.appliedAs}); this one was not applied: give every request a new sequence`;
    case "tooManyWatchers":
      return `too many watchers (limit ${detail.max}); close some watches or retry later`;
    case "invalidSnapshot":
      return `invalid kv snapshot: ${detail.reason}`;
  }
}
