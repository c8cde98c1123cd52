import type { DriverClock } from "../../../src/driver/clock.js";
import { assert } from "../../../src/lib/assert.js";

/**
 * Virtual time for the driver simulator. One `Scheduler` per run holds every pending event (a timer of
 * some Driver, a message arriving, an fsync completing, a client waking up, a fault) in a priority queue
 * ordered by (time, insertion number), so that events due at the same millisecond run in the order
 * they were scheduled: nothing depends on the host's timers or clock.
 *
 * The run loop (`runUntil`) takes one event at a time, advances `now` to its time, runs it, and then
 * lets every promise continuation it set off run to completion before taking the next one (`settle`).
 * That is what makes a run of real, async Drivers replay exactly: the Driver's loop, its proposals and
 * the clients are all promise chains, and all of them finish their reaction to one event before the
 * next event exists for them.
 */

/** A scheduled event that can be withdrawn before it runs. */
export interface Timer {
  cancel(): void;
}

interface Event {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
  cancelled: boolean;
}

/**
 * Beyond this many pending events a run is out of control (a message storm, timers never cancelled):
 * an assertion stops it rather than let it eat the machine's memory.
 */
const PENDING_EVENTS_MAX = 1_000_000;

export class Scheduler {
  private time = 0;
  private seq = 0;
  /** A binary min-heap on (at, seq). */
  private readonly heap: Event[] = [];
  /** Events run so far (for the run summary and the speed measurements). */
  eventsRun = 0;

  get now(): number {
    return this.time;
  }

  get pending(): number {
    return this.heap.length;
  }

  /** Runs `run` `delayMs` (>= 0) from now; events at the same time run in the order they were added. */
  after(delayMs: number, run: () => void): Timer {
    assert(Number.isFinite(delayMs) && delayMs >= 0, () => `scheduler: bad delay ${delayMs}`);
    assert(this.heap.length < PENDING_EVENTS_MAX, "scheduler: too many pending events");
    const event: Event = { at: this.time + delayMs, seq: this.seq++, run, cancelled: false };
    this.push(event);
    return {
      cancel: () => {
        event.cancelled = true;
      },
    };
  }

  /** A promise that resolves `delayMs` from now (virtual time). */
  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => this.after(delayMs, resolve));
  }

  /**
   * Runs events in order until `stop()` says so (asked after each event) or none is left. `onError`
   * hears of an exception thrown by an event; the run goes on.
   */
  async runUntil(stop: () => boolean, onError: (error: unknown) => void): Promise<void> {
    while (!stop()) {
      const event = this.pop();
      if (event === undefined) return;
      if (event.cancelled) continue;
      this.time = event.at;
      this.eventsRun++;
      try {
        event.run();
      } catch (error) {
        onError(error);
      }
      await settle();
    }
  }

  private push(event: Event): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent];
      if (p === undefined || earlier(p, event)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = event;
  }

  private pop(): Event | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const l = heap[left];
      const r = heap[right];
      assert(l !== undefined, "scheduler: heap in range");
      const child = r !== undefined && earlier(r, l) ? right : left;
      const c = child === right ? r : l;
      assert(c !== undefined, "scheduler: heap in range");
      if (earlier(last, c)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

function earlier(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * Waits until every promise continuation queued so far, and every one those queue in turn, has run.
 * Node runs the whole microtask queue (promise reactions, queueMicrotask, process.nextTick) until it is
 * empty before it moves to the next phase of its event loop, and an immediate runs in a later phase, so
 * one setImmediate is enough: no Driver code waits on a real timer or on I/O, which would be the only
 * way for work to outlive it. This is the one host facility a run uses, and it carries no time.
 */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The DriverClock of one Driver instance: its ticks and sleeps are events of the shared scheduler, and
 * `stopAll` (the process crashed) withdraws every one of them, so a dead instance never runs again.
 *
 * `drift` stretches this instance's intervals (a clock running slightly fast or slow) and `phaseMs`
 * delays its first tick, so the nodes of a cluster do not tick in lockstep.
 */
export class VirtualClock implements DriverClock {
  private readonly timers = new Set<Timer>();
  private stopped = false;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly drift: number,
    private readonly phaseMs: number,
  ) {
    assert(drift > 0, "virtual clock: drift must be positive");
  }

  now(): number {
    return this.scheduler.now;
  }

  every(ms: number, fn: () => void): () => void {
    assert(ms > 0, "virtual clock: interval must be positive");
    const period = ms * this.drift;
    let current: Timer | undefined;
    let cancelled = false;
    const arm = (delay: number): void => {
      if (this.stopped || cancelled) return;
      const timer = this.scheduler.after(delay, () => {
        this.timers.delete(timer);
        arm(period);
        fn();
      });
      current = timer;
      this.timers.add(timer);
    };
    arm(this.phaseMs + period);
    return () => {
      cancelled = true;
      if (current !== undefined) {
        current.cancel();
        this.timers.delete(current);
      }
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return ms <= 0 ? this.sleepRaw(-1, signal) : this.sleepRaw(ms * this.drift, signal);
  }

  /** A sleep of `delay` virtual ms (< 0: resolve at once unless stopped). */
  private sleepRaw(delay: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (delay < 0 || signal?.aborted === true || this.stopped) {
        // A stopped clock never wakes its sleepers: the process they belong to is gone.
        if (!this.stopped) resolve();
        return;
      }
      const done = (): void => {
        if (this.stopped) return;
        this.timers.delete(timer);
        timer.cancel();
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = this.scheduler.after(delay, done);
      this.timers.add(timer);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * Production yields one turn of the event loop, so that I/O and timers that are due get a say; here,
   * the events already due at this virtual millisecond run first (a zero-delay event goes after them).
   */
  nextTurn(): Promise<void> {
    return this.sleepRaw(0);
  }

  /** The process is gone: no timer of it fires again. */
  stopAll(): void {
    this.stopped = true;
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
  }
}
