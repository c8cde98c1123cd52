import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Entry, HardState } from "../../src/core/types.js";
import { createPrng, type Prng } from "../../src/lib/prng.js";
import { CorruptLogError, openStorage } from "../../src/storage/index.js";
import { entryData, makeEntries, memoryLogger, sameBytes } from "./helpers.js";
import { silentLogger } from "../../src/lib/logger.js";

/**
 * Fuzzes real WAL and snapshot files: truncations, bit flips, overwritten and zeroed ranges, appended
 * garbage. Start-up must either recover a log that was really written (a prefix of one, when the damage
 * looks like a torn write) or refuse with CorruptLogError; never another exception, never a wrong entry.
 * STORAGE_FUZZ_CASES sets the number of damaged copies (default 200).
 */
const cases = Number(process.env.STORAGE_FUZZ_CASES ?? 200);
const segmentBytes = 8 * 1024;
const conf = { voters: [1, 2, 3], learners: [] };

interface Written {
  readonly hardState: HardState;
  /** entries[i] is the entry at index i (index 0 unused). */
  readonly entries: readonly (Entry | undefined)[];
}

let source = "";
const history: Written[] = [];
const snapshots = new Map<number, Uint8Array>();

beforeAll(async () => {
  source = await mkdtemp(join(tmpdir(), "raftkv-fuzz-src-"));
  const prng = createPrng(99);
  const log = await openStorage({ dir: source, segmentBytes, initialConf: conf, logger: silentLogger });
  let entries: (Entry | undefined)[] = [undefined];
  let hardState: HardState = { term: 1, vote: 1, commit: 0 };
  history.push({ hardState: log.initialState().hardState, entries });
  for (let n = 1; n <= 80; n++) {
    const last = entries.length - 1;
    let from = last + 1;
    let term = hardState.term;
    if (n % 9 === 0 && last > hardState.commit + 2) {
      from = prng.int(hardState.commit + 1, last);
      term++;
    }
    const batch = makeEntries(from, from + prng.int(1, 6) - 1, term, prng.int(10, 400), n);
    const newLast = from + batch.length - 1;
    hardState = { term, vote: 1, commit: Math.max(hardState.commit, newLast - 3) };
    entries = [...entries.slice(0, from), ...batch];
    history.push({ hardState, entries });
    await log.save(hardState, batch);
    if (n % 25 === 0) {
      const index = hardState.commit;
      const data = entryData(index, 0, 500, 5);
      snapshots.set(index, data);
      await log.createSnapshot(index, conf, data);
      await log.compact(index - 5);
    }
  }
  await log.close();
});

afterAll(async () => {
  if (source !== "") await rm(source, { recursive: true, force: true });
});

async function filesOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ["wal", "snap"]) {
    for (const name of await readdir(join(dir, sub))) out.push(join(dir, sub, name));
  }
  return out.sort();
}

/** Damages one file in one of several ways; returns a description for failure messages. */
async function damage(prng: Prng, file: string): Promise<string> {
  const data = new Uint8Array(await readFile(file));
  const at = prng.int(0, Math.max(0, data.byteLength - 1));
  switch (prng.int(0, 4)) {
    case 0: {
      await writeFile(file, data.subarray(0, at));
      return `truncated ${file} to ${at}`;
    }
    case 1: {
      const flips = prng.int(1, 3);
      for (let i = 0; i < flips; i++) {
        const where = prng.int(0, data.byteLength - 1);
        data[where] = (data[where] ?? 0) ^ (1 << prng.int(0, 7));
      }
      await writeFile(file, data);
      return `flipped ${flips} bits in ${file}`;
    }
    case 2: {
      const len = prng.int(1, 300);
      for (let i = at; i < Math.min(data.byteLength, at + len); i++) data[i] = prng.int(0, 255);
      await writeFile(file, data);
      return `overwrote ${len} bytes of ${file} at ${at}`;
    }
    case 3: {
      data.fill(0, at, at + prng.int(1, 2000));
      await writeFile(file, data);
      return `zeroed bytes of ${file} from ${at}`;
    }
    default: {
      const garbage = new Uint8Array(prng.int(1, 500)).map(() => prng.int(0, 255));
      await writeFile(file, Buffer.concat([data, garbage]));
      return `appended ${garbage.byteLength} bytes to ${file}`;
    }
  }
}

describe("start-up on damaged real files", () => {
  it(`recovers cleanly or refuses with CorruptLogError, in ${cases} damaged copies`, async () => {
    const prng = createPrng(2024);
    let recovered = 0;
    let refused = 0;
    for (let c = 0; c < cases; c++) {
      const dir = await mkdtemp(join(tmpdir(), "raftkv-fuzz-"));
      try {
        await cp(source, dir, { recursive: true });
        const files = (await filesOf(dir)).filter((f) => !f.endsWith(".tmp"));
        const what: string[] = [];
        for (let i = prng.int(1, 2); i > 0; i--) what.push(await damage(prng, prng.pick(files)));
        const context = `case ${c}: ${what.join("; ")}`;
        const { logger, lines } = memoryLogger();
        let log;
        try {
          log = await openStorage({ dir, segmentBytes, logger });
        } catch (error) {
          if (!(error instanceof CorruptLogError)) throw new Error(`${context}: unexpected ${String(error)}`, { cause: error });
          expect(error.message, context).toContain(error.file);
          refused++;
          continue;
        }
        recovered++;
        const first = log.firstIndex();
        const last = log.lastIndex();
        const snapshot = log.snapshot();
        expect(first - 1, context).toBe(snapshot.meta.index);
        if (snapshot.meta.index > 0) {
          const want = snapshots.get(snapshot.meta.index);
          expect(want !== undefined && sameBytes(want, snapshot.data), `${context}: snapshot data`).toBe(true);
        }
        const served = log.entries(first, last + 1, Infinity);
        // The log served is a prefix of one that was written, through the snapshot point.
        const origin = history.find(
          (h) =>
            h.entries.length - 1 >= last &&
            h.entries[first - 1]?.term === log.term(first - 1) &&
            served.every((e) => {
              const want = h.entries[e.index];
              return want !== undefined && want.term === e.term && sameBytes(want.data, e.data);
            }),
        );
        expect(origin, `${context}: served a log that was never written`).toBeDefined();
        const hs = log.initialState().hardState;
        expect(
          history.some((h) => h.hardState.term === hs.term && h.hardState.commit === hs.commit),
          `${context}: hard state`,
        ).toBe(true);
        const final = history.at(-1);
        if (final !== undefined && (last < final.entries.length - 1 || hs.commit !== final.hardState.commit)) {
          expect(
            lines.some((l) => l.level === "warn"),
            `${context}: data dropped without a warning`,
          ).toBe(true);
        }
        // The repaired log takes new appends and keeps them.
        const term = Math.max(hs.term, log.term(last));
        await log.save(undefined, makeEntries(last + 1, last + 2, term, 16));
        await log.close();
        const again = await openStorage({ dir, segmentBytes, logger: silentLogger });
        expect(again.lastIndex(), context).toBe(last + 2);
        await again.close();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    expect(recovered).toBeGreaterThan(cases / 10);
    expect(refused).toBeGreaterThan(cases / 10);
  });
});
