import { assert } from "../../src/lib/assert.js";
import { drawNodeCount, type SimParams } from "./params.js";
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
  readonly flags?: SimFlags;
}

/** The CLI's switches that change runs (test-only), carried into every replay command. */
export interface SimFlags {
  /** `--disk-loss`: nearly every seed loses a disk (instead of about a third of them). */
  readonly diskLoss?: boolean;
  /** `--unsafe-no-bootstrap-check`: a node that lost its disk restarts empty at once. */
  readonly unsafeNoBootstrapCheck?: boolean;
  /** `--unsafe-no-incarnation-check`: peers accept a member whose incarnation changed. */
  readonly unsafeNoIncarnationCheck?: boolean;
  /** `--unsafe-no-probe-learning`: members learn incarnations from messages only, not by Probe. */
  readonly unsafeNoProbeLearning?: boolean;
  /** `--membership`: the membership nemesis in every seed (instead of about half of them), at a high rate. */
  readonly membership?: boolean;
}

/** With `--disk-loss`: a disk loss strikes within 2000 chaos steps in 98% of the seeds. */
export const FORCED_DISK_LOSS_RATE = 0.002;
/** With `--membership`: about 8 changes asked for in 2000 chaos steps (about 4 accepted). */
export const FORCED_MEMBERSHIP_RATE = 0.004;

export function flagParams(flags: SimFlags | undefined): Partial<SimParams> {
  return {
    ...(flags?.diskLoss === true ? { diskLossRate: FORCED_DISK_LOSS_RATE } : {}),
    ...(flags?.unsafeNoBootstrapCheck === true ? { unsafeNoBootstrapCheck: true } : {}),
    ...(flags?.unsafeNoIncarnationCheck === true ? { unsafeNoIncarnationCheck: true } : {}),
    ...(flags?.unsafeNoProbeLearning === true ? { unsafeNoProbeLearning: true } : {}),
    ...(flags?.membership === true ? { membershipRate: FORCED_MEMBERSHIP_RATE } : {}),
  };
}

export function flagArgs(flags: SimFlags | undefined): string[] {
  const args: string[] = [];
  if (flags?.diskLoss === true) args.push("--disk-loss");
  if (flags?.unsafeNoBootstrapCheck === true) args.push("--unsafe-no-bootstrap-check");
  if (flags?.unsafeNoIncarnationCheck === true) args.push("--unsafe-no-incarnation-check");
  if (flags?.unsafeNoProbeLearning === true) args.push("--unsafe-no-probe-learning");
  if (flags?.membership === true) args.push("--membership");
  return args;
}

export interface Summary {
  seeds: number;
  elections: number;
  commits: number;
  faults: number;
  crashes: number;
  /** Seeds in which a node lost its disk; of these, how many times it refused to start (verdict "exists"). */
  diskLosses: number;
  refusedStarts: number;
  /** Messages dropped by the incarnation check (never, while the bootstrap check works). */
  incarnationRefusals: number;
  /** Seeds with the membership nemesis on; membership changes accepted by a leader, and committed. */
  membershipSeeds: number;
  confProposed: number;
  confCommitted: number;
  operations: number;
  okOperations: number;
  violations: number;
  /** The failing runs (each with at least one violation), in seed order. */
  readonly failures: SimResult[];
}

export function nodesForSeed(seed: number, nodes: number | undefined): number {
  return nodes ?? drawNodeCount(seed);
}

export function replayCommand(result: Pick<SimResult, "seed" | "nodes">, steps: number, flags?: SimFlags): string {
  return [`npm run sim -- --seed ${result.seed} --nodes ${result.nodes} --steps ${steps}`, ...flagArgs(flags)].join(" ");
}

/** Every counter of a Summary at zero (the start of a run, or of a sum over child processes). */
export function zeroCounts(): Omit<Summary, "failures"> {
  return {
    seeds: 0,
    elections: 0,
    commits: 0,
    faults: 0,
    crashes: 0,
    diskLosses: 0,
    refusedStarts: 0,
    incarnationRefusals: 0,
    membershipSeeds: 0,
    confProposed: 0,
    confCommitted: 0,
    operations: 0,
    okOperations: 0,
    violations: 0,
  };
}

export function runSeeds(range: SeedRange, onResult?: (result: SimResult) => void): Summary {
  assert(range.seeds > 0, "sim: --seeds must be positive");
  const summary: Summary = { ...zeroCounts(), failures: [] };
  const params = flagParams(range.flags);
  for (let i = 0; i < range.seeds; i++) {
    const seed = range.firstSeed + i;
    const result = runSimulation({ seed, nodes: nodesForSeed(seed, range.nodes), steps: range.steps, params });
    summary.seeds++;
    summary.elections += result.elections;
    summary.commits += result.commits;
    summary.faults += result.faults;
    summary.crashes += result.crashes;
    if (result.diskLoss !== undefined) summary.diskLosses++;
    if (result.diskLoss?.outcome === "refused") summary.refusedStarts++;
    summary.incarnationRefusals += result.incarnationRefusals;
    if (result.membershipNemesis) summary.membershipSeeds++;
    summary.confProposed += result.membership.proposed;
    summary.confCommitted += result.membership.committed;
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
    `crashes=${summary.crashes} diskLosses=${summary.diskLosses} refusedStarts=${summary.refusedStarts} ` +
    `incarnationRefusals=${summary.incarnationRefusals} membershipSeeds=${summary.membershipSeeds} ` +
    `confProposed=${summary.confProposed} confCommitted=${summary.confCommitted} ` +
    `ops=${summary.operations} ok=${summary.okOperations} violations=${summary.violations}`
  );
}

export function formatFailure(result: SimResult, steps: number, flags?: SimFlags): string {
  const lines = [`seed ${result.seed} (${result.nodes} nodes) failed; replay: ${replayCommand(result, steps, flags)}`];
  for (const v of result.violations) lines.push(`  step ${v.step} ${v.kind}: ${v.message.split("\n").join("\n    ")}`);
  return lines.join("\n");
}
