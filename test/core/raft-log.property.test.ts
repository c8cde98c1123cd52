import { describe, expect, it } from "vitest";
import { RaftLog } from "../../src/core/raft-log.js";
import { MemoryStorage, type Entry } from "../../src/core/index.js";
import { createPrng, type Prng } from "../../src/lib/prng.js";

const casesMax = 3_000;
const queriesPerCase = 10;

/**
 * A log as plain data: `terms[i]` is the term of index i (index 0 is the empty log's sentinel, term 0);
 * entries up to `snapshotIndex` are compacted, leaving only the snapshot's own term; entries after
 * `stableLast` are still unstable (in the core's tail, not yet in storage).
 */
interface LogModel {
  readonly terms: readonly number[];
  readonly snapshotIndex: number;
  readonly stableLast: number;
}

function randomModel(prng: Prng): LogModel {
  const length = prng.int(0, 30);
  const terms = [0];
  let term = prng.int(1, 3);
  for (let i = 1; i <= length; i++) {
    if (prng.chance(0.3)) term += prng.int(1, 3);
    terms.push(term);
  }
  const snapshotIndex = prng.chance(0.3) ? prng.int(0, length) : 0;
  const stableLast = prng.int(snapshotIndex, length);
  return { terms, snapshotIndex, stableLast };
}

function entry(index: number, term: number): Entry {
  return { index, term, type: "normal", data: new Uint8Array(0) };
}

/** Builds the real RaftLog for a model: storage holds up to stableLast, compacted to snapshotIndex. */
function buildLog(model: LogModel): RaftLog {
  const storage = new MemoryStorage({ voters: [1], learners: [] });
  const stable = model.terms.slice(1, model.stableLast + 1).map((term, i) => entry(i + 1, term));
  storage.append(stable);
  if (model.snapshotIndex > 0) storage.createSnapshot(model.snapshotIndex, { voters: [1], learners: [] }, new Uint8Array(0));
  const log = new RaftLog(storage, 0, 0);
  const unstable = model.terms.slice(model.stableLast + 1).map((term, i) => entry(model.stableLast + 1 + i, term));
  log.append(unstable);
  return log;
}

/**
 * findConflictByTerm by its definition, scanning the model: the largest index <= `index` (and <= the
 * last index) whose term is <= `term`, with that term; at the first index that is compacted (below
 * the snapshot's own entry), that index with term 0.
 */
function naiveFindConflictByTerm(model: LogModel, index: number, term: number): { index: number; term: number } {
  const last = model.terms.length - 1;
  for (let i = Math.min(index, last); i >= 0; i--) {
    if (i < model.snapshotIndex) return { index: i, term: 0 };
    const t = model.terms[i] ?? 0;
    if (t <= term) return { index: i, term: t };
  }
  return { index: 0, term: 0 };
}

describe("RaftLog.findConflictByTerm against a naive scan", () => {
  it("agrees on random logs, with compaction and unstable tails, for random (index, term) queries", () => {
    const prng = createPrng(4_242);
    for (let c = 0; c < casesMax; c++) {
      const model = randomModel(prng);
      const log = buildLog(model);
      const last = model.terms.length - 1;
      const termMax = model.terms[last] ?? 0;
      expect(log.lastIndex(), `case ${c}`).toBe(last);
      for (let q = 0; q < queriesPerCase; q++) {
        const index = prng.int(0, last + 3);
        const term = prng.int(0, termMax + 2);
        const got = log.findConflictByTerm(index, term);
        const want = naiveFindConflictByTerm(model, index, term);
        if (got.index !== want.index || got.term !== want.term) {
          expect(got, `case ${c}: ${JSON.stringify(model)} query (${index}, ${term})`).toEqual(want);
        }
      }
    }
  });

  it("never hints beyond the queried index, nor at an entry of a larger term", () => {
    const prng = createPrng(99);
    for (let c = 0; c < casesMax; c++) {
      const model = randomModel(prng);
      const log = buildLog(model);
      const last = model.terms.length - 1;
      const index = prng.int(0, last + 3);
      const term = prng.int(0, (model.terms[last] ?? 0) + 2);
      const hint = log.findConflictByTerm(index, term);
      const ok = hint.index <= index && hint.term <= term && (hint.term === 0 || log.term(hint.index) === hint.term);
      if (!ok) expect.fail(`case ${c}: ${JSON.stringify(model)} query (${index}, ${term}) gave ${JSON.stringify(hint)}`);
    }
  });
});
