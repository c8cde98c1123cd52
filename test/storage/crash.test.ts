import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { HardState } from "../../src/core/types.js";
import { createPrng } from "../../src/lib/prng.js";
import { openStorage } from "../../src/storage/index.js";
import { entryData, memoryLogger, sameBytes } from "./helpers.js";

/**
 * Real crash test: a child process (crash-writer.ts) appends through node:fs and reports every call it
 * makes and every call that resolved; we SIGKILL it at a random moment, reopen the directory, and require
 * the state after some prefix of its calls that includes every acknowledged one, byte for byte; then the
 * next child continues from there. Two lanes (directories) run side by side. STORAGE_CRASH_KILLS sets
 * the total number of kills (default 50).
 */
const kills = Number(process.env.STORAGE_CRASH_KILLS ?? 50);
const lanes = 2;
const writer = fileURLToPath(new URL("./crash-writer.ts", import.meta.url));

type Intent =
  | { n: number; kind: "save"; from: number; count: number; term: number; bytes: number; hs: HardState | null }
  | { n: number; kind: "snapshot"; index: number };

interface ModelEntry {
  readonly term: number;
  readonly bytes: number;
  readonly salt: number;
}

interface ChildRun {
  readonly intents: Intent[];
  readonly done: Set<number>;
}

/** Runs the child until it has acknowledged some calls, then SIGKILLs it after `delayMs`. */
function runChild(dir: string, seed: number, delayMs: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", writer, dir, String(seed)], { stdio: ["ignore", "pipe", "pipe"] });
    const intents: Intent[] = [];
    const done = new Set<number>();
    let buffered = "";
    let stderr = "";
    let killTimer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        if (line.startsWith("I ")) intents.push(JSON.parse(line.slice(2)) as Intent);
        else if (line.startsWith("D ")) done.add(Number(line.slice(2)));
        if (killTimer === undefined && done.size > 0) killTimer = setTimeout(() => child.kill("SIGKILL"), delayMs);
      }
    });
    child.stderr.on("data", (chunk: Buffer) => void (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(killTimer);
      if (signal !== "SIGKILL") reject(new Error(`crash writer exited with ${code ?? signal}: ${stderr}`));
      else resolve({ intents, done });
    });
  });
}

interface LaneResult {
  readonly acknowledged: number;
  readonly killedInFlight: number;
}

/**
 * One lane: a data directory, a model of what was written to it, and `kills` children in turn, each
 * SIGKILLed at a random moment and checked after.
 */
async function lane(laneId: number, kills: number): Promise<LaneResult> {
  const dir = await mkdtemp(join(tmpdir(), `raftkv-crash-${laneId}-`));
  const prng = createPrng(20240611 + laneId);
  // The model: entry i's term, size and salt, for every index the log has had since its snapshot.
  let log: (ModelEntry | undefined)[] = [];
  let hardState: HardState = { term: 0, vote: 0, commit: 0 };
  let snapshotAcked = 0;
  let killedInFlight = 0;
  let acknowledged = 0;
  try {
    for (let kill = 0; kill < kills; kill++) {
      const run = await runChild(dir, laneId * 1000 + kill + 1, prng.int(0, 60));
      acknowledged += run.done.size;
      if (run.intents.some((i) => !run.done.has(i.n))) killedInFlight++;
      // The position (1-based) of the last call that resolved: every call up to it is durable.
      const lastDone = Math.max(0, ...run.intents.map((intent, k) => (run.done.has(intent.n) ? k + 1 : 0)));
      const { logger } = memoryLogger();
      const opened = await openStorage({ dir, segmentBytes: 64 * 1024, logger });
      const got = {
        first: opened.firstIndex(),
        last: opened.lastIndex(),
        hardState: opened.initialState().hardState,
        entries: opened.entries(opened.firstIndex(), opened.lastIndex() + 1, Infinity),
        snapshot: opened.snapshot(),
      };
      await opened.close();

      // Replay the intents on the model; the recovered state must be one of the states after call k,
      // for k at or after the last acknowledged call.
      const context = `lane ${laneId} kill ${kill}`;
      let matched = false;
      let modelLast = log.length - 1;
      const matches = (): boolean => {
        if (modelLast !== got.last || hardState.term !== got.hardState.term || hardState.vote !== got.hardState.vote) return false;
        if (hardState.commit !== got.hardState.commit) return false;
        return got.entries.every((e) => {
          const want = log[e.index];
          return want !== undefined && want.term === e.term && sameBytes(e.data, entryData(e.index, want.term, want.bytes, want.salt));
        });
      };
      for (let k = 0; k <= run.intents.length && !matched; k++) {
        if (k > 0) {
          const intent = run.intents[k - 1];
          if (intent?.kind === "save") {
            log.length = intent.from;
            for (let i = 0; i < intent.count; i++) log.push({ term: intent.term, bytes: intent.bytes, salt: intent.n });
            modelLast = log.length - 1;
            if (intent.hs !== null) hardState = intent.hs;
          } else if (intent?.kind === "snapshot" && run.done.has(intent.n)) {
            snapshotAcked = Math.max(snapshotAcked, intent.index);
          }
        }
        if (k >= lastDone) matched = matches();
      }
      expect(
        matched,
        `${context}: recovered last ${got.last} hs ${JSON.stringify(got.hardState)} matches no state at or after call ${lastDone}`,
      ).toBe(true);
      expect(got.first - 1, context).toBe(got.snapshot.meta.index);
      expect(got.snapshot.meta.index, `${context}: an acknowledged snapshot was lost`).toBeGreaterThanOrEqual(snapshotAcked);
      if (got.snapshot.meta.index > 0) {
        expect(got.snapshot.meta.term).toBe(log[got.snapshot.meta.index]?.term);
        expect(sameBytes(got.snapshot.data, entryData(got.snapshot.meta.index, 0, 64, 99))).toBe(true);
      }
      // The next child starts from exactly the recovered state.
      log = log.slice(0, got.last + 1);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { acknowledged, killedInFlight };
}

describe("storage under kill -9", () => {
  it(`keeps every acknowledged save across ${kills} SIGKILLs of a real writer`, async () => {
    // Independent lanes side by side: a child spends most of its life starting up (tsx), not writing.
    const perLane = Math.ceil(kills / lanes);
    const results = await Promise.all(Array.from({ length: lanes }, (_, id) => lane(id, perLane)));
    const acknowledged = results.reduce((sum, r) => sum + r.acknowledged, 0);
    const killedInFlight = results.reduce((sum, r) => sum + r.killedInFlight, 0);
    expect(acknowledged).toBeGreaterThan(kills);
    // Most kills must land with calls still in flight, or the test proves little.
    expect(killedInFlight).toBeGreaterThan(kills / 2);
  }, 180_000);
});
