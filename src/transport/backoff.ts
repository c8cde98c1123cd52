import { assert } from "../lib/assert.js";

/** Exponent cap: 2^30 times delayMsMin is beyond any sane delayMsMax, and keeps the arithmetic finite. */
const attemptExponentMax = 30;

/**
 * The wait before retry number `attempt` (1 for the first retry): exponential from delayMsMin, capped at
 * delayMsMax, with "equal jitter": half of the delay is fixed and half random. The fixed half keeps a dead peer from
 * being hammered; the random half keeps the nodes of a cluster that lost the same peer at the same moment
 * from retrying in lockstep. `random` returns a float in [0, 1) (Math.random in production: the transport
 * is outside the deterministic core).
 */
export function backoffDelayMs(attempt: number, delayMsMin: number, delayMsMax: number, random: () => number): number {
  assert(Number.isSafeInteger(attempt) && attempt >= 1, "backoff: attempt must be >= 1");
  assert(delayMsMin > 0 && delayMsMax >= delayMsMin, "backoff: need 0 < delayMsMin <= delayMsMax");
  const exponent = Math.min(attempt - 1, attemptExponentMax);
  const ceiling = Math.min(delayMsMax, delayMsMin * 2 ** exponent);
  const half = ceiling / 2;
  return Math.round(half + random() * half);
}
