import { sleep } from "../lib/sleep.js";

/**
 * Time as the driver sees it. Production uses the system clock; the simulator passes a virtual clock
 * whose timers fire only when it advances time, so a run of real Drivers replays event for event.
 */
export interface DriverClock {
  /** Milliseconds on a monotonic clock (only differences are used). */
  now(): number;
  /** Calls `fn` every `ms` milliseconds until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
  /** Resolves after `ms` milliseconds, or at once when `signal` aborts (never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Resolves after the I/O and timers that are due now had their turn (setImmediate). */
  nextTurn(): Promise<void>;
}

export const systemClock: DriverClock = {
  now: () => performance.now(),
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    return () => clearInterval(timer);
  },
  sleep,
  nextTurn: () => new Promise((resolve) => setImmediate(resolve)),
};
