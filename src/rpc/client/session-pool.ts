import { assert } from "../../lib/assert.js";

/** One exactly-once session: a client id whose requests are applied in strictly increasing sequence. */
export interface Session {
  readonly clientId: string;
  /** The sequence of the request that holds the session now. */
  readonly sequence: bigint;
}

interface SessionSlot {
  readonly clientId: string;
  lastSequence: bigint;
}

/**
 * Exactly-once sessions for concurrent mutations. The store remembers only the latest sequence per
 * client id, so a client id must never have two requests in flight: if sequence 5 applied before a
 * delayed 4, the 4 would be refused as stale. Each in-flight mutation therefore holds a session of its
 * own (`base-1`, `base-2`, ...); a session goes back to the pool when its request has a final outcome.
 * Retries of one request reuse its (client id, sequence), which is what makes them safe.
 */
export class SessionPool {
  private readonly idle: SessionSlot[] = [];
  private readonly waiters: ((slot: SessionSlot) => void)[] = [];
  private created = 0;

  constructor(
    private readonly baseClientId: string,
    /** The most mutations in flight at once; more wait for a session. */
    private readonly sessionsMax: number,
    /** The most mutations waiting for a session; more are refused rather than queued without bound. */
    private readonly waitersMax: number,
  ) {
    assert(sessionsMax >= 1, "sessionsMax must be at least 1");
  }

  async acquire(): Promise<Session> {
    const slot = this.idle.pop() ?? this.create() ?? (await this.wait());
    slot.lastSequence += 1n;
    return { clientId: slot.clientId, sequence: slot.lastSequence };
  }

  release(session: Session): void {
    const slot: SessionSlot = { clientId: session.clientId, lastSequence: session.sequence };
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter(slot);
    else this.idle.push(slot);
  }

  private create(): SessionSlot | undefined {
    if (this.created >= this.sessionsMax) return undefined;
    this.created++;
    return { clientId: `${this.baseClientId}-${this.created}`, lastSequence: 0n };
  }

  private wait(): Promise<SessionSlot> {
    if (this.waiters.length >= this.waitersMax) {
      throw new RangeError(`more than ${this.waitersMax} mutations are waiting for a session; slow down`);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
