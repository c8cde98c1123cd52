import { parseArgs } from "node:util";
import { formatFailure, formatSummary, nodesForSeed, runSeeds } from "./run-seeds.js";
import { runSimulation } from "./simulation.js";

/**
 * `npm run sim -- --seeds N [--seed S] [--nodes 3|5|7] [--steps K] [--trace L]`
 *
 * Runs seeds S..S+N-1 (S defaults to 1; `--seed S` alone runs just S) and prints one summary line. On a
 * failure it also prints each failing seed with its violations and the exact command that replays it,
 * and exits 1. `--trace L` (single seed) prints the last L lines of the run's event trace.
 */
const USAGE = "usage: npm run sim -- --seeds N [--seed S] [--nodes 3|5|7] [--steps K] [--trace LINES]";
const STEPS_DEFAULT = 3000;
const FAILURES_SHOWN_MAX = 10;
const PROGRESS_MIN_SEEDS = 1000;
const PROGRESS_EVERY_SEEDS = 250;

function fail(message: string): never {
  process.stderr.write(`sim: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function integer(name: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  if (!/^-?\d+$/.test(text)) fail(`--${name} must be an integer, got "${text}"`);
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) fail(`--${name} must be an integer >= ${min}, got ${text}`);
  return value;
}

function main(): void {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        seeds: { type: "string" },
        seed: { type: "string" },
        nodes: { type: "string" },
        steps: { type: "string" },
        trace: { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  const seeds = integer("seeds", values.seeds, 1, 1);
  const firstSeed = integer("seed", values.seed, 1, 0);
  const steps = integer("steps", values.steps, STEPS_DEFAULT, 0);
  const nodes = values.nodes === undefined ? undefined : integer("nodes", values.nodes, 3, 1);
  if (nodes !== undefined && ![3, 5, 7].includes(nodes)) fail(`--nodes must be 3, 5 or 7, got ${nodes}`);
  const traceLines = values.trace === undefined ? 0 : integer("trace", values.trace, 0, 1);
  if (traceLines > 0 && seeds !== 1) fail("--trace needs a single seed (--seed S without --seeds)");

  if (traceLines > 0) {
    const result = runSimulation({ seed: firstSeed, nodes: nodesForSeed(firstSeed, nodes), steps, trace: true });
    for (const line of result.trace.slice(-traceLines)) process.stdout.write(`${line}\n`);
  }
  // Long runs report progress on stderr, so stdout keeps its one summary line.
  let done = 0;
  const summary = runSeeds({ firstSeed, seeds, nodes, steps }, (result) => {
    done++;
    if (seeds >= PROGRESS_MIN_SEEDS && done % PROGRESS_EVERY_SEEDS === 0) {
      process.stderr.write(`sim: ${done}/${seeds} seeds, last ${result.seed}${result.violations.length > 0 ? " FAILED" : ""}\n`);
    }
  });
  process.stdout.write(`${formatSummary(summary)}\n`);
  if (summary.failures.length === 0) return;
  for (const result of summary.failures.slice(0, FAILURES_SHOWN_MAX)) process.stdout.write(`${formatFailure(result, steps)}\n`);
  if (summary.failures.length > FAILURES_SHOWN_MAX) {
    process.stdout.write(`... and ${summary.failures.length - FAILURES_SHOWN_MAX} more failing seeds\n`);
  }
  process.exitCode = 1;
}

main();
