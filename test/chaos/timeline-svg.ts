import type { ChaosOp } from "./history.js";
import type { TimelineEntry } from "./nemesis-runner.js";
import type { StatusSample } from "./status-sampler.js";

/**
 * The picture of a run: operation latency against time (log scale), one dot per op coloured by outcome,
 * under lanes that show when each fault was active. A person sees at a glance whether latency spikes
 * line up with faults, how long the cluster was unavailable, and where unknown outcomes cluster.
 */
export interface TimelineInput {
  readonly ops: readonly ChaosOp[];
  readonly timeline: readonly TimelineEntry[];
  /** Where fault times (relative to the workload start) sit on the ops' clock, in ms. */
  readonly workStartMs: number;
  /** When the last fault healed, on the ops' clock, in ms (a marker line). */
  readonly healedMs?: number;
  /** Status samples (times relative to the workload start): drawn as a lane of who led when. */
  readonly samples?: readonly StatusSample[];
  readonly title: string;
}

/** Most ok dots drawn; beyond it every k-th is drawn (failed and unknown ops are always drawn). */
export const okPointsMax = 15_000;

const WIDTH = 1200;
const PLOT_HEIGHT = 360;
const LANE_HEIGHT = 16;
const LEFT = 70;
const RIGHT = 20;
const TOP = 40;
const LATENCY_MIN_MS = 0.5;
const LATENCY_MAX_MS = 20_000;

export const faultColours: Readonly<Record<TimelineEntry["kind"], string>> = {
  "kill": "#c0392b",
  "pause": "#8e44ad",
  "partition": "#2471a3",
  "latency": "#d68910",
  "transfer": "#17a589",
  "disk-loss": "#1c2833",
  "membership": "#7d3c98",
};

const outcomeColours = { ok: "#27ae60", fail: "#e67e22", unknown: "#c0392b" } as const;
const nodeColours = ["#34495e", "#16a085", "#8e44ad", "#d35400", "#2c3e50", "#7f8c8d", "#c0392b", "#2980b9", "#27ae60"];

/** Who led at each sampled moment: the highest-term node that said it leads, or 0 for nobody. */
export function leaderSegments(samples: readonly StatusSample[]): { startMs: number; endMs: number; leader: number }[] {
  const byTime = new Map<number, StatusSample[]>();
  for (const sample of samples) {
    const list = byTime.get(sample.atMs);
    if (list === undefined) byTime.set(sample.atMs, [sample]);
    else list.push(sample);
  }
  const times = [...byTime.keys()].sort((a, b) => a - b);
  const segments: { startMs: number; endMs: number; leader: number }[] = [];
  times.forEach((atMs, i) => {
    let leader = 0;
    let term = -1;
    for (const sample of byTime.get(atMs) ?? []) {
      if (sample.role === "LEADER" && (sample.term ?? 0) > term) {
        leader = sample.node;
        term = sample.term ?? 0;
      }
    }
    const endMs = times[i + 1] ?? atMs;
    const last = segments[segments.length - 1];
    if (last !== undefined && last.leader === leader) last.endMs = endMs;
    else segments.push({ startMs: atMs, endMs, leader });
  });
  return segments;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Assigns each fault the first lane free at its start, so overlapping faults stack. */
function lanes(entries: readonly TimelineEntry[], endMs: number): Map<number, number> {
  const laneEnds: number[] = [];
  const assigned = new Map<number, number>();
  for (const e of [...entries].sort((a, b) => a.startMs - b.startMs)) {
    const end = e.endMs ?? endMs;
    let lane = laneEnds.findIndex((laneEnd) => laneEnd <= e.startMs);
    if (lane < 0) {
      lane = laneEnds.length;
      laneEnds.push(end);
    } else {
      laneEnds[lane] = end;
    }
    assigned.set(e.faultId, lane);
  }
  return assigned;
}

export function renderTimelineSvg(input: TimelineInput): string {
  const opsEndMs = Math.max(1, ...input.ops.map((op) => op.endUs / 1000));
  const faultEndMs = Math.max(0, ...input.timeline.map((e) => input.workStartMs + (e.endMs ?? e.startMs)));
  const endMs = Math.max(opsEndMs, faultEndMs) * 1.01;
  const applied = input.timeline.filter((e) => e.status !== "skipped" && e.status !== "pending");
  const laneOf = lanes(applied, endMs - input.workStartMs);
  const laneCount = Math.max(1, ...[...laneOf.values()].map((l) => l + 1));
  const leaderTop = TOP + laneCount * LANE_HEIGHT + 4;
  const plotTop = leaderTop + LANE_HEIGHT + 16;
  const height = plotTop + PLOT_HEIGHT + 50;
  const plotWidth = WIDTH - LEFT - RIGHT;
  const x = (ms: number): number => LEFT + (Math.max(0, ms) / endMs) * plotWidth;
  const logMin = Math.log10(LATENCY_MIN_MS);
  const logMax = Math.log10(LATENCY_MAX_MS);
  const y = (latencyMs: number): number => {
    const clamped = Math.min(LATENCY_MAX_MS, Math.max(LATENCY_MIN_MS, latencyMs));
    return plotTop + PLOT_HEIGHT - ((Math.log10(clamped) - logMin) / (logMax - logMin)) * PLOT_HEIGHT;
  };
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="${LEFT}" y="20" font-size="14" font-weight="bold">${escapeXml(input.title)}</text>`,
  ];
  // Fault lanes, and a light band over the plot while each fault was active.
  for (const e of applied) {
    const lane = laneOf.get(e.faultId) ?? 0;
    const start = input.workStartMs + e.startMs;
    const end = input.workStartMs + (e.endMs ?? e.startMs);
    const x0 = x(start);
    const w = Math.max(2, x(end) - x0);
    const colour = faultColours[e.kind];
    const label = `#${e.faultId} ${e.planned}${e.nodes.length > 0 ? ` [nodes ${e.nodes.join(",")}]` : ""}${e.note === "" ? "" : ` (${e.note})`}`;
    parts.push(
      `<rect x="${x0.toFixed(1)}" y="${plotTop}" width="${w.toFixed(1)}" height="${PLOT_HEIGHT}" fill="${colour}" opacity="0.07"/>`,
      `<g><title>${escapeXml(label)}</title><rect x="${x0.toFixed(1)}" y="${TOP + lane * LANE_HEIGHT}" width="${w.toFixed(1)}" height="${LANE_HEIGHT - 3}" fill="${colour}" opacity="0.85"/>` +
        `<text x="${(x0 + 3).toFixed(1)}" y="${TOP + lane * LANE_HEIGHT + 10}" fill="white" font-size="9">${escapeXml(w > 60 ? `${e.kind} ${e.nodes.join(",")}` : "")}</text></g>`,
    );
  }
  // Who led when, from the status samples.
  parts.push(`<text x="${LEFT - 6}" y="${leaderTop + 10}" text-anchor="end">leader</text>`);
  for (const segment of leaderSegments(input.samples ?? [])) {
    const x0 = x(input.workStartMs + segment.startMs);
    const w = Math.max(1, x(input.workStartMs + segment.endMs) - x0);
    const fill = segment.leader === 0 ? "#eeeeee" : (nodeColours[(segment.leader - 1) % nodeColours.length] ?? "#000");
    const label = segment.leader === 0 ? "no leader" : `node ${segment.leader}`;
    parts.push(
      `<g><title>${label}</title><rect x="${x0.toFixed(1)}" y="${leaderTop}" width="${w.toFixed(1)}" height="${LANE_HEIGHT - 3}" fill="${fill}"/>` +
        `<text x="${(x0 + 2).toFixed(1)}" y="${leaderTop + 10}" fill="${segment.leader === 0 ? "#999" : "white"}" font-size="9">${w > 24 ? (segment.leader === 0 ? "none" : `n${segment.leader}`) : ""}</text></g>`,
    );
  }
  // Axes: latency decades and time ticks.
  for (let decade = Math.ceil(logMin); decade <= logMax; decade++) {
    const ms = 10 ** decade;
    const yy = y(ms).toFixed(1);
    parts.push(
      `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`,
      `<text x="${LEFT - 6}" y="${yy}" text-anchor="end" dy="3">${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}</text>`,
    );
  }
  const tickMs = niceTick(endMs / 10);
  for (let t = 0; t <= endMs; t += tickMs) {
    const xx = x(t).toFixed(1);
    parts.push(
      `<line x1="${xx}" x2="${xx}" y1="${plotTop}" y2="${plotTop + PLOT_HEIGHT}" stroke="#eee"/>`,
      `<text x="${xx}" y="${plotTop + PLOT_HEIGHT + 14}" text-anchor="middle">${(t / 1000).toFixed(t % 1000 === 0 ? 0 : 1)} s</text>`,
    );
  }
  parts.push(`<rect x="${LEFT}" y="${plotTop}" width="${plotWidth}" height="${PLOT_HEIGHT}" fill="none" stroke="#999"/>`);
  if (input.healedMs !== undefined) {
    const xx = x(input.healedMs).toFixed(1);
    parts.push(
      `<line x1="${xx}" x2="${xx}" y1="${TOP}" y2="${plotTop + PLOT_HEIGHT}" stroke="black" stroke-dasharray="4 3"/>`,
      `<text x="${xx}" y="${TOP - 4}" text-anchor="middle">healed</text>`,
    );
  }
  // Dots: ok sampled beyond okPointsMax, fail and unknown always.
  const okCount = input.ops.filter((op) => op.outcome.status === "ok").length;
  const every = Math.max(1, Math.ceil(okCount / okPointsMax));
  let okSeen = 0;
  for (const op of input.ops) {
    const status = op.outcome.status;
    if (status === "ok" && okSeen++ % every !== 0) continue;
    const cx = x(op.callUs / 1000).toFixed(1);
    const cy = y((op.endUs - op.callUs) / 1000).toFixed(1);
    if (status === "ok")
      parts.push(`<circle cx="${cx}" cy="${cy}" r="1.6" fill="${op.kind === "get" ? "#1e8449" : outcomeColours.ok}" opacity="0.6"/>`);
    else
      parts.push(
        `<text x="${cx}" y="${cy}" fill="${outcomeColours[status]}" font-size="10" text-anchor="middle" dy="3">${status === "fail" ? "o" : "x"}</text>`,
      );
  }
  const legendY = plotTop + PLOT_HEIGHT + 34;
  parts.push(
    `<text x="${LEFT}" y="${legendY}">latency per op (log scale) against invocation time.  ` +
      `<tspan fill="${outcomeColours.ok}">● ok</tspan>  <tspan fill="${outcomeColours.fail}">o failed</tspan>  <tspan fill="${outcomeColours.unknown}">x unknown</tspan>   faults: ` +
      Object.entries(faultColours)
        .map(([kind, colour]) => `<tspan fill="${colour}">■ ${kind}</tspan>`)
        .join("  ") +
      (every > 1 ? `   (every ${every}th ok op drawn)` : "") +
      `</text>`,
    `</svg>`,
  );
  return parts.join("\n");
}

function niceTick(rough: number): number {
  const candidates = [100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000];
  return candidates.find((c) => c >= rough) ?? 600_000;
}
