import { assert } from "../../src/lib/assert.js";
import { drawNodeCount } from "./params.js";
import { runSimulation, type SimResult } from "./simulation.js";

/**
 * Runs a range of seeds and adds up what happened, for the CLI and for the CI test. A seed's cluster
 * size comes from the seed unless fixed, and every failure carries the one command that replays it.
 */
export interface SeedRange {
  readonly firstSeed: number;
  readonly seeds: number;
  /** Fixed cluster size, or undefined to let each seed choose 3 or 5. */
  readonly nodes: number | undefined;
  readonly steps: number;
}

export interface Summary {
  seeds: number;
  elections: number;
  commits: number;
  faults: number;
  crashes: number;
  operations: number;
  okOperations: number;
  violations: number;
  /** The failing runs (each with at least one violation), in seed order. */
  readonly failures: SimResult[];
}

export function nodesForSeed(seed: number, nodes: number | undefined): number {
  return nodes ?? drawNodeCount(seed);
}

export function replayCommand(result: Pick<SimResult, "seed" | "nodes">, steps: number): string {
  return `npm run sim -- --seed ${result.seed} --nodes ${result.nodes} --steps ${steps}`;
}

export function runSeeds(range: SeedRange, onResult?: (result: SimResult) => void): Summary {
  assert(range.seeds > 0, "sim: --seeds must be positive");
  const summary: Summary = { seeds: 0, elections: 0, commits: 0, faults: 0, crashes: 0, operations: 0, okOperations: 0, violations: 0, failures: [] };
  for (let i = 0; i < range.seeds; i++) {
    const seed = range.firstSeed + i;
    const result = runSimulation({ seed, nodes: nodesForSeed(seed, range.nodes), steps: range.steps });
    summary.seeds++;
    summary.elections += result.elections;
    summary.commits += result.commits;
    summary.faults += result.faults;
    summary.crashes += result.crashes;
    summary.operations += result.operations.invoked;
    summary.okOperations += result.operations.ok;
    summary.violations += result.violations.length;
    if (result.violations.length > 0) summary.failures.push(result);
    onResult?.(result);
  }
  return summary;
}

export function formatSummary(summary: Summary): string {
  return (
    `seeds=${summary.seeds} elections=${summary.elections} commits=${summary.commits} faults=${summary.faults} ` +
    `crashes=${summary.crashes} ops=${summary.operations} ok=${summary.okOperations} violations=${summary.violations}`
  );
}

export function formatFailure(result: SimResult, steps: number): string {
  const lines = [`seed ${result.seed} (${result.nodes} nodes) failed; replay: ${replayCommand(result, steps)}`];
  for (const v of result.violations) lines.push(`  step ${v.step} ${v.kind}: ${v.message.split("\n").join("\n    ")}`);
  return lines.join("\n");
}
