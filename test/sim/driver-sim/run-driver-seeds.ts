import { assert } from "../../../src/lib/assert.js";
import { driverNodesForSeed, runDriverSimulation, type DriverSimResult } from "./driver-simulation.js";

/**
 * Runs a range of seeds of the driver simulator and adds up what happened, for the CLI and the CI
 * test; every failure carries the command that replays it.
 */
export interface DriverSeedRange {
  readonly firstSeed: number;
  readonly seeds: number;
  /** Fixed cluster size, or undefined to let each seed choose 3 or 5. */
  readonly nodes: number | undefined;
  readonly chaosMs?: number;
}

export interface DriverSummary {
  seeds: number;
  events: number;
  elections: number;
  commits: number;
  crashes: number;
  faults: number;
  snapshotsInstalled: number;
  operations: number;
  okOperations: number;
  unknownOperations: number;
  violations: number;
  readonly failures: DriverSimResult[];
}

export async function runDriverSeeds(range: DriverSeedRange, onResult?: (result: DriverSimResult) => void): Promise<DriverSummary> {
  assert(range.seeds > 0, "driver sim: --seeds must be positive");
  const summary: DriverSummary = {
    seeds: 0,
    events: 0,
    elections: 0,
    commits: 0,
    crashes: 0,
    faults: 0,
    snapshotsInstalled: 0,
    operations: 0,
    okOperations: 0,
    unknownOperations: 0,
    violations: 0,
    failures: [],
  };
  for (let i = 0; i < range.seeds; i++) {
    const seed = range.firstSeed + i;
    const result = await runDriverSimulation({
      seed,
      nodes: driverNodesForSeed(seed, range.nodes),
      ...(range.chaosMs === undefined ? {} : { chaosMs: range.chaosMs }),
    });
    summary.seeds++;
    summary.events += result.events;
    summary.elections += result.elections;
    summary.commits += result.commits;
    summary.crashes += result.crashes;
    summary.faults += result.faults;
    summary.snapshotsInstalled += result.snapshots.installed;
    summary.operations += result.operations.invoked;
    summary.okOperations += result.operations.ok;
    summary.unknownOperations += result.operations.unknown;
    summary.violations += result.violations.length;
    if (result.violations.length > 0) summary.failures.push(result);
    onResult?.(result);
  }
  return summary;
}

export function formatDriverSummary(s: DriverSummary): string {
  return (
    `driver seeds=${s.seeds} events=${s.events} elections=${s.elections} commits=${s.commits} crashes=${s.crashes} faults=${s.faults} ` +
    `snapshotsInstalled=${s.snapshotsInstalled} ops=${s.operations} ok=${s.okOperations} unknown=${s.unknownOperations} violations=${s.violations}`
  );
}

export function driverReplayCommand(result: Pick<DriverSimResult, "seed" | "nodes">): string {
  return `npm run sim -- --driver --seed ${result.seed} --nodes ${result.nodes}`;
}

export function formatDriverFailure(result: DriverSimResult): string {
  const lines = [`seed ${result.seed} (${result.nodes} nodes, real Drivers) failed; replay: ${driverReplayCommand(result)} --trace 200`];
  for (const v of result.violations) lines.push(`  at ${v.at.toFixed(2)} ms ${v.kind}: ${v.message.split("\n").join("\n    ")}`);
  return lines.join("\n");
}
