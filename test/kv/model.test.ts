import { describe, expect, it } from "vitest";
import { createKvStore } from "../../src/kv/index.js";
import { createPrng } from "../../src/lib/prng.js";
import { applyAll, deleteCmd, dump, putCmd } from "./helpers.js";

/**
 * The store against a few lines of obviously correct model of etcd's key semantics: random puts,
 * deletes and prefix deletes must leave the same keys, values, mod revisions and versions.
 */
describe("key semantics against a naive model", () => {
  it("matches the model on random puts and deletes", () => {
    const prng = createPrng(2024);
    const store = createKvStore();
    const model = new Map<string, { value: string; mod: number; version: number }>();
    let revision = 0;
    const keys = ["a", "ab", "abc", "b", "ba", "c"];
    for (let step = 0; step < 2000; step++) {
      const key = prng.pick(keys);
      const roll = prng.int(0, 9);
      if (roll < 6) {
        const value = String(prng.int(0, 9));
        revision++;
        model.set(key, { value, mod: revision, version: (model.get(key)?.version ?? 0) + 1 });
        applyAll(store, putCmd(key, value));
      } else {
        const prefix = roll >= 8;
        const doomed = [...model.keys()].filter((k) => (prefix ? k.startsWith(key) : k === key));
        if (doomed.length > 0) revision++;
        for (const k of doomed) model.delete(k);
        applyAll(store, deleteCmd(key, { prefix }));
      }
      const expected = [...model.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v.value}@${v.mod}/${v.version}`);
      expect(dump(store), `step ${step}`).toEqual(expected);
      expect(store.revision).toBe(revision);
    }
  });
});
