/**
 * The child process of crash.test.ts: appends to a real data directory until it is killed.
 *
 * Protocol on stdout (one line each; writes to a pipe are synchronous on Linux, so a line printed before
 * a call is seen by the parent even if the process dies during the call):
 *   ready <firstIndex> <lastIndex>
 *   I <json>   intent, printed before the call: {"n","kind":"save","from","count","term","bytes","hs"} or {"n","kind":"snapshot","index"}
 *   D <n>      the call n resolved (it is durable)
 * Entry data is entryData(index, term, bytes, n) and snapshot data entryData(index, 0, 64, 99), so the
 * parent can check every byte.
 */
import { createPrng } from "../../src/lib/prng.js";
import type { HardState } from "../../src/core/types.js";
import { openStorage } from "../../src/storage/index.js";
import { makeEntries, entryData } from "./helpers.js";
import { silentLogger } from "../../src/lib/logger.js";

const [dir, seedArg] = process.argv.slice(2);
if (dir === undefined || seedArg === undefined) throw new Error("usage: crash-writer.ts <dir> <seed>");
const inFlightMax = 8;
const conf = { voters: [1, 2, 3], learners: [] };

const log = await openStorage({ dir, segmentBytes: 64 * 1024, initialConf: conf, logger: silentLogger });
const prng = createPrng(Number(seedArg));
let hardState: HardState = log.initialState().hardState;
let term = Math.max(hardState.term, log.term(log.lastIndex()), 1);
let snapshotIndex = log.snapshot().meta.index;
const inFlight = new Set<Promise<void>>();
const say = (line: string): void => void process.stdout.write(`${line}\n`);
say(`ready ${log.firstIndex()} ${log.lastIndex()}`);

for (let n = 1; ; n++) {
  if (inFlight.size >= inFlightMax) await Promise.race(inFlight);
  let call: Promise<unknown>;
  const commit = hardState.commit;
  if (prng.chance(0.04) && commit > snapshotIndex) {
    const index = prng.int(snapshotIndex + 1, commit);
    snapshotIndex = index;
    say(`I ${JSON.stringify({ n, kind: "snapshot", index })}`);
    call = log.createSnapshot(index, conf, entryData(index, 0, 64, 99)).then(() => log.compact(index));
  } else {
    const last = log.lastIndex();
    let from = last + 1;
    const overwriteFrom = Math.max(log.firstIndex(), commit + 1, snapshotIndex + 1);
    if (prng.chance(0.1) && overwriteFrom <= last) {
      from = prng.int(overwriteFrom, last);
      term++;
    }
    const count = prng.int(1, 10);
    const bytes = prng.int(1, 300);
    const newLast = from + count - 1;
    const hs = prng.chance(0.7) ? { term, vote: prng.int(0, 3), commit: prng.int(commit, Math.max(commit, newLast - 2)) } : undefined;
    if (hs !== undefined) hardState = hs;
    say(`I ${JSON.stringify({ n, kind: "save", from, count, term, bytes, hs: hs ?? null })}`);
    call = log.save(hs, makeEntries(from, newLast, term, bytes, n));
  }
  const tracked: Promise<void> = call.then(() => {
    say(`D ${n}`);
    inFlight.delete(tracked);
  });
  inFlight.add(tracked);
}
