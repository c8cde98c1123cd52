import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import {
  flagArgs,
  flagParams,
  formatFailure,
  formatSummary,
  nodesForSeed,
  runSeeds,
  zeroCounts,
  type SimFlags,
  type Summary,
} from "./run-seeds.js";
import { driverNodesForSeed, runDriverSimulation } from "./driver-sim/driver-simulation.js";
import { formatDriverFailure, formatDriverSummary, runDriverSeeds } from "./driver-sim/run-driver-seeds.js";
import { runSimulation } from "./simulation.js";

/**
 * `npm run sim -- --seeds N [--seed S] [--nodes 3|5|7] [--steps K] [--jobs J] [--trace L]
 *  [--disk-loss] [--membership] [--unsafe-no-bootstrap-check] [--unsafe-no-incarnation-check] [--unsafe-no-probe-learning]`
 *
 * Runs seeds S..S+N-1 (S defaults to 1; `--seed S` alone runs just S) and prints one summary line. On a
 * failure it also prints each failing seed with its violations and the exact command that replays it,
 * and exits 1. `--jobs J` splits the seeds over J child processes (same results, sooner). `--trace L`
 * (single seed) first prints the last L lines of the run's event trace. `--disk-loss` makes nearly every
 * seed lose one node's disk; `--membership` runs the membership nemesis in every seed (it changes the
 * membership in about half of them otherwise); the `--unsafe-...` switches turn off issue 9's guards (or the learning of
 * incarnations by Probe), to see the checkers catch what they guard against (run-seeds.ts, SimFlags).
 *
 * `npm run sim -- --driver --seeds N [--seed S] [--nodes 3|5] [--trace L]` runs the real Driver and
 * KvStore in virtual time instead (driver-sim/, README "The real driver in virtual time"); the other
 * switches belong to the model simulator and are refused with it.
 */
const USAGE =
  "usage: npm run sim -- --seeds N [--seed S] [--nodes 3|5|7] [--steps K] [--jobs J] [--trace LINES] " +
  "[--disk-loss] [--membership] [--unsafe-no-bootstrap-check] [--unsafe-no-incarnation-check] [--unsafe-no-probe-learning]\n" +
  "       npm run sim -- --driver --seeds N [--seed S] [--nodes 3|5] [--trace LINES]";
const STEPS_DEFAULT = 3000;
const FAILURES_SHOWN_MAX = 10;
const PROGRESS_MIN_SEEDS = 1000;
const PROGRESS_EVERY_SEEDS = 250;
const JOBS_MAX = 64;
/** A seed of the real driver costs a few hundred times one of the model: progress comes sooner. */
const DRIVER_PROGRESS_MIN_SEEDS = 100;
const DRIVER_PROGRESS_EVERY_SEEDS = 25;

interface Args {
  readonly seeds: number;
  readonly firstSeed: number;
  readonly steps: number;
  readonly nodes: number | undefined;
  readonly jobs: number;
  readonly traceLines: number;
  readonly flags: SimFlags;
  /** Child mode: print one JSON line (counts and formatted failures) for the parent to merge. */
  readonly json: boolean;
  /** Run the real Driver in virtual time (driver-sim/) instead of the model of it. */
  readonly driver: boolean;
}

/** What a child process reports; the parent adds these up. */
interface ChildReport {
  readonly counts: Omit<Summary, "failures">;
  readonly failures: readonly string[];
}

function usageError(message: string): never {
  process.stderr.write(`sim: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function integer(name: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  if (!/^-?\d+$/.test(text)) usageError(`--${name} must be an integer, got "${text}"`);
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) usageError(`--${name} must be an integer >= ${min}, got ${text}`);
  return value;
}

function parse(): Args {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        "seeds": { type: "string" },
        "seed": { type: "string" },
        "nodes": { type: "string" },
        "steps": { type: "string" },
        "jobs": { type: "string" },
        "trace": { type: "string" },
        "json": { type: "boolean" },
        "driver": { type: "boolean" },
        "disk-loss": { type: "boolean" },
        "membership": { type: "boolean" },
        "unsafe-no-bootstrap-check": { type: "boolean" },
        "unsafe-no-incarnation-check": { type: "boolean" },
        "unsafe-no-probe-learning": { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    usageError(error instanceof Error ? error.message : String(error));
  }
  const text = (name: string): string | undefined => {
    const value = values[name];
    return typeof value === "string" ? value : undefined;
  };
  const seeds = integer("seeds", text("seeds"), 1, 1);
  const nodes = text("nodes") === undefined ? undefined : integer("nodes", text("nodes"), 3, 1);
  if (nodes !== undefined && ![3, 5, 7].includes(nodes)) usageError(`--nodes must be 3, 5 or 7, got ${nodes}`);
  const jobs = integer("jobs", text("jobs"), 1, 1);
  if (jobs > JOBS_MAX) usageError(`--jobs must be at most ${JOBS_MAX}`);
  const traceLines = integer("trace", text("trace"), 0, 1);
  const driver = values.driver === true;
  if (driver) {
    const modelOnly = [
      "steps",
      "jobs",
      "json",
      "disk-loss",
      "membership",
      "unsafe-no-bootstrap-check",
      "unsafe-no-incarnation-check",
      "unsafe-no-probe-learning",
    ];
    const given = modelOnly.filter((name) => values[name] !== undefined);
    if (given.length > 0) usageError(`--driver does not take --${given.join(", --")}`);
    if (nodes !== undefined && nodes !== 3 && nodes !== 5) usageError(`--driver runs 3 or 5 nodes, got ${nodes}`);
  }
  if (traceLines > 0 && seeds !== 1) usageError("--trace needs a single seed (--seed S without --seeds)");
  return {
    seeds,
    firstSeed: integer("seed", text("seed"), 1, 0),
    steps: integer("steps", text("steps"), STEPS_DEFAULT, 0),
    nodes,
    jobs,
    traceLines,
    flags: {
      diskLoss: values["disk-loss"] === true,
      membership: values.membership === true,
      unsafeNoBootstrapCheck: values["unsafe-no-bootstrap-check"] === true,
      unsafeNoIncarnationCheck: values["unsafe-no-incarnation-check"] === true,
      unsafeNoProbeLearning: values["unsafe-no-probe-learning"] === true,
    },
    json: values.json === true,
    driver,
  };
}

function runHere(args: Args): ChildReport {
  // Long runs report progress on stderr, so stdout keeps its one summary line.
  let done = 0;
  const summary = runSeeds(
    { firstSeed: args.firstSeed, seeds: args.seeds, nodes: args.nodes, steps: args.steps, flags: args.flags },
    (result) => {
      done++;
      if (args.seeds >= PROGRESS_MIN_SEEDS && done % PROGRESS_EVERY_SEEDS === 0) {
        process.stderr.write(
          `sim: ${done}/${args.seeds} seeds from ${args.firstSeed}, last ${result.seed}${result.violations.length > 0 ? " FAILED" : ""}\n`,
        );
      }
    },
  );
  const { failures, ...counts } = summary;
  return { counts, failures: failures.map((result) => formatFailure(result, args.steps, args.flags)) };
}

/** Runs contiguous slices of the seed range in child processes of this same script. */
async function runInChildren(args: Args): Promise<ChildReport> {
  const jobs = Math.min(args.jobs, args.seeds);
  const slices: { first: number; count: number }[] = [];
  for (let j = 0, first = args.firstSeed; j < jobs; j++) {
    const count = Math.floor(args.seeds / jobs) + (j < args.seeds % jobs ? 1 : 0);
    slices.push({ first, count });
    first += count;
  }
  const script = process.argv[1];
  if (script === undefined) throw new Error("sim: cannot find the path of this script to start child processes");
  const reports = await Promise.all(
    slices.map(
      (slice) =>
        new Promise<ChildReport>((resolve, reject) => {
          const childArgs = [
            "--seed",
            String(slice.first),
            "--seeds",
            String(slice.count),
            "--steps",
            String(args.steps),
            "--json",
            ...flagArgs(args.flags),
          ];
          if (args.nodes !== undefined) childArgs.push("--nodes", String(args.nodes));
          const child = spawn(process.execPath, [...process.execArgv, script, ...childArgs], { stdio: ["ignore", "pipe", "inherit"] });
          let out = "";
          child.stdout.setEncoding("utf8");
          child.stdout.on("data", (chunk: string) => (out += chunk));
          child.on("error", reject);
          child.on("close", (code) => {
            const line = out.trim().split("\n").pop() ?? "";
            try {
              resolve(JSON.parse(line) as ChildReport);
            } catch {
              reject(
                new Error(`sim: child for seeds ${slice.first}..${slice.first + slice.count - 1} exited with ${code} without a report`),
              );
            }
          });
        }),
    ),
  );
  const counts = zeroCounts();
  for (const report of reports) for (const key of Object.keys(counts) as (keyof typeof counts)[]) counts[key] += report.counts[key];
  return { counts, failures: reports.flatMap((r) => r.failures) };
}

/** "committedLost=3 doubleVote=1": the kind of each failing seed's first violation (formatFailure's second line). */
function tallyFirstKinds(failures: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const failure of failures) {
    const kind = /^ {2}step \d+ (\w+):/m.exec(failure)?.[1] ?? "?";
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([kind, n]) => `${kind}=${n}`)
    .join(" ");
}

/** `--driver`: seeds of the real Driver in virtual time, one after another in this process. */
async function runDriverMode(args: Args): Promise<void> {
  if (args.traceLines > 0) {
    const result = await runDriverSimulation({ seed: args.firstSeed, nodes: driverNodesForSeed(args.firstSeed, args.nodes), trace: true });
    for (const line of result.trace.slice(-args.traceLines)) process.stdout.write(`${line}\n`);
  }
  let done = 0;
  const summary = await runDriverSeeds({ firstSeed: args.firstSeed, seeds: args.seeds, nodes: args.nodes }, (result) => {
    done++;
    if (args.seeds >= DRIVER_PROGRESS_MIN_SEEDS && done % DRIVER_PROGRESS_EVERY_SEEDS === 0) {
      process.stderr.write(
        `sim: ${done}/${args.seeds} driver seeds from ${args.firstSeed}, last ${result.seed}${result.violations.length > 0 ? " FAILED" : ""}\n`,
      );
    }
  });
  process.stdout.write(`${formatDriverSummary(summary)}\n`);
  if (summary.failures.length === 0) return;
  process.stdout.write(`failing seeds: ${summary.failures.length} of ${summary.seeds}\n`);
  for (const failure of summary.failures.slice(0, FAILURES_SHOWN_MAX)) process.stdout.write(`${formatDriverFailure(failure)}\n`);
  if (summary.failures.length > FAILURES_SHOWN_MAX)
    process.stdout.write(`... and ${summary.failures.length - FAILURES_SHOWN_MAX} more failing seeds\n`);
  process.exitCode = 1;
}

async function main(): Promise<void> {
  const args = parse();
  if (args.driver) {
    await runDriverMode(args);
    return;
  }
  if (args.traceLines > 0) {
    const result = runSimulation({
      seed: args.firstSeed,
      nodes: nodesForSeed(args.firstSeed, args.nodes),
      steps: args.steps,
      trace: true,
      params: flagParams(args.flags),
    });
    for (const line of result.trace.slice(-args.traceLines)) process.stdout.write(`${line}\n`);
  }
  const report = args.jobs > 1 ? await runInChildren(args) : runHere(args);
  if (args.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  process.stdout.write(`${formatSummary({ ...report.counts, failures: [] })}\n`);
  if (report.failures.length === 0) return;
  process.stdout.write(
    `failing seeds: ${report.failures.length} of ${report.counts.seeds} (by first violation: ${tallyFirstKinds(report.failures)})\n`,
  );
  for (const failure of report.failures.slice(0, FAILURES_SHOWN_MAX)) process.stdout.write(`${failure}\n`);
  if (report.failures.length > FAILURES_SHOWN_MAX) {
    process.stdout.write(`... and ${report.failures.length - FAILURES_SHOWN_MAX} more failing seeds\n`);
  }
  process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`sim: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 2;
});
