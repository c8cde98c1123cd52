import { parseArgs } from "node:util";
import { nemesisKinds, parseNemesisKinds, type NemesisKind } from "./nemesis-plan.js";
import { defaultWorkload } from "./workload.js";

/**
 * Options of a chaos run and of `npm run chaos -- [options]`, with the one function that turns them
 * back into the command that reruns a seed.
 */
export interface RunOptions {
  readonly seed: number;
  readonly nodes: 3 | 5;
  /** Length of the faulty workload period. */
  readonly timeMs: number;
  readonly nemesis: readonly NemesisKind[];
  readonly workers: number;
  readonly keys: number;
  readonly opsPerKeyMax: number;
  /** Where run folders go (results/chaos). */
  readonly resultsDir: string;
  /** Keep the nodes' data directories of a passing run (failing runs always keep them). */
  readonly keepData: boolean;
  /** After the last fault heals: the most time until a leader and a successful write. */
  readonly recoveryMsMax: number;
  /** The most time for a new cluster to elect its first leader. */
  readonly startTimeoutMs: number;
  /** Overrides the command that runs `raftkv serve` (words separated by spaces). */
  readonly serveCommand: readonly string[] | undefined;
  /** Extra flags for every node, e.g. ["--tick-ms", "50"]. */
  readonly serveArgs: readonly string[];
  readonly logLevel: string;
}

export const runDefaults = {
  nodes: 3,
  timeMs: 20_000,
  nemesis: nemesisKinds,
  workers: defaultWorkload.workers,
  keys: defaultWorkload.keys,
  opsPerKeyMax: defaultWorkload.opsPerKeyMax,
  resultsDir: "results/chaos",
  recoveryMsMax: 20_000,
  startTimeoutMs: 60_000,
  logLevel: "warn",
} as const;

/** Most runs one invocation may ask for; a night of runs, not an endless loop. */
export const runsMax = 10_000;
/** Longest run; longer histories outgrow the linearizability search anyway. */
export const timeSecondsMax = 3_600;

export interface CliOptions {
  readonly runs: number;
  readonly run: RunOptions;
}

export const usage = [
  "usage: npm run chaos -- [--runs N] [--seed S] [--time SECONDS] [--nodes 3|5] [--nemesis LIST]",
  "                        [--workers N] [--keys N] [--ops-per-key N] [--results DIR] [--keep-data]",
  '                        [--recovery-seconds N] [--serve-command=CMD] [--serve-args="ARGS"] [--log-level LEVEL]',
  `  --nemesis: comma-separated ${nemesisKinds.join(", ")}, or all (default), or none`,
  "  runs use seeds S, S+1, ... (S defaults to 1); each prints a one-line verdict with its rerun command",
].join("\n");

export class UsageError extends Error {
  override readonly name = "UsageError";
}

function integer(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name} must be a whole number, got ${JSON.stringify(text)}`);
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new UsageError(`--${name} must be between ${min} and ${max}, got ${text}`);
  return value;
}

export function parseCli(args: readonly string[]): CliOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        "runs": { type: "string" },
        "seed": { type: "string" },
        "time": { type: "string" },
        "nodes": { type: "string" },
        "nemesis": { type: "string" },
        "workers": { type: "string" },
        "keys": { type: "string" },
        "ops-per-key": { type: "string" },
        "results": { type: "string" },
        "keep-data": { type: "boolean" },
        "recovery-seconds": { type: "string" },
        "serve-command": { type: "string" },
        "serve-args": { type: "string" },
        "log-level": { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const text = (name: string): string | undefined => {
    const value = values[name];
    return typeof value === "string" ? value : undefined;
  };
  const nodes = integer("nodes", text("nodes"), runDefaults.nodes, 3, 5);
  if (nodes !== 3 && nodes !== 5) throw new UsageError(`--nodes must be 3 or 5, got ${nodes}`);
  let nemesis: readonly NemesisKind[] = runDefaults.nemesis;
  const nemesisText = text("nemesis");
  if (nemesisText !== undefined) {
    const parsed = parseNemesisKinds(nemesisText);
    if ("error" in parsed) throw new UsageError(`--nemesis: ${parsed.error}`);
    nemesis = parsed;
  }
  const words = (name: string): string[] | undefined =>
    text(name)
      ?.split(/\s+/)
      .filter((w) => w !== "");
  const serveCommand = words("serve-command");
  if (serveCommand !== undefined && serveCommand.length === 0) throw new UsageError("--serve-command is empty");
  const logLevel = text("log-level") ?? runDefaults.logLevel;
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel))
    throw new UsageError(`--log-level: unknown level ${JSON.stringify(logLevel)}`);
  return {
    runs: integer("runs", text("runs"), 1, 1, runsMax),
    run: {
      seed: integer("seed", text("seed"), 1, 0, 0x7fffffff),
      nodes,
      timeMs: 1000 * integer("time", text("time"), runDefaults.timeMs / 1000, 1, timeSecondsMax),
      nemesis,
      workers: integer("workers", text("workers"), runDefaults.workers, 1, 256),
      keys: integer("keys", text("keys"), runDefaults.keys, 1, 1000),
      opsPerKeyMax: integer("ops-per-key", text("ops-per-key"), runDefaults.opsPerKeyMax, 1, 100_000),
      resultsDir: text("results") ?? runDefaults.resultsDir,
      keepData: values["keep-data"] === true,
      recoveryMsMax: 1000 * integer("recovery-seconds", text("recovery-seconds"), runDefaults.recoveryMsMax / 1000, 1, 600),
      startTimeoutMs: runDefaults.startTimeoutMs,
      serveCommand,
      serveArgs: words("serve-args") ?? [],
      logLevel,
    },
  };
}

/** The command that reruns one seed with the same settings (defaults left out). */
export function rerunCommand(o: RunOptions): string {
  const parts = ["npm run chaos --", `--seed ${o.seed}`, `--time ${Math.round(o.timeMs / 1000)}`, `--nodes ${o.nodes}`];
  const nemesis =
    o.nemesis.length === nemesisKinds.length && nemesisKinds.every((k) => o.nemesis.includes(k))
      ? "all"
      : o.nemesis.length === 0
        ? "none"
        : o.nemesis.join(",");
  parts.push(`--nemesis ${nemesis}`);
  if (o.workers !== runDefaults.workers) parts.push(`--workers ${o.workers}`);
  if (o.keys !== runDefaults.keys) parts.push(`--keys ${o.keys}`);
  if (o.opsPerKeyMax !== runDefaults.opsPerKeyMax) parts.push(`--ops-per-key ${o.opsPerKeyMax}`);
  if (o.recoveryMsMax !== runDefaults.recoveryMsMax) parts.push(`--recovery-seconds ${Math.round(o.recoveryMsMax / 1000)}`);
  // The = form: these values start with dashes, which the argument parser would take for options.
  if (o.serveCommand !== undefined) parts.push(`--serve-command=${JSON.stringify(o.serveCommand.join(" "))}`);
  if (o.serveArgs.length > 0) parts.push(`--serve-args=${JSON.stringify(o.serveArgs.join(" "))}`);
  return parts.join(" ");
}
