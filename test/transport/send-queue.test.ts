import { describe, expect, it } from "vitest";
import { createPrng } from "../../src/lib/prng.js";
import { backoffDelayMs } from "../../src/transport/backoff.js";
import { SendQueue } from "../../src/transport/send-queue.js";

describe("SendQueue", () => {
  it("is FIFO and evicts the oldest items when the count limit is reached", () => {
    const q = new SendQueue<number>(3, 1000);
    expect([q.push(1, 1), q.push(2, 1), q.push(3, 1)]).toEqual([0, 0, 0]);
    expect(q.push(4, 1)).toBe(1);
    expect(q.push(5, 1)).toBe(1);
    expect([q.shift(), q.shift(), q.shift(), q.shift()]).toEqual([3, 4, 5, undefined]);
    expect(q.length).toBe(0);
    expect(q.byteLength).toBe(0);
  });

  it("evicts the oldest items when the byte limit would be exceeded, and admits an oversized item alone", () => {
    const q = new SendQueue<string>(10, 100);
    q.push("a", 40);
    q.push("b", 40);
    expect(q.push("c", 40)).toBe(1);
    expect(q.byteLength).toBe(80);
    expect(q.push("huge", 500)).toBe(2);
    expect(q.length).toBe(1);
    expect(q.peekSize()).toBe(500);
    expect(q.shift()).toBe("huge");
  });

  it("matches a naive array model under random pushes and shifts", () => {
    const rng = createPrng(7);
    const itemsMax = 17;
    const bytesMax = 300;
    const q = new SendQueue<number>(itemsMax, bytesMax);
    const model: { v: number; size: number }[] = [];
    let modelBytes = 0;
    const mismatches: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      if (rng.chance(0.6)) {
        const size = rng.int(0, 60);
        let evicted = 0;
        while (model.length > 0 && (model.length === itemsMax || modelBytes + size > bytesMax)) {
          modelBytes -= model.shift()?.size ?? 0;
          evicted++;
        }
        model.push({ v: i, size });
        modelBytes += size;
        const got = q.push(i, size);
        if (got !== evicted) mismatches.push(`step ${i}: push evicted ${got}, model ${evicted}`);
      } else {
        const got = q.shift();
        const want = model.shift();
        modelBytes -= want?.size ?? 0;
        if (got !== want?.v) mismatches.push(`step ${i}: shift gave ${got}, model ${want?.v}`);
      }
      if (q.length !== model.length || q.byteLength !== modelBytes)
        mismatches.push(`step ${i}: size ${q.length}/${q.byteLength}, model ${model.length}/${modelBytes}`);
    }
    expect(mismatches).toEqual([]);
    expect(q.clear()).toBe(model.length);
  });
});

describe("backoffDelayMs", () => {
  it("grows exponentially from delayMsMin, caps at delayMsMax, and keeps half of the delay fixed", () => {
    expect(backoffDelayMs(1, 100, 5000, () => 0)).toBe(50);
    expect(backoffDelayMs(1, 100, 5000, () => 0.999999)).toBe(100);
    expect(backoffDelayMs(4, 100, 5000, () => 0)).toBe(400);
    expect(backoffDelayMs(10, 100, 5000, () => 0)).toBe(2500);
    expect(backoffDelayMs(10_000, 100, 5000, () => 0.999999)).toBe(5000);
    const rng = createPrng(3);
    for (let attempt = 1; attempt < 40; attempt++) {
      const d = backoffDelayMs(attempt, 10, 1000, () => rng.next());
      expect(d).toBeGreaterThanOrEqual(Math.min(1000, 10 * 2 ** (attempt - 1)) / 2);
      expect(d).toBeLessThanOrEqual(1000);
    }
  });
});
