/**
 * Assertions for invariants. A broken invariant is a bug in raftkv, never an operating error: it throws
 * an AssertionError so that tests, the simulator and fuzzers stop loudly at the first sign of it.
 * Operating errors (disk full, peer down, bad input) are handled explicitly and never go through here.
 */
export class AssertionError extends Error {
  override readonly name = "AssertionError";
}

export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new AssertionError(typeof message === "string" ? message : message());
  }
}

export function unreachable(value: never, what = "value"): never {
  throw new AssertionError(`unreachable: unexpected ${what} ${JSON.stringify(value)}`);
}
