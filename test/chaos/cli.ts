import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { verdictLine } from "./report.js";
import { runChaos, type RunResult } from "./run.js";
import { parseCli, usage, UsageError, type CliOptions } from "./run-options.js";

/**
 * `npm run chaos -- [options]`: runs seeds S, S+1, ... one after another, prints one verdict line per
 * run (with the command that reruns it) and a summary line, and exits 1 when any run failed or could
 * not be judged. See docs/chaos.md.
 */
const repoRoot = resolve(fileURLToPath(import.meta.url), "..", "..", "..");
/** Violations printed in full on the console per failing run; the report has them all. */
const VIOLATIONS_SHOWN_MAX = 3;

function parse(): CliOptions {
  try {
    return parseCli(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`chaos: ${error.message}\n${usage}\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const cli = parse();
  // Ctrl-C: the run's exit handler kills the nodes; the reaper backs it up.
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
  const results: RunResult[] = [];
  for (let i = 0; i < cli.runs; i++) {
    const result = await runChaos({ ...cli.run, seed: cli.run.seed + i }, repoRoot);
    results.push(result);
    process.stdout.write(`${verdictLine(result)}\n`);
    for (const v of result.violations.slice(0, VIOLATIONS_SHOWN_MAX))
      process.stdout.write(`  ${v.kind}: ${v.message.split("\n").join("\n    ")}\n`);
    if (result.verdict === "error") for (const reason of result.reasons) process.stdout.write(`  ${reason.split("\n").join("\n    ")}\n`);
  }
  const count = (v: RunResult["verdict"]): number => results.filter((r) => r.verdict === v).length;
  const sum = (f: (r: RunResult) => number): number => results.reduce((total, r) => total + f(r), 0);
  process.stdout.write(
    `chaos summary: runs=${results.length} pass=${count("pass")} fail=${count("fail")} inconclusive=${count("inconclusive")} error=${count("error")} ` +
      `ops=${sum((r) => r.stats.workload.started)} ok=${sum((r) => r.stats.workload.ok)} checked=${sum((r) => r.stats.linearizableOps)} ` +
      `faults=${sum((r) => r.stats.faultsInjected)} disk-losses=${sum((r) => r.stats.diskLost.length)} ` +
      `membership-changes=${sum((r) => r.stats.faultsByKind.membership ?? 0)} violations=${sum((r) => r.violationCount)}\n`,
  );
  if (results.some((r) => r.verdict !== "pass")) process.exitCode = 1;
}

await main();
