import type { Workload } from "./measure.js";
import type { SystemName } from "./systems.js";

/** One measured cell: one system, one workload, one concurrency. null = not measurable ("n/a"). */
export interface CellRecord {
  readonly system: SystemName;
  readonly workload: Workload;
  readonly concurrency: number;
  readonly seconds: number;
  readonly ops: number;
  readonly opsPerSecond: number;
  readonly latencyMs: {
    readonly p50: number | null;
    readonly p90: number | null;
    readonly p99: number | null;
    readonly p999: number | null;
    readonly max: number | null;
  };
  readonly errors: number;
  readonly errorsByCode: Record<string, { count: number; first: string }>;
  /** Gets that found no value. */
  readonly misses: number;
  /** CPU of all server processes of the system in the window; from /proc, or from their /metrics for --endpoints. */
  readonly serverCpuMs: number | null;
  readonly serverCpuSource: "proc" | "metrics" | null;
  /** From /proc only: user vs system time, and each node's share (keyed by client URL). */
  readonly serverCpuSplit: { readonly userMs: number; readonly systemMs: number; readonly perNodeMs: Record<string, number> } | null;
  /** The client URL the cell's calls went to. */
  readonly leader: string;
  readonly serverCpuMsPerOp: number | null;
  /** This benchmark process (the client) in the same window. */
  readonly clientCpuMsPerOp: number | null;
  /** WAL fsyncs of all nodes, and committed entries per fsync (Σ commit-index delta / Σ fsync delta). */
  readonly fsyncs: number | null;
  readonly entriesPerFsync: number | null;
  /** Raft messages per peer batch: neither system exports a batch counter, so always null today. */
  readonly messagesPerBatch: number | null;
  /** Raft messages sent by all nodes per client operation. */
  readonly peerMessagesPerOp: number | null;
}

export function fixed(value: number | null | undefined, digits: number): string {
  return value === null || value === undefined || !Number.isFinite(value) ? "n/a" : value.toFixed(digits);
}

/** Milliseconds with 3 significant-ish digits: 0.412, 4.12, 41.2, 412. */
export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "n/a";
  return value.toFixed(value < 1 ? 3 : value < 10 ? 2 : value < 100 ? 1 : 0);
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, c) => (c < 2 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

export function cellsTable(cells: readonly CellRecord[]): string {
  return table(
    [
      "system",
      "workload",
      "conc",
      "ops/s",
      "p50 ms",
      "p90 ms",
      "p99 ms",
      "p99.9 ms",
      "errors",
      "srv CPU ms/op",
      "client CPU ms/op",
      "entries/fsync",
      "msgs/batch",
      "peer msgs/op",
    ],
    cells.map((c) => [
      c.system,
      c.workload,
      String(c.concurrency),
      fixed(c.opsPerSecond, 0),
      ms(c.latencyMs.p50),
      ms(c.latencyMs.p90),
      ms(c.latencyMs.p99),
      ms(c.latencyMs.p999),
      String(c.errors),
      ms(c.serverCpuMsPerOp),
      ms(c.clientCpuMsPerOp),
      fixed(c.entriesPerFsync, 1),
      fixed(c.messagesPerBatch, 1),
      fixed(c.peerMessagesPerOp, 2),
    ]),
  );
}

/** raftkv next to etcd for every cell both ran; ratios are raftkv / etcd. */
export function comparisonTable(cells: readonly CellRecord[]): string {
  const rows: string[][] = [];
  for (const r of cells.filter((c) => c.system !== "etcd")) {
    const e = cells.find((c) => c.system === "etcd" && c.workload === r.workload && c.concurrency === r.concurrency);
    if (e === undefined) continue;
    const ratio = (a: number | null, b: number | null): string => (a === null || b === null || b === 0 ? "n/a" : `${(a / b).toFixed(2)}x`);
    rows.push([
      r.system === "raftkv" ? r.workload : `${r.workload} (${r.system})`,
      String(r.concurrency),
      fixed(r.opsPerSecond, 0),
      fixed(e.opsPerSecond, 0),
      ratio(r.opsPerSecond, e.opsPerSecond),
      ms(r.latencyMs.p50),
      ms(e.latencyMs.p50),
      ms(r.latencyMs.p99),
      ms(e.latencyMs.p99),
      ms(r.serverCpuMsPerOp),
      ms(e.serverCpuMsPerOp),
      ratio(r.serverCpuMsPerOp, e.serverCpuMsPerOp),
    ]);
  }
  return table(
    [
      "workload",
      "conc",
      "raftkv ops/s",
      "etcd ops/s",
      "tput ratio",
      "raftkv p50",
      "etcd p50",
      "raftkv p99",
      "etcd p99",
      "raftkv CPU ms/op",
      "etcd CPU ms/op",
      "CPU ratio",
    ],
    rows,
  );
}
