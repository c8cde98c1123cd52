import { writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describeChaosOp, type WatchRecord } from "./history.js";
import type { RunResult } from "./run.js";
import type { StatusSample } from "./status-sampler.js";
import type { TcpProxyStats } from "./tcp-proxy.js";
import { renderTimelineSvg } from "./timeline-svg.js";

/**
 * The results folder of one run (results/chaos/<timestamp>-seed-N/, git-ignored):
 * - verdict.json: the verdict, the rerun command, the numbers, every violation with its ops;
 * - history.jsonl: every operation, one JSON object per line;
 * - watch.jsonl: the change history the exactly-once check used;
 * - nemesis.json: the seed's plan, what was executed (with resolved targets), proxy counters;
 * - status.jsonl: every node's Status sampled through the run (role, term, leader, commit, applied);
 * - timeline.svg and report.html: latency against faults, for a person;
 * - node-N.log: each node's own log.
 */
export interface ReportExtras {
  readonly watchEvents: readonly WatchRecord[];
  readonly proxies?: readonly TcpProxyStats[];
  readonly samples?: readonly StatusSample[];
}

export function verdictLine(result: RunResult, cwd = process.cwd()): string {
  const s = result.stats;
  const o = result.options;
  const what =
    `seed=${o.seed} nodes=${o.nodes} time=${Math.round(o.timeMs / 1000)}s nemesis=${o.nemesis.length === 0 ? "none" : o.nemesis.join(",")}: ` +
    `ops=${s.workload.started} (ok ${s.workload.ok}, failed ${s.workload.fail}, unknown ${s.workload.unknown}) checked=${s.linearizableOps} keys=${s.keys} ` +
    `faults=${s.faultsInjected}${o.nemesis.includes("membership") ? ` members=${s.members}` : ""} recovery=${s.recoveryMs === undefined ? "none" : `${(s.recoveryMs / 1000).toFixed(1)}s`}`;
  const why =
    result.verdict === "fail"
      ? ` ${result.violationCount} violation(s): ${[...new Set(result.violations.map((v) => v.kind))].join(", ")}`
      : result.verdict === "pass"
        ? ""
        : ` (${(result.reasons[0] ?? "").split("\n")[0]})`;
  return `chaos ${result.verdict.toUpperCase()}${why} ${what} -> ${relative(cwd, result.dir) || "."}  rerun: ${result.rerun}`;
}

export function writeReport(result: RunResult, extras: ReportExtras): void {
  const dir = result.dir;
  writeFileSync(
    join(dir, "history.jsonl"),
    result.history.map((op) => JSON.stringify(op)).join("\n") + (result.history.length > 0 ? "\n" : ""),
  );
  writeFileSync(
    join(dir, "watch.jsonl"),
    extras.watchEvents.map((e) => JSON.stringify(e)).join("\n") + (extras.watchEvents.length > 0 ? "\n" : ""),
  );
  writeFileSync(
    join(dir, "nemesis.json"),
    `${JSON.stringify({ endpoints: result.endpoints, plan: result.plan, timeline: result.timeline, workStartMs: result.workStartMs, healedMs: result.healedMs, proxies: extras.proxies ?? [] }, null, 2)}\n`,
  );
  const verdict = {
    verdict: result.verdict,
    rerun: result.rerun,
    reasons: result.reasons,
    violationCount: result.violationCount,
    violations: result.violations.map((v) => ({ kind: v.kind, message: v.message, opIds: v.ops.map((op) => op.id) })),
    stats: result.stats,
    options: result.options,
  };
  const samples = extras.samples ?? [];
  writeFileSync(join(dir, "status.jsonl"), samples.map((sample) => JSON.stringify(sample)).join("\n") + (samples.length > 0 ? "\n" : ""));
  writeFileSync(join(dir, "verdict.json"), `${JSON.stringify(verdict, null, 2)}\n`);
  const svg = renderTimelineSvg({
    ops: result.history,
    timeline: result.timeline,
    workStartMs: result.workStartMs,
    ...(result.healedMs === undefined ? {} : { healedMs: result.healedMs }),
    samples,
    title: `raftkv chaos seed ${result.options.seed}: ${result.verdict.toUpperCase()}`,
  });
  writeFileSync(join(dir, "timeline.svg"), svg);
  writeFileSync(join(dir, "report.html"), renderHtml(result, svg));
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function renderHtml(result: RunResult, svg: string): string {
  const s = result.stats;
  const rows: [string, string][] = [
    ["verdict", result.verdict.toUpperCase()],
    ["rerun", result.rerun],
    [
      "operations",
      `${s.workload.started}: ok ${s.workload.ok}, failed ${s.workload.fail}, unknown ${s.workload.unknown}; ${s.workload.retries} same-session retries`,
    ],
    ["linearizability", `${s.linearizableOps} ops placed on ${s.keys} keys, ${s.searchSteps} search steps`],
    [
      "faults",
      `${s.faultsInjected} injected of ${s.faultsPlanned} planned: ${
        Object.entries(s.faultsByKind)
          .map(([k, n]) => `${k} ${n}`)
          .join(", ") || "none"
      }`,
    ],
    ["recovery", s.recoveryMs === undefined ? "did not recover" : `${(s.recoveryMs / 1000).toFixed(2)} s after the last heal`],
    ["exactly-once history", `${s.watchEvents} events from the ${s.watchSource}; ${s.replicasCompared} replicas compared`],
    ["crashes", `${s.crashes}; ${s.expectedExits} expected exits (removed members, code 7; a join's refused fall-back, code 6)`],
    [
      "disk loss",
      s.diskLost.length === 0
        ? "none"
        : s.diskLost
            .map((id) =>
              s.diskLostReplaced.includes(id)
                ? `node ${id} refused to start (exit code 6), then was replaced (removed, joined again with --join)`
                : `node ${id} refused to start (exit code 6) and stayed out`,
            )
            .join("; "),
    ],
    ["members", `${s.members} at the end`],
    ["duration", `${(s.durationMs / 1000).toFixed(1)} s`],
  ];
  const faults = result.timeline
    .map(
      (e) =>
        `<tr><td>${e.faultId}</td><td>${(e.startMs / 1000).toFixed(2)}</td><td>${e.endMs === undefined ? "" : (e.endMs / 1000).toFixed(2)}</td>` +
        `<td>${escapeHtml(e.planned)}</td><td>${e.nodes.join(", ")}</td><td>${e.status}</td><td>${escapeHtml(e.note)}</td></tr>`,
    )
    .join("\n");
  const violations = result.violations
    .map(
      (v) =>
        `<h3>${v.kind}</h3><pre>${escapeHtml(v.message)}${v.ops.length > 0 ? `\n\nops:\n${escapeHtml(v.ops.map(describeChaosOp).join("\n"))}` : ""}</pre>`,
    )
    .join("\n");
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>raftkv chaos seed ${result.options.seed}</title>
<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:2px 8px;text-align:left;vertical-align:top}pre{background:#f6f6f6;padding:8px;overflow-x:auto}</style></head>
<body><h1>raftkv chaos, seed ${result.options.seed}: ${result.verdict.toUpperCase()}</h1>
<table>${rows.map(([k, v]) => `<tr><th>${k}</th><td>${escapeHtml(v)}</td></tr>`).join("")}</table>
${result.reasons.length > 0 ? `<h2>Notes</h2><pre>${escapeHtml(result.reasons.join("\n"))}</pre>` : ""}
${result.violationCount > 0 ? `<h2>Violations (${result.violationCount})</h2>${violations}` : ""}
<h2>Timeline</h2>${svg}
<h2>Faults (seconds after the workload started)</h2>
<table><tr><th>#</th><th>start</th><th>heal</th><th>fault</th><th>nodes</th><th>status</th><th>note</th></tr>${faults}</table>
<p>Files: history.jsonl, watch.jsonl, nemesis.json, status.jsonl, verdict.json, node-N.log.</p>
</body></html>
`;
}
