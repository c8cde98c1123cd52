import { describe, expect, it } from "vitest";
import { prefixEnd } from "../../src/kv/key-codec.js";
import { SortedKeys } from "../../src/kv/sorted-keys.js";
import { createPrng } from "../../src/lib/prng.js";

/** The naive twin: a sorted array rebuilt on every change. */
class NaiveKeys {
  keys: string[] = [];
  insert(key: string): boolean {
    if (this.keys.includes(key)) return false;
    this.keys = [...this.keys, key].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return true;
  }
  delete(key: string): boolean {
    const before = this.keys.length;
    this.keys = this.keys.filter((k) => k !== key);
    return this.keys.length !== before;
  }
  range(start: string, end: string | undefined): string[] {
    return this.keys.filter((k) => k >= start && (end === undefined || k < end));
  }
}

describe("SortedKeys", () => {
  it("agrees with a naive sorted array under random inserts, deletes and range queries", () => {
    for (const seed of [1, 2, 3]) {
      const prng = createPrng(seed);
      const alphabet = ["\u0000", "a", "b", "c", "\u00ff"];
      const randomKey = () => Array.from({ length: prng.int(0, 3) }, () => prng.pick(alphabet)).join("");
      // Start from a bulk-loaded set (as a snapshot restore does); a small chunk size forces many
      // splits and merges.
      const naive = new NaiveKeys();
      for (let i = 0; i < 40; i++) naive.insert(randomKey());
      const fast = SortedKeys.fromSorted(naive.keys, 4);
      for (let step = 0; step < 3000; step++) {
        const key = randomKey();
        if (prng.chance(0.6)) expect(fast.insert(key), `seed ${seed} step ${step} insert`).toBe(naive.insert(key));
        else expect(fast.delete(key), `seed ${seed} step ${step} delete`).toBe(naive.delete(key));
        expect(fast.size).toBe(naive.keys.length);
        const start = randomKey();
        const end = prng.chance(0.3) ? undefined : prng.chance(0.5) ? prefixEnd(start) : randomKey();
        expect([...fast.range(start, end)], `seed ${seed} step ${step} range`).toEqual(naive.range(start, end));
        expect(fast.countRange(start, end)).toBe(naive.range(start, end).length);
      }
    }
  });

  it("computes prefix ends that bound exactly the keys with the prefix", () => {
    expect(prefixEnd("ab")).toBe("ac");
    expect(prefixEnd("a\u00ff")).toBe("b");
    expect(prefixEnd("\u00ff\u00ff")).toBeUndefined();
    expect(prefixEnd("")).toBeUndefined();
  });
});
