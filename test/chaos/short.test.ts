import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { defaultServeCommand } from "./node-process.js";
import { verdictLine } from "./report.js";
import { runDefaults, type RunOptions } from "./run-options.js";
import { runChaos, type RunResult } from "./run.js";
import type { NemesisKind } from "./nemesis-plan.js";

/**
 * The chaos suite in CI: four 12 s runs of real raftkv processes (about 2 minutes in all on the shared
 * 2-core machine), each under a different family of faults, every one judged by all the checkers.
 * `npm run chaos -- --runs 50 --time 60` is the long version, and `npm run chaos -- --runs 20 --time 20
 * --nemesis kill,partition,membership` the membership batch (docs/chaos.md). RAFTKV_CHAOS_SERVE_COMMAND
 * overrides the command that runs `raftkv serve`.
 */
const repoRoot = resolve(fileURLToPath(import.meta.url), "..", "..", "..");
const override = process.env.RAFTKV_CHAOS_SERVE_COMMAND?.split(/\s+/).filter((w) => w !== "");
const serveCommand = override !== undefined && override.length > 0 ? override : defaultServeCommand(repoRoot);
const TIME_MS = 12_000;
const RUN_TIMEOUT_MS = 120_000;

const runs: readonly { readonly seed: number; readonly nemesis: readonly NemesisKind[]; readonly what: string }[] = [
  { seed: 101, nemesis: ["kill", "pause"], what: "kill -9 and SIGSTOP of the leader and of followers" },
  { seed: 202, nemesis: ["partition"], what: "partitions (halves, isolated leader, bridge, one-way) that drop, stall or refuse" },
  // The disk loss lands on node 3 at 5.5 s, after a kill of the leader: the wiped node must refuse to
  // start (exit code 6), and the two others carry the rest of the run under latency.
  {
    seed: 303,
    nemesis: ["latency", "transfer", "kill", "disk-loss"],
    what: "latency, leadership transfers, kills and a disk loss (the wiped node must refuse to start)",
  },
  // The leader loses its disk 2 s in and refuses to start; the membership change planned at 3.2 s waits
  // for the refusal, then replaces it: removes the lost member and starts the node empty with --join, under
  // a new member id, a learner and then a voter, under latency on its links and on every link. No kill,
  // pause or partition: a member cut off during a change cannot rejoin a leader it does not know yet
  // (docs/chaos.md, "Findings"), which the batch shows and CI must not trip over until it is fixed.
  {
    seed: 404,
    nemesis: ["latency", "transfer", "disk-loss", "membership"],
    what: "a disk loss of the leader, replaced by a membership change (remove, then --join under a new id), under latency",
  },
];

function explain(result: RunResult): string {
  return [verdictLine(result), ...result.reasons, ...result.violations.map((v) => `${v.kind}: ${v.message}`)].join("\n");
}

describe.skipIf(serveCommand === undefined)("chaos (short): real processes under faults", () => {
  for (const run of runs) {
    it(`seed ${run.seed}: ${run.what}`, { timeout: RUN_TIMEOUT_MS }, async () => {
      const options: RunOptions = {
        ...runDefaults,
        seed: run.seed,
        timeMs: TIME_MS,
        nemesis: run.nemesis,
        keepData: false,
        serveCommand: override,
        serveArgs: [],
      };
      const result = await runChaos(options, repoRoot);
      expect(result.verdict, explain(result)).toBe("pass");
      // "No violation" only means something if the run did real work under real faults.
      expect(result.stats.workload.ok).toBeGreaterThan(50);
      expect(result.stats.linearizableOps).toBeGreaterThan(50);
      expect(result.stats.faultsInjected).toBeGreaterThan(0);
      expect(result.stats.recoveryMs).toBeDefined();
      // A node that lost its disk refused to start and is out of the comparison until a membership change
      // replaces it; every member is in it.
      expect(result.stats.diskLost).toHaveLength(run.nemesis.includes("disk-loss") ? 1 : 0);
      const out = result.stats.diskLost.filter((id) => !result.stats.diskLostReplaced.includes(id)).length;
      expect(result.stats.replicasCompared).toBe(result.stats.members - out);
      if (run.nemesis.includes("membership")) {
        expect(result.stats.faultsByKind.membership).toBeGreaterThanOrEqual(1);
        expect(result.stats.diskLostReplaced).toEqual(result.stats.diskLost);
      } else {
        expect(result.stats.members).toBe(3);
      }
    });
  }
});
