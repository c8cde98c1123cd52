/**
 * The client history the simulator records and the linearizability checker judges: one record per
 * operation, with the logical times of its invocation and completion and what the client saw.
 *
 * Times are positions on one logical clock shared by every client (strictly increasing, so two events
 * never tie); steps are the simulator steps the events happened in, kept for people reading a report.
 */

/** The register operations of the simulated key-value store. Every op touches exactly one key. */
export type KvInput =
  | { readonly kind: "put"; readonly key: string; readonly value: string }
  | { readonly kind: "get"; readonly key: string }
  /** Compare-and-swap: sets `value` when the current value is `expected` (null: the key is absent). */
  | { readonly kind: "cas"; readonly key: string; readonly expected: string | null; readonly value: string };

export type KvOutput =
  { readonly kind: "put" } | { readonly kind: "get"; readonly value: string | null } | { readonly kind: "cas"; readonly swapped: boolean };

/**
 * How an operation ended, as the client knows it:
 * - `ok`: it took effect (or, for a read, observed `output`) somewhere between invocation and `ret`;
 * - `fail`: it certainly never took effect (the proposal was refused, or another entry was committed at
 *   its log index; a read was refused);
 * - `unknown`: it may take effect at any point after its invocation, or never (the node crashed, the
 *   client gave up waiting, the run ended).
 */
export type Outcome =
  | { readonly status: "ok"; readonly output: KvOutput; readonly ret: number; readonly retStep: number }
  | { readonly status: "fail"; readonly reason: string; readonly retStep: number }
  | { readonly status: "unknown"; readonly reason: string };

export interface Operation {
  /** Unique in a run; also the id carried inside the command, so the simulator can trace it. */
  readonly id: number;
  readonly clientId: number;
  readonly input: KvInput;
  readonly call: number;
  readonly callStep: number;
  readonly outcome: Outcome;
}

export function describeOperation(op: Operation): string {
  const input = op.input;
  const what =
    input.kind === "put"
      ? `put(${input.key}, ${input.value})`
      : input.kind === "get"
        ? `get(${input.key})`
        : `cas(${input.key}, ${String(input.expected)} -> ${input.value})`;
  const outcome = op.outcome;
  let result: string;
  switch (outcome.status) {
    case "ok": {
      const output = outcome.output;
      const shown = output.kind === "put" ? "ok" : output.kind === "get" ? String(output.value) : String(output.swapped);
      result = `-> ${shown} [t${op.call}..t${outcome.ret}, steps ${op.callStep}..${outcome.retStep}]`;
      break;
    }
    case "fail":
      result = `-> fail (${outcome.reason}) [t${op.call}, steps ${op.callStep}..${outcome.retStep}]`;
      break;
    case "unknown":
      result = `-> unknown (${outcome.reason}) [t${op.call}.., step ${op.callStep}..]`;
      break;
  }
  return `op ${op.id} client ${op.clientId}: ${what} ${result}`;
}
