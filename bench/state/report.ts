import type { FillResult, InstallResult, RestartResult, SnapshotResult, WindowResult } from "./phases.js";
import type { Checkpoint } from "./sustained.js";

/** The printed tables. Sizes in MB are 10^6 bytes. */

/** One state size: what each phase measured, or why it could not. */
export interface SizeRecord {
  readonly label: string;
  readonly bytes: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly serverFlags: readonly string[];
  fill?: FillResult | undefined;
  baseline?: WindowResult | undefined;
  restart?: RestartResult | undefined;
  snapshot?: SnapshotResult | undefined;
  install?: InstallResult | undefined;
  /** The Raft term once the state was in and at the end: a difference is leader elections during the measurements. */
  terms?: { readonly afterFill: number; readonly atEnd: number } | undefined;
  /** Highest VmHWM of each node over the whole size run, across restarts (by node name). */
  peakRss?: Record<string, number | null> | undefined;
  /** du of each node's data directory at the end. */
  diskBytes?: Record<string, number> | undefined;
  /** Phases that failed, with the reason. */
  readonly failures: Record<string, string>;
}

export function mb(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "n/a";
  const m = bytes / 1e6;
  return `${m.toFixed(m < 10 ? 2 : m < 100 ? 1 : 0)} MB`;
}

export function sec(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "n/a";
  return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "n/a";
  return value.toFixed(value < 10 ? 1 : 0);
}

const count = (value: number): string => value.toLocaleString("en-US");

function maxOf(record: Record<string, number | null> | undefined): { value: number | null; node: string | null } {
  let best: { value: number | null; node: string | null } = { value: null, node: null };
  for (const [node, value] of Object.entries(record ?? {}))
    if (value !== null && (best.value === null || value > best.value)) best = { value, node };
  return best;
}

/** Rows are metrics, columns are sizes: the first column left-aligned, the others right-aligned. */
function transposed(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function failed(record: SizeRecord, phase: string): string | undefined {
  return record.failures[phase] === undefined ? undefined : "FAILED (see above)";
}

export function summaryTable(records: readonly SizeRecord[]): string {
  const row = (name: string, cell: (r: SizeRecord) => string): string[] => [name, ...records.map(cell)];
  const lat = (w: WindowResult | undefined): string =>
    w === undefined ? "n/a" : `${ms(w.latency.p50Ms)} / ${ms(w.latency.p99Ms)} / ${ms(w.latency.maxMs)} (n=${w.latency.count})`;
  const stall = (w: WindowResult | undefined): string => {
    const worst = maxOf(w?.loopLagMaxMs);
    return worst.value === null ? "n/a" : `${ms(worst.value)} ms (${worst.node})`;
  };
  const rows: string[][] = [
    row("keys x value", (r) => `${count(r.keys)} x ${r.valueBytes} B`),
    row("live keys+values (raftkv_kv_bytes)", (r) => mb(r.fill?.kvBytes)),
    row("fill: how, time to a serving cluster", (r) =>
      r.fill === undefined
        ? (failed(r, "fill") ?? "n/a")
        : `${r.fill.method} ${sec(r.fill.seconds)}, ${((r.fill.kvBytes ?? r.bytes) / 1e6 / r.fill.seconds).toFixed(1)} MB/s`,
    ),
    row("RSS after fill, largest node (VmRSS)", (r) => mb(maxOf(r.fill?.rssAfterFill).value)),
    row("snapshot size (encoded)", (r) => mb(r.snapshot?.snapshotBytes)),
    row("snapshot create time, leader / slowest", (r) => {
      const s = r.snapshot;
      if (s === undefined) return failed(r, "snapshot") ?? "n/a";
      return `${sec(s.createSeconds[s.leader])} / ${sec(maxOf(s.createSeconds).value)}`;
    }),
    row("event-loop stall max during snapshot", (r) => (r.snapshot === undefined ? (failed(r, "snapshot") ?? "n/a") : stall(r.snapshot))),
    row("event-loop stall max, no snapshot", (r) => (r.baseline === undefined ? (failed(r, "baseline") ?? "n/a") : stall(r.baseline))),
    row("longest gap between Puts during snapshot", (r) => `${ms(r.snapshot?.latency.gapMaxMs)} ms`),
    row("longest gap between Puts, no snapshot", (r) => `${ms(r.baseline?.latency.gapMaxMs)} ms`),
    row("Put p50/p99/max ms, no snapshot", (r) => lat(r.baseline)),
    row("Put p50/p99/max ms, during snapshot", (r) => lat(r.snapshot)),
    row("restart: WAL entries (replayed)", (r) =>
      r.restart === undefined ? (failed(r, "restart") ?? "n/a") : `${count(r.restart.walEntries)} (${count(r.restart.replayEntries)})`,
    ),
    row("restart: start to /readyz 200", (r) => (r.restart === undefined ? (failed(r, "restart") ?? "n/a") : sec(r.restart.readySeconds))),
    row("restart: to caught up", (r) => sec(r.restart?.caughtUpSeconds)),
    row("InstallSnapshot: bytes installed", (r) =>
      r.install === undefined ? (failed(r, "install") ?? "n/a") : mb(r.install.installedBytes),
    ),
    row("InstallSnapshot: start to ready / caught up", (r) =>
      r.install === undefined ? "n/a" : `${sec(r.install.readySeconds)} / ${sec(r.install.caughtUpSeconds)}`,
    ),
    row("InstallSnapshot: install on follower's loop", (r) => sec(r.install?.installSeconds)),
    row("InstallSnapshot: MB/s (ready to caught up)", (r) =>
      r.install?.mbPerSecond === null || r.install?.mbPerSecond === undefined ? "n/a" : r.install.mbPerSecond.toFixed(1),
    ),
    row("Raft term after fill -> at end", (r) => (r.terms === undefined ? "n/a" : `${r.terms.afterFill} -> ${r.terms.atEnd}`)),
    row("peak RSS, largest node (VmHWM)", (r) => {
      const worst = maxOf(r.peakRss);
      return worst.value === null ? "n/a" : `${mb(worst.value)} (${worst.node})`;
    }),
    row("data dir, largest node (du)", (r) => mb(maxOf(r.diskBytes).value)),
  ];
  return transposed(["state", ...records.map((r) => r.label)], rows);
}

export function sustainedTable(checkpoints: readonly Checkpoint[]): string {
  const names = Object.keys(checkpoints[0]?.diskBytes ?? {});
  const header = ["done", "Puts", "s", "Puts/s", ...names.map((n) => `${n} disk`), ...names.map((n) => `${n} RSS`)];
  const rows = checkpoints.map((c) => [
    `${c.percent}%`,
    count(c.puts),
    c.seconds.toFixed(1),
    c.putsPerSecond === null ? "" : c.putsPerSecond.toFixed(0),
    ...names.map((n) => mb(c.diskBytes[n])),
    ...names.map((n) => mb(c.rss[n])),
  ]);
  return transposed(header, rows);
}
