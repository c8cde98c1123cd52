import { describe, expect, it } from "vitest";
import { sameHardState, type ConfState, type Entry, type HardState, type Snapshot } from "../../src/core/types.js";
import { createPrng, type Prng } from "../../src/lib/prng.js";
import { CorruptLogError, openStorage, StorageFailedError, type DurableLog } from "../../src/storage/index.js";
import { SimFileSystem, type CrashOptions, type FsOp } from "./sim-file-system.js";
import { entryData, makeEntry, memoryLogger, sameBytes, settle, type LogLine } from "./helpers.js";

/**
 * Seeded fault scenarios on the simulated disk. Each seed runs several rounds of a random workload
 * (appends, conflicting overwrites, hard states, local snapshots, compaction, installed snapshots), with
 * many saves in flight at once, ended by a crash at a random operation, sometimes after ENOSPC or EIO,
 * with unsynced data lost, torn or reordered; the last crash of some seeds also flips bits on disk.
 *
 * After each crash the reopened log must be exactly the state after some prefix of the calls that
 * includes every acknowledged call (or, after bit flips, refuse to start with CorruptLogError, or serve
 * an earlier prefix and say so in the log), and it must accept new appends.
 *
 * STORAGE_FAULT_SEEDS=2000 npx vitest run test/storage/fault-scenarios.test.ts runs a longer search.
 * A failure names its seed; STORAGE_FAULT_SEED=<n> replays just that one.
 */
const seedCount = Number(process.env.STORAGE_FAULT_SEEDS ?? 300);
const onlySeed = process.env.STORAGE_FAULT_SEED === undefined ? undefined : Number(process.env.STORAGE_FAULT_SEED);
const roundsPerSeed = 4;
const dir = "/node/data";
const bootstrapConf: ConfState = { voters: [1, 2, 3], learners: [] };

interface ModelState {
  readonly hardState: HardState;
  /** The snapshot point the entries follow (index 0 term 0 before any install). */
  readonly baseIndex: number;
  readonly baseTerm: number;
  readonly entries: readonly Entry[];
}

function lastIndexOf(state: ModelState): number {
  return state.baseIndex + state.entries.length;
}

function termOf(state: ModelState, index: number): number | undefined {
  if (index === state.baseIndex) return state.baseTerm;
  return state.entries[index - state.baseIndex - 1]?.term;
}

/** Every state the log went through since the last recovery: states[k] is the state after call k. */
class Model {
  states: ModelState[];
  /** Snapshots asked for, with the call that asked. */
  snapshots: { readonly call: number; readonly snapshot: Snapshot }[];
  /** The highest call acknowledged, and the highest snapshot index acknowledged. */
  ackedCall = 0;
  ackedSnapshotIndex = 0;
  snapshotIndexMax: number;

  constructor(state: ModelState, snapshot: Snapshot) {
    this.states = [state];
    this.snapshots = [{ call: 0, snapshot }];
    this.snapshotIndexMax = snapshot.meta.index;
  }

  get latest(): ModelState {
    const state = this.states.at(-1);
    if (state === undefined) throw new Error("empty model");
    return state;
  }

  push(state: ModelState): number {
    this.states.push(state);
    return this.states.length - 1;
  }

  ack(call: number): void {
    this.ackedCall = Math.max(this.ackedCall, call);
  }
}

interface Run {
  readonly prng: Prng;
  readonly seed: number;
  log: DurableLog;
  model: Model;
  lines: LogLine[];
  /** Errors that saves rejected with; anything but StorageFailedError fails the test. */
  readonly rejections: unknown[];
  readonly coverage: Coverage;
}

/** One round of random calls; does not wait for the last ones, so a crash can catch them in flight. */
async function workload(run: Run, calls: number): Promise<void> {
  const { prng, log } = run;
  const inFlight: Promise<unknown>[] = [];
  for (let i = 0; i < calls && log.failure === undefined; i++) {
    const roll = prng.next();
    if (roll < 0.6) inFlight.push(save(run));
    else if (roll < 0.68) inFlight.push(createSnapshot(run));
    else if (roll < 0.74) inFlight.push(installSnapshot(run));
    else if (roll < 0.8) inFlight.push(compact(run));
    else await Promise.allSettled(inFlight.splice(0));
  }
}

function track(run: Run, call: number, promise: Promise<unknown>, onAck?: () => void): Promise<unknown> {
  return promise.then(
    () => {
      run.model.ack(call);
      onAck?.();
    },
    (error: unknown) => void run.rejections.push(error),
  );
}

function save(run: Run): Promise<unknown> {
  const { prng, log, model } = run;
  const cur = model.latest;
  const last = lastIndexOf(cur);
  const lastTerm = termOf(cur, last) ?? 0;
  let start = last + 1;
  // A follower overwriting its uncommitted tail: never at or below the commit index or a snapshot.
  const overwriteFrom = Math.max(log.firstIndex(), cur.hardState.commit + 1, model.snapshotIndexMax + 1);
  if (prng.chance(0.2) && overwriteFrom <= last) {
    start = prng.int(overwriteFrom, last);
    run.coverage.overwrites++;
  }
  let hardState: HardState | undefined;
  const term = start <= last ? Math.max(cur.hardState.term, lastTerm) + 1 : Math.max(cur.hardState.term, lastTerm, 1);
  const count = prng.int(start <= last ? 1 : 0, 5);
  const newLast = count > 0 ? start + count - 1 : last;
  if (term !== cur.hardState.term || prng.chance(0.5)) {
    const commit = Math.min(newLast, Math.max(cur.hardState.commit, prng.int(cur.hardState.commit, newLast)));
    hardState = { term, vote: prng.int(0, 3), commit };
  }
  const call = model.states.length;
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) entries.push(makeEntry(start + i, term, prng.int(0, 700), call));
  let state: ModelState = cur;
  if (count > 0) {
    const kept = start - 1 - cur.baseIndex;
    state = { ...state, entries: [...cur.entries.slice(0, kept), ...entries] };
  }
  if (hardState !== undefined) state = { ...state, hardState };
  model.push(state);
  return track(run, call, log.save(hardState, entries));
}

function createSnapshot(run: Run): Promise<unknown> {
  const { prng, log, model } = run;
  const cur = model.latest;
  // Snapshots cover committed entries only, above every snapshot asked for so far.
  const from = Math.max(log.snapshot().meta.index, model.snapshotIndexMax) + 1;
  const to = Math.min(cur.hardState.commit, lastIndexOf(cur));
  if (from > to) return Promise.resolve();
  const index = prng.int(from, to);
  const term = termOf(cur, index);
  if (term === undefined) throw new Error("model has no term at a snapshot index");
  const data = entryData(index, term, prng.int(0, 2000), 7);
  const snapshot: Snapshot = { meta: { index, term, conf: bootstrapConf }, data };
  const call = model.push(cur);
  model.snapshots.push({ call, snapshot });
  model.snapshotIndexMax = index;
  const compactAfter = prng.chance(0.6);
  const created = log.createSnapshot(index, bootstrapConf, data).then(async (made) => {
    expect(made).toEqual(snapshot.meta);
    if (compactAfter) await log.compact(Math.min(index, log.snapshot().meta.index));
  });
  return track(run, call, created, () => {
    model.ackedSnapshotIndex = Math.max(model.ackedSnapshotIndex, index);
  });
}

function installSnapshot(run: Run): Promise<unknown> {
  const { prng, log, model } = run;
  const cur = model.latest;
  const last = lastIndexOf(cur);
  const lastTerm = termOf(cur, last) ?? 0;
  const index = prng.int(Math.max(model.snapshotIndexMax, cur.hardState.commit) + 1, last + 8);
  // Sometimes the leader's snapshot matches the local entry at its index (same history), mostly not.
  const local = termOf(cur, index);
  const term = local !== undefined && prng.chance(0.4) ? local : Math.max(lastTerm, cur.hardState.term) + 1;
  const snapshot: Snapshot = {
    meta: { index, term, conf: { voters: [1, 2, 3, prng.int(4, 9)], learners: [] } },
    data: entryData(index, term, prng.int(0, 3000), 11),
  };
  const call = model.push({ hardState: cur.hardState, baseIndex: index, baseTerm: term, entries: [] });
  model.snapshots.push({ call, snapshot });
  model.snapshotIndexMax = index;
  return track(run, call, log.installSnapshot(snapshot), () => {
    model.ackedSnapshotIndex = Math.max(model.ackedSnapshotIndex, index);
  });
}

function compact(run: Run): Promise<unknown> {
  const { prng, log } = run;
  const snapIndex = log.snapshot().meta.index;
  if (snapIndex < log.firstIndex()) return Promise.resolve();
  return log.compact(prng.int(log.firstIndex(), snapIndex)).catch((error: unknown) => void run.rejections.push(error));
}

/** Checks the reopened log against the model; returns the matching state's call number. */
function verify(run: Run, log: DurableLog, flipped: boolean, context: string): number {
  const { model } = run;
  const first = log.firstIndex();
  const last = log.lastIndex();
  const snapshot = log.snapshot();
  expect(first - 1, `${context}: the log starts right after the snapshot`).toBe(snapshot.meta.index);
  expect(log.initialState().conf).toEqual(snapshot.meta.conf);
  const origin = model.snapshots.find(
    (s) =>
      s.snapshot.meta.index === snapshot.meta.index &&
      s.snapshot.meta.term === snapshot.meta.term &&
      sameBytes(s.snapshot.data, snapshot.data),
  );
  expect(origin, `${context}: the snapshot ${snapshot.meta.index}/${snapshot.meta.term} was never written`).toBeDefined();
  if (origin === undefined) return -1;
  expect(snapshot.meta.conf).toEqual(origin.snapshot.meta.conf);
  if (!flipped) {
    expect(snapshot.meta.index, `${context}: an acknowledged snapshot was lost`).toBeGreaterThanOrEqual(model.ackedSnapshotIndex);
  }
  const hardState = log.initialState().hardState;
  const served = log.entries(first, last + 1, Infinity);
  /** The served log is this state's log, or (after bit flips) a prefix of it. */
  const sameLog = (state: ModelState, prefix = false): boolean =>
    (prefix ? lastIndexOf(state) >= last : lastIndexOf(state) === last) &&
    termOf(state, first - 1) === log.term(first - 1) &&
    served.every((e) => {
      const want = state.entries[e.index - state.baseIndex - 1];
      return want !== undefined && want.term === e.term && want.type === e.type && sameBytes(want.data, e.data);
    });
  const lowest = Math.max(model.ackedCall, origin.call - 1);
  for (let k = model.states.length - 1; k >= lowest; k--) {
    const state = model.states[k];
    if (state !== undefined && sameLog(state) && sameHardState(state.hardState, hardState)) return k;
  }
  if (flipped) {
    // Damage to the last write of the last segment looks exactly like a torn write, so recovery may drop
    // acknowledged data with it (loudly), while a snapshot written after it survives on its own. What must
    // hold: the snapshot and the hard state served were written, and the log is a prefix of one written.
    let k = model.states.length - 1;
    while (k >= 0 && !sameLog(model.states[k] as ModelState, true)) k--;
    expect(k, `${context}: after bit flips the log served is not a prefix of any log written`).toBeGreaterThanOrEqual(0);
    expect(
      model.states.some((state) => sameHardState(state.hardState, hardState)),
      `${context}: after bit flips the hard state served was never written`,
    ).toBe(true);
    expect(
      run.lines.some((l) => l.level === "warn"),
      `${context}: acknowledged data dropped without a warning`,
    ).toBe(true);
    return k;
  }
  throw new Error(
    `${context}: the recovered log (first ${first}, last ${last}, hard state ${JSON.stringify(hardState)}) matches no ` +
      `state after calls ${lowest}..${model.states.length - 1} (acknowledged through ${model.ackedCall})`,
  );
}

async function reopen(fs: SimFileSystem, run: Run): Promise<DurableLog> {
  const { logger, lines } = memoryLogger();
  run.lines = lines;
  return openStorage({ ...storageOptions(run.seed), fs, logger });
}

function storageOptions(seed: number) {
  return {
    dir,
    segmentBytes: [1024, 2048, 4096, 16384][seed % 4] ?? 4096,
    snapshotsKept: 1 + (seed % 3),
    initialConf: bootstrapConf,
  };
}

const faultKinds: readonly FsOp[] = ["write", "datasync", "sync", "open", "rename", "syncDir", "unlink"];

/** What the scenarios exercised, so that a change that makes them vacuous fails. */
interface Coverage {
  crashes: number;
  corruptRefusals: number;
  tornTails: number;
  historiesDropped: number;
  diskFailures: number;
  unacknowledgedLost: number;
  overwrites: number;
}

async function scenario(seed: number, coverage: Coverage): Promise<void> {
  const prng = createPrng(seed);
  let fs = new SimFileSystem();
  const { logger, lines } = memoryLogger();
  const first = await openStorage({ ...storageOptions(seed), fs, logger });
  const run: Run = {
    prng,
    seed,
    log: first,
    model: new Model({ hardState: { term: 0, vote: 0, commit: 0 }, baseIndex: 0, baseTerm: 0, entries: [] }, first.snapshot()),
    lines,
    rejections: [],
    coverage,
  };
  for (let round = 0; round < roundsPerSeed; round++) {
    const context = `seed ${seed} round ${round}`;
    const faulty = prng.chance(0.25);
    if (faulty) {
      const kinds = faultKinds.filter(() => prng.chance(0.4));
      fs.failAfter(prng.int(0, 120), prng.chance(0.5) ? "ENOSPC" : "EIO", kinds.length > 0 ? kinds : ["datasync"]);
    } else {
      // Half the crashes land while the disk is syncing, when unsynced writes are most likely torn.
      fs.freezeAfter(prng.int(1, 80), prng.chance(0.5) ? ["datasync", "sync", "syncDir"] : undefined);
    }
    await Promise.race([workload(run, prng.int(5, 60)), fs.frozen]);
    // Crash now, with whatever is still in flight; then let the acknowledgements already earned be
    // recorded (the old disk is frozen, so nothing more can become durable).
    const lastRound = round === roundsPerSeed - 1;
    const flip = lastRound && prng.chance(0.3);
    const options: CrashOptions = {
      loseAllUnsynced: prng.chance(0.2),
      reorderSectors: prng.chance(0.3),
      reorderNames: prng.chance(0.3),
      flipBits: flip ? prng.int(1, 3) : 0,
    };
    fs = fs.crash(prng, options);
    coverage.crashes++;
    await settle();
    for (const error of run.rejections.splice(0)) {
      if (!(error instanceof StorageFailedError) && !(faulty && hasCode(error))) throw error;
    }
    if (run.log.failure !== undefined) {
      coverage.diskFailures++;
      expect(faulty, `${context}: storage failed without a disk fault`).toBe(true);
      await expect(run.log.save(undefined, [])).rejects.toBeInstanceOf(StorageFailedError);
    }
    let log: DurableLog;
    try {
      log = await reopen(fs, run);
    } catch (error) {
      if (flip && error instanceof CorruptLogError) {
        coverage.corruptRefusals++;
        break;
      }
      throw new Error(`${context}: reopening failed: ${String(error)}; flipped ${JSON.stringify(fs.flipped)}`, { cause: error });
    }
    const issued = run.model.states.length - 1;
    const k = verify(run, log, flip, context);
    if (k < issued) coverage.unacknowledgedLost++;
    if (run.lines.some((l) => l.msg.startsWith("repairing the torn tail"))) coverage.tornTails++;
    if (run.lines.some((l) => l.msg.startsWith("dropping log entries"))) coverage.historiesDropped++;
    const hardState = log.initialState().hardState;
    run.log = log;
    run.model = new Model(
      {
        hardState,
        baseIndex: log.snapshot().meta.index,
        baseTerm: log.term(log.firstIndex() - 1),
        entries: log.entries(log.firstIndex(), log.lastIndex() + 1, Infinity),
      },
      log.snapshot(),
    );
    // The recovered log takes new appends.
    const next = makeEntry(log.lastIndex() + 1, Math.max(hardState.term, log.term(log.lastIndex()), 1), 32, seed);
    await log.save(undefined, [next]);
    run.model.push({ ...run.model.latest, entries: [...run.model.latest.entries, next] });
    run.model.ack(1);
  }
}

function hasCode(error: unknown): boolean {
  const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
  return typeof cause === "object" && cause !== null && "code" in cause;
}

describe("storage under seeded faults", () => {
  it(
    `recovers every acknowledged write in ${onlySeed === undefined ? seedCount : 1} seeded scenarios`,
    async () => {
      const seeds = onlySeed === undefined ? Array.from({ length: seedCount }, (_, i) => i + 1) : [onlySeed];
      const coverage: Coverage = {
        crashes: 0,
        corruptRefusals: 0,
        tornTails: 0,
        historiesDropped: 0,
        diskFailures: 0,
        unacknowledgedLost: 0,
        overwrites: 0,
      };
      for (const seed of seeds) {
        try {
          await scenario(seed, coverage);
        } catch (error) {
          throw new Error(`seed ${seed} failed (replay: STORAGE_FAULT_SEED=${seed} npx vitest run test/storage/fault-scenarios.test.ts)`, {
            cause: error,
          });
        }
      }
      console.log(`storage fault scenarios: ${JSON.stringify(coverage)}`);
      expect(coverage.crashes).toBeGreaterThanOrEqual(seeds.length);
      if (onlySeed === undefined) {
        // Each kind of trouble must actually have happened, many times.
        for (const [what, count] of Object.entries(coverage)) expect(count, what).toBeGreaterThanOrEqual(seeds.length / 50);
      }
    },
    60_000 + seedCount * 200,
  );
});
