import { tmpdir } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";

/** The flags of `npm run bench:state`, parsed and checked. */

export const usage = `npm run bench:state -- [flags]

How raftkv behaves with a large state. For each size it starts a fresh 3-node cluster on loopback in a
temporary directory (removed afterwards), fills it with 1 KiB values through the Pipeline stream, then
measures: write latency with and without a snapshot running (and the longest event-loop stall during
it), restart-to-ready of a follower holding the state and a full WAL (SIGKILL, same flags), catch-up of
a follower the leader has compacted past (InstallSnapshot), peak RSS and data-directory size of every
node. Prints numbers, asserts nothing.

  --sizes LIST              states to build, comma-separated, with a unit: B, KB, MB, GB (powers of
                            1000) or KiB, MiB, GiB (default 10MB,100MB; e.g. 10MB,100MB,1GB; "none"
                            skips them, for --sustained alone)
  --value-bytes N           value size (default 1024; keys are 16 bytes)
  --fill HOW                pipeline: Puts on one Pipeline stream to the leader; restore: build the state
                            in this process, save it as a backup file and seed every member with
                            \`raftkv snapshot restore\` (minutes faster for 1 GB); auto (default):
                            restore from 1 GB up, pipeline below
  --snapshot-entries N      the nodes' --snapshot-entries (default 100000); the nodes get
                            --snapshot-bytes 16GiB so that entries alone decide when a snapshot runs
  --snapshot-retain-entries N  the nodes' --snapshot-retain-entries (default 5000, raftkv's default)
  --wal-entries N           entries in the WAL of the node restarted (default 100000: the retained tail
                            plus the entries after its snapshot, which it replays); at most
                            --snapshot-entries minus a margin
  --window-seconds S        length of the write-latency window without a snapshot (default 5)
  --inflight N              Pipeline requests in flight while filling (default 512, at most 1024)
  --sustained N             then N Puts over --sustained-keys keys on a fresh cluster with raftkv's
                            default snapshot settings (unless the snapshot flags above are given),
                            printing data-directory size and RSS of every node every 10% (default off)
  --sustained-keys N        keys the sustained Puts cycle over (default 10000)
  --port-base P             the nodes take ports P..P+5 (default 26379)
  --data-dir DIR            where the temporary directories go (default the OS temp dir; not tmpfs)
  --json FILE               also write every number as JSON to FILE
  --help                    this text
`;

export interface Options {
  readonly sizes: readonly number[];
  readonly valueBytes: number;
  readonly fill: "auto" | "pipeline" | "restore";
  /** Explicitly given on the command line (sustained mode then uses it too). */
  readonly snapshotEntriesGiven: boolean;
  readonly snapshotEntries: number;
  readonly snapshotRetainGiven: boolean;
  readonly snapshotRetainEntries: number;
  readonly walEntries: number;
  readonly windowSeconds: number;
  readonly inflight: number;
  readonly sustained: number;
  readonly sustainedKeys: number;
  readonly portBase: number;
  readonly dataDir: string;
  readonly json: string | undefined;
}

export class UsageError extends Error {}

const units: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  k: 1e3,
  m: 1e6,
  g: 1e9,
};

/** "100MB" → 100000000, "1GiB" → 1073741824. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = units[(match?.[2] ?? "").toLowerCase() || "b"];
  if (match === null || unit === undefined) throw new UsageError(`--sizes: ${JSON.stringify(text)} is not a size like 10MB, 100MB or 1GB`);
  const bytes = Math.round(Number(match[1]) * unit);
  if (bytes < 1e5 || bytes > 64 * 1024 ** 3) throw new UsageError(`--sizes: ${JSON.stringify(text)} must be from 100KB to 64GiB`);
  return bytes;
}

/** 100000000 → "100MB", 1073741824 → "1GiB": the label a size was most likely given as. */
export function sizeLabel(bytes: number): string {
  for (const [unit, factor] of [
    ["GiB", 1024 ** 3],
    ["GB", 1e9],
    ["MiB", 1024 ** 2],
    ["MB", 1e6],
    ["KiB", 1024],
    ["KB", 1e3],
  ] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}

export function parseOptions(argv: readonly string[]): Options | undefined {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      "sizes": { type: "string", default: "10MB,100MB" },
      "value-bytes": { type: "string", default: "1024" },
      "fill": { type: "string", default: "auto" },
      "snapshot-entries": { type: "string" },
      "snapshot-retain-entries": { type: "string" },
      "wal-entries": { type: "string", default: "100000" },
      "window-seconds": { type: "string", default: "5" },
      "inflight": { type: "string", default: "512" },
      "sustained": { type: "string", default: "0" },
      "sustained-keys": { type: "string", default: "10000" },
      "port-base": { type: "string", default: "26379" },
      "data-dir": { type: "string", default: tmpdir() },
      "json": { type: "string" },
      "help": { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const number = (flag: string, text: string, min: number, max: number, integer = true): number => {
    const n = Number(text.replace(/_/g, ""));
    if (text.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      throw new UsageError(`--${flag} must be ${integer ? "an integer" : "a number"} from ${min} to ${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
  const sizes =
    values.sizes.trim() === "none"
      ? []
      : [
          ...new Set(
            values.sizes
              .split(",")
              .filter((s) => s.trim() !== "")
              .map(parseSize),
          ),
        ];
  const sustained = number("sustained", values.sustained, 0, 1e9);
  if (sizes.length === 0 && sustained === 0) throw new UsageError("nothing to do: --sizes none and no --sustained");
  const snapshotEntries = number("snapshot-entries", values["snapshot-entries"] ?? "100000", 100, 10_000_000);
  const snapshotRetainEntries = number("snapshot-retain-entries", values["snapshot-retain-entries"] ?? "5000", 0, 10_000_000);
  const walEntries = number("wal-entries", values["wal-entries"], 1, 10_000_000);
  const fill = values.fill;
  if (fill !== "auto" && fill !== "pipeline" && fill !== "restore")
    throw new UsageError(`--fill must be auto, pipeline or restore, got ${JSON.stringify(fill)}`);
  return {
    sizes,
    valueBytes: number("value-bytes", values["value-bytes"], 1, 1024 * 1024),
    fill,
    snapshotEntriesGiven: values["snapshot-entries"] !== undefined,
    snapshotEntries,
    snapshotRetainGiven: values["snapshot-retain-entries"] !== undefined,
    snapshotRetainEntries,
    walEntries,
    windowSeconds: number("window-seconds", values["window-seconds"], 0.5, 600, false),
    inflight: number("inflight", values.inflight, 1, 1024),
    sustained,
    sustainedKeys: number("sustained-keys", values["sustained-keys"], 1, 10_000_000),
    portBase: number("port-base", values["port-base"], 1024, 65_535 - 6),
    dataDir: resolve(values["data-dir"]),
    json: values.json === undefined ? undefined : resolve(values.json),
  };
}

/** The command line that runs exactly these options again (every flag spelled out). */
export function reproduceCommand(o: Options): string {
  const flags = [
    `--sizes ${o.sizes.length === 0 ? "none" : o.sizes.map(sizeLabel).join(",")}`,
    `--value-bytes ${o.valueBytes}`,
    `--fill ${o.fill}`,
    // Only when given: without them, sustained mode keeps raftkv's own snapshot settings.
    ...(o.snapshotEntriesGiven ? [`--snapshot-entries ${o.snapshotEntries}`] : []),
    ...(o.snapshotRetainGiven ? [`--snapshot-retain-entries ${o.snapshotRetainEntries}`] : []),
    `--wal-entries ${o.walEntries}`,
    `--window-seconds ${o.windowSeconds}`,
    `--inflight ${o.inflight}`,
    ...(o.sustained > 0 ? [`--sustained ${o.sustained}`, `--sustained-keys ${o.sustainedKeys}`] : []),
    `--port-base ${o.portBase}`,
  ];
  return `npm run bench:state -- ${flags.join(" ")}`;
}
