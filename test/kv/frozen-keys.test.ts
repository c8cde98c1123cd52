import { describe, expect, it } from "vitest";
import { KeyIndex } from "../../src/kv/key-index.js";
import type { KeyRecord } from "../../src/kv/key-record.js";
import { createPrng } from "../../src/lib/prng.js";

/**
 * KeyIndex.freeze: a snapshot's view of the keys, taken in O(1) and read lazily while the index keeps
 * changing. Whatever happens between two reads, the view must yield exactly the records of the moment
 * it was taken, in key order, each once.
 */

const encoder = new TextEncoder();

function record(key: string, version: number): KeyRecord {
  return { key: encoder.encode(key), value: encoder.encode(`v${version}`), createRevision: 1, modRevision: version, version };
}

function contents(index: KeyIndex): [string, number][] {
  return [...index.scan({ start: "", end: undefined })].map(([key, r]) => [key, r.version]);
}

describe("KeyIndex.freeze", () => {
  it("yields the records of the moment it was taken while keys are changed, deleted, re-created and added between reads", () => {
    for (let seed = 1; seed <= 60; seed++) {
      const prng = createPrng(seed);
      const index = new KeyIndex();
      const keySpace = prng.int(1, 2_000);
      let version = 0;
      const keyOf = (): string => `k${String(prng.int(0, keySpace)).padStart(5, "0")}`;
      for (let i = prng.int(0, 3_000); i > 0; i--) {
        const key = keyOf();
        index.set(key, record(key, ++version));
      }
      const expected = contents(index);

      const view = index.freeze();
      const seen: [string, number][] = [];
      const iterator = view[Symbol.iterator]();
      for (;;) {
        // A few reads, then a few changes: the index changes between any two reads.
        let done = false;
        for (let r = prng.int(0, 40); r > 0; r--) {
          const next = iterator.next();
          if (next.done === true) {
            done = true;
            break;
          }
          seen.push([new TextDecoder().decode(next.value.key), next.value.version]);
        }
        if (done) break;
        for (let c = prng.int(0, 30); c > 0; c--) {
          const key = keyOf();
          if (prng.chance(0.4)) index.delete(key);
          else index.set(key, record(key, ++version));
        }
      }
      expect(seen).toEqual(expected);
    }
  });

  it("stops following the index once closed, and reading to the end closes it", () => {
    const index = new KeyIndex();
    for (let i = 0; i < 1_000; i++) {
      const key = `k${String(i).padStart(4, "0")}`;
      index.set(key, record(key, i + 1));
    }
    const read = index.freeze();
    const abandoned = index.freeze();
    expect([...read]).toHaveLength(1_000);
    abandoned.close();
    // Neither view keeps anything of later changes (the index holds no open view any more).
    index.set("k0000", record("k0000", 5_000));
    expect((index as unknown as { views: Set<unknown> }).views.size).toBe(0);
  });
});
