import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { NodeRole, type NodeStatus } from "../../gen/raftkv/v1/cluster_pb.js";
import type { Cluster, Metrics } from "./cluster.js";
import { bulkPut, latencyIn, stateKey, steadyLoop, type LatencyStats, type Sample } from "./load.js";

/**
 * The measurements of one state size, each a phase on the same cluster. Snapshots run when a node has
 * applied --snapshot-entries entries since its last one (the nodes get --snapshot-bytes 16GiB, so the
 * entry count alone decides), and every node of a cluster started together takes them at the same
 * indices: so the benchmark knows from ClusterService.Status (applied_index - snapshot_index) how many
 * Puts away the next snapshot is, and writes exactly that many to start one when it wants.
 */

export interface PhaseContext {
  readonly cluster: Cluster;
  /** Keys of the state: key(0..keys-1). */
  readonly keys: number;
  readonly value: Uint8Array;
  readonly snapshotEntries: number;
  readonly retainEntries: number;
  readonly inflight: number;
  /** The next key an overwrite takes (overwrites cycle over the keys, so the state keeps its size). */
  cursor: number;
}

const n = (value: bigint): number => Number(value);
const sinceSnapshot = (s: NodeStatus): number => n(s.appliedIndex) - n(s.snapshotIndex);

export function say(line: string): void {
  process.stdout.write(`  ${line}\n`);
}

/** Polls `check` every `everyMs` until it returns a value; throws naming `what` after `timeoutMs`. */
async function waitFor<T>(
  cluster: Cluster,
  what: string | (() => string),
  timeoutMs: number,
  everyMs: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    cluster.throwIfCrashed();
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline)
      throw new Error(`timed out after ${(timeoutMs / 1000).toFixed(0)} s waiting for ${typeof what === "string" ? what : what()}`);
    await sleep(everyMs);
  }
}

interface Settled {
  readonly leader: number;
  readonly statuses: ReadonlyMap<number, NodeStatus>;
}

/**
 * Waits until every running node has applied what the leader had committed and none has a snapshot
 * due or in flight (applied - snapshot_index < --snapshot-entries: while one is being written the
 * node's snapshot_index still names the one before).
 */
export async function settle(ctx: PhaseContext, timeoutMs = 600_000): Promise<Settled> {
  let last = "";
  const what = (): string => `the nodes to apply every entry and finish their snapshots (${last})`;
  return waitFor(ctx.cluster, what, timeoutMs, 100, async () => {
    const leader = await ctx.cluster.waitForLeader();
    const statuses = await ctx.cluster.statuses();
    const running = ctx.cluster.nodes.filter((node) => ctx.cluster.isRunning(node.id));
    const commit = leader.status.commitIndex;
    last = [...statuses.values()].map((s) => `${s.name} applied ${s.appliedIndex} snapshot ${s.snapshotIndex}`).join(", ");
    const done = running.every((node) => {
      const s = statuses.get(node.id);
      return s !== undefined && s.appliedIndex >= commit && sinceSnapshot(s) < ctx.snapshotEntries;
    });
    return done ? { leader: leader.spec.id, statuses } : undefined;
  });
}

async function scrapeAll(ctx: PhaseContext): Promise<Map<number, Metrics>> {
  const all = new Map<number, Metrics>();
  await Promise.all(
    ctx.cluster.nodes.map(async (node) => {
      const m = await ctx.cluster.metrics(node.id);
      if (m !== undefined) all.set(node.id, m);
    }),
  );
  return all;
}

const created = { kind: "created" };
const installed = { kind: "installed" };

function counterDelta(before: Metrics | undefined, after: Metrics | undefined, name: string, labels?: Record<string, string>): number {
  return (after?.get(name, labels) ?? 0) - (before?.get(name, labels) ?? 0);
}

/** Overwrites `count` keys (cycling over the state's keys) through the Pipeline. */
async function overwrite(ctx: PhaseContext, count: number): Promise<void> {
  if (count <= 0) return;
  const base = ctx.cursor;
  ctx.cursor += count;
  await bulkPut(ctx.cluster, count, (i) => stateKey((base + i) % ctx.keys), ctx.value, ctx.inflight);
}

/**
 * Writes until the leader has applied from `target` to `target + slack` entries since its last
 * snapshot, going through the next snapshot first when it is already past that.
 */
export async function advanceTo(ctx: PhaseContext, target: number, slack = 0): Promise<Settled> {
  for (let attempt = 0; ; attempt++) {
    const settled = await settle(ctx);
    const since = sinceSnapshot(leaderOf(settled));
    if (since >= target && since <= target + slack) return settled;
    if (attempt > 10) throw new Error(`could not bring the leader to ${target} entries after its snapshot (it is at ${since})`);
    if (since < target) await overwrite(ctx, target - since);
    else await crossSnapshot(ctx);
  }
}

/** Writes until every node has taken its next snapshot and compacted its log behind it. */
export async function crossSnapshot(ctx: PhaseContext): Promise<Settled> {
  const first = await settle(ctx);
  const before = await scrapeAll(ctx);
  await overwrite(ctx, ctx.snapshotEntries - sinceSnapshot(leaderOf(first)));
  for (let attempt = 0; ; attempt++) {
    const settled = await settle(ctx);
    if (leaderOf(settled).snapshotIndex > leaderOf(first).snapshotIndex) {
      await snapshotsFinished(ctx, first, settled, before);
      return settled;
    }
    if (attempt > 10) throw new Error("the leader took no snapshot");
    await overwrite(ctx, ctx.snapshotEntries - sinceSnapshot(leaderOf(settled)));
  }
}

/**
 * Waits until each node whose snapshot_index moved between `first` and `now` counts the snapshot
 * created: the counter moves once the log is compacted behind it, after snapshot_index does.
 */
async function snapshotsFinished(ctx: PhaseContext, first: Settled, now: Settled, before: Map<number, Metrics>): Promise<void> {
  const moved = [...now.statuses].filter(([id, s]) => s.snapshotIndex > (first.statuses.get(id)?.snapshotIndex ?? s.snapshotIndex));
  await waitFor(ctx.cluster, "the nodes to compact their logs behind the snapshot", 600_000, 200, async () => {
    for (const [id] of moved) {
      const m = await ctx.cluster.metrics(id);
      if (counterDelta(before.get(id), m, "raftkv_snapshots_total", created) < 1) return undefined;
    }
    return true;
  });
}

function leaderOf(settled: Settled): NodeStatus {
  const leader = settled.statuses.get(settled.leader);
  if (leader === undefined) throw new Error("the leader did not answer Status");
  return leader;
}

// -------------------------------------------------------------------------------------------------

export interface FillResult {
  readonly method: "pipeline" | "restore";
  readonly seconds: number;
  /** pipeline: Puts sent again. */
  readonly retried: number;
  /** restore: the backup file's data and the time to build and write it. */
  readonly backupBytes: number | null;
  readonly backupSeconds: number | null;
  readonly kvBytes: number | null;
  readonly kvKeys: number | null;
  /** VmRSS of each node once the state is in (by node name). */
  readonly rssAfterFill: Record<string, number | null>;
}

/** Puts every key of the state through the Pipeline. */
export async function fillThroughPipeline(ctx: PhaseContext): Promise<FillResult> {
  let reported = 0;
  const result = await bulkPut(ctx.cluster, ctx.keys, stateKey, ctx.value, ctx.inflight, (done, elapsedMs) => {
    const tenth = Math.floor((done * 10) / ctx.keys);
    if (tenth > reported && tenth < 10) {
      reported = tenth;
      say(`fill ${tenth * 10}%: ${done} Puts in ${(elapsedMs / 1000).toFixed(1)} s (${((done / elapsedMs) * 1000).toFixed(0)} Puts/s)`);
    }
  });
  return filled(ctx, {
    method: "pipeline",
    seconds: result.elapsedMs / 1000,
    retried: result.retried,
    backupBytes: null,
    backupSeconds: null,
  });
}

/** What the nodes hold once the state is in, however it got there. */
export async function filled(
  ctx: PhaseContext,
  how: Pick<FillResult, "method" | "seconds" | "retried" | "backupBytes" | "backupSeconds">,
): Promise<FillResult> {
  const settled = await settle(ctx);
  // The store gauges are sampled once a second: wait until the leader's shows every key.
  const m = await waitFor(ctx.cluster, "raftkv_kv_keys to count every key", 10_000, 200, async () => {
    const metrics = await ctx.cluster.metrics(settled.leader);
    return (metrics?.get("raftkv_kv_keys") ?? 0) >= ctx.keys ? metrics : undefined;
  }).catch(() => ctx.cluster.metrics(settled.leader));
  const rssAfterFill: Record<string, number | null> = {};
  for (const node of ctx.cluster.nodes) rssAfterFill[node.name] = ctx.cluster.memory(node.id)?.rss ?? null;
  return { ...how, kvBytes: m?.get("raftkv_kv_bytes") ?? null, kvKeys: m?.get("raftkv_kv_keys") ?? null, rssAfterFill };
}

// -------------------------------------------------------------------------------------------------

export interface WindowResult {
  readonly seconds: number;
  readonly latency: LatencyStats;
  /** nodejs_eventloop_lag_max_seconds over the window, in ms, by node name. */
  readonly loopLagMaxMs: Record<string, number | null>;
  /** Snapshots created during the window (all nodes): 0 for a clean baseline. */
  readonly snapshotsCreated: number;
  readonly errors: readonly string[];
}

function endpointsLeaderFirst(ctx: PhaseContext, leader: number): string[] {
  const urls = ctx.cluster.nodes.map((node) => node.clientUrl);
  const first = ctx.cluster.node(leader).clientUrl;
  return [first, ...urls.filter((u) => u !== first)];
}

function lagMaxMs(ctx: PhaseContext, scrapes: readonly Map<number, Metrics>[]): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const node of ctx.cluster.nodes) {
    const values = scrapes.map((s) => s.get(node.id)?.get("nodejs_eventloop_lag_max_seconds")).filter((v) => v !== undefined);
    out[node.name] = values.length === 0 ? null : Math.max(...values) * 1000;
  }
  return out;
}

/** One Put at a time for `seconds`, with no snapshot due: the baseline. */
export async function baseline(ctx: PhaseContext, seconds: number): Promise<WindowResult> {
  // Room for the window: about a thousand Puts a second at most, one at a time.
  const room = Math.ceil(seconds * 1_000) + 1_000;
  let settled = await settle(ctx);
  if (ctx.snapshotEntries - sinceSnapshot(leaderOf(settled)) < room && room < ctx.snapshotEntries) settled = await crossSnapshot(ctx);
  const before = await scrapeAll(ctx); // also resets each node's event-loop delay histogram
  const loop = steadyLoop(endpointsLeaderFirst(ctx, settled.leader), ctx.keys, ctx.value);
  const from = performance.now();
  await sleep(seconds * 1000);
  const to = performance.now();
  const samples = await loop.stop();
  const after = await scrapeAll(ctx);
  let snapshots = 0;
  for (const node of ctx.cluster.nodes)
    snapshots += counterDelta(before.get(node.id), after.get(node.id), "raftkv_snapshots_total", created);
  return {
    seconds: (to - from) / 1000,
    latency: latencyIn(samples, from, to),
    loopLagMaxMs: lagMaxMs(ctx, [after]),
    snapshotsCreated: snapshots,
    errors: loop.errors,
  };
}

// -------------------------------------------------------------------------------------------------

export interface SnapshotResult extends WindowResult {
  /** From the Put that started the leader's snapshot to every node's snapshot being durable (client view). */
  readonly wallSeconds: number;
  /** raftkv_snapshot_duration_seconds{kind="created"} of this snapshot, by node name. */
  readonly createSeconds: Record<string, number | null>;
  /** raftkv_snapshot_last_bytes{kind="created"}: the encoded state. */
  readonly snapshotBytes: number | null;
  readonly leader: string;
}

/** Lead-in Puts of the steady loop before the one that starts the snapshot. */
const leadIn = 20;

/**
 * Brings the leader to `leadIn` entries before its next snapshot, then runs the one-at-a-time loop
 * until every node has written that snapshot, and a little beyond.
 */
export async function snapshotWindow(ctx: PhaseContext, timeoutMs: number): Promise<SnapshotResult> {
  const settled = await advanceTo(ctx, ctx.snapshotEntries - leadIn);
  // The index at which each node snapshots next; nodes whose turn is not within this window (one that
  // installed a snapshot at another index) are not waited for.
  const leaderStatus = leaderOf(settled);
  const triggerOf = new Map<number, number>();
  for (const [id, s] of settled.statuses) {
    const at = n(s.snapshotIndex) + ctx.snapshotEntries;
    if (at <= n(leaderStatus.appliedIndex) + leadIn + 100) triggerOf.set(id, at);
  }
  const before = await scrapeAll(ctx); // also resets each node's event-loop delay histogram
  const loop = steadyLoop(endpointsLeaderFirst(ctx, settled.leader), ctx.keys, ctx.value);
  const during = async (): Promise<{ from: number; to: number }> => {
    await loop.completed(leadIn);
    // The leader starts its snapshot as it applies the lead-in's last Put, just before answering it.
    const from = loop.samples[leadIn - 1]?.end ?? performance.now();
    await waitFor(ctx.cluster, "every node to write its snapshot", timeoutMs, 50, async () => {
      const statuses = await ctx.cluster.statuses();
      for (const [id, at] of triggerOf) if (n(statuses.get(id)?.snapshotIndex ?? 0n) < at) return undefined;
      return true;
    });
    const to = performance.now();
    // A short tail: what the loop sees right after the snapshots.
    await sleep(200);
    return { from, to };
  };
  let window: { from: number; to: number };
  let samples: readonly Sample[];
  try {
    window = await during();
  } finally {
    samples = await loop.stop();
  }
  const { from, to } = window;
  // The created counter moves once the log is compacted behind the snapshot, after snapshot_index.
  const scrapes: Map<number, Metrics>[] = [];
  await waitFor(ctx.cluster, "the snapshot metrics", 120_000, 200, async () => {
    const after = await scrapeAll(ctx);
    scrapes.push(after);
    for (const id of triggerOf.keys())
      if (counterDelta(before.get(id), after.get(id), "raftkv_snapshots_total", created) < 1) return undefined;
    return true;
  });
  const after = scrapes.at(-1) ?? new Map<number, Metrics>();
  const createSeconds: Record<string, number | null> = {};
  let snapshots = 0;
  for (const node of ctx.cluster.nodes) {
    const b = before.get(node.id);
    const a = after.get(node.id);
    const count = counterDelta(b, a, "raftkv_snapshot_duration_seconds_count", created);
    snapshots += count;
    createSeconds[node.name] = count > 0 ? counterDelta(b, a, "raftkv_snapshot_duration_seconds_sum", created) / count : null;
  }
  return {
    seconds: (to - from) / 1000,
    wallSeconds: (to - from) / 1000,
    latency: latencyIn(samples, from, to),
    loopLagMaxMs: lagMaxMs(ctx, scrapes),
    snapshotsCreated: snapshots,
    createSeconds,
    snapshotBytes: after.get(settled.leader)?.get("raftkv_snapshot_last_bytes", created) ?? null,
    leader: ctx.cluster.node(settled.leader).name,
    errors: loop.errors,
  };
}

// -------------------------------------------------------------------------------------------------

export interface RestartResult {
  readonly node: string;
  /** What the node held when it was killed: its newest snapshot file, and its log. */
  readonly snapshotBytes: number | null;
  readonly walEntries: number;
  readonly replayEntries: number;
  readonly readySeconds: number;
  readonly caughtUpSeconds: number;
  /** VmHWM of the restarted process once caught up. */
  readonly peakRss: number | null;
}

/** A follower whose id is not `except`. */
function follower(settled: Settled, except?: number): number {
  for (const [id, s] of settled.statuses) if (s.role === NodeRole.FOLLOWER && id !== settled.leader && id !== except) return id;
  throw new Error("no follower to use");
}

/** The time from spawning `id` to /readyz 200, and to having applied `commit`. */
async function timeStart(ctx: PhaseContext, id: number, commit: bigint, timeoutMs: number): Promise<{ ready: number; caughtUp: number }> {
  const spawned = ctx.cluster.start(id);
  const name = ctx.cluster.node(id).name;
  await waitFor(ctx.cluster, `${name} to answer /readyz 200`, timeoutMs, 20, async () =>
    (await ctx.cluster.ready(id)) ? true : undefined,
  );
  const ready = performance.now() - spawned;
  await waitFor(
    ctx.cluster,
    () => `${name} to apply index ${commit}${lastWarning(ctx, id)}`,
    timeoutMs,
    20,
    async () => {
      const s = await ctx.cluster.status(id);
      return s !== undefined && s.appliedIndex >= commit ? true : undefined;
    },
  );
  return { ready: ready / 1000, caughtUp: (performance.now() - spawned) / 1000 };
}

/** The last warning or error of a node's log, for a timeout's message. */
function lastWarning(ctx: PhaseContext, id: number): string {
  try {
    const lines = readFileSync(ctx.cluster.node(id).logPath, "utf8").trim().split("\n").slice(-200);
    for (const line of lines.reverse()) {
      const record = JSON.parse(line) as { level?: number };
      if ((record.level ?? 0) >= 40) return `; its last warning: ${line.slice(0, 400)}`;
    }
  } catch {
    // No log, or a line that is not JSON: nothing to add.
  }
  return "";
}

/**
 * SIGKILL a follower holding the state and a WAL of about `walEntries` entries, start it with the
 * same flags, and time /readyz and catching up.
 */
export async function restart(ctx: PhaseContext, walEntries: number, timeoutMs: number): Promise<RestartResult> {
  const replayTarget = Math.max(0, Math.min(walEntries - ctx.retainEntries, ctx.snapshotEntries - 1_000));
  // The state in a snapshot, the rest in the WAL: go through a first snapshot if there is none yet.
  if (leaderOf(await settle(ctx)).snapshotIndex === 0n) await crossSnapshot(ctx);
  const settled = await advanceTo(ctx, replayTarget, 100);
  const id = follower(settled);
  const s = settled.statuses.get(id);
  if (s === undefined) throw new Error("the follower did not answer Status");
  const snapshotBytes = ctx.cluster.snapshotFileBytes(id) ?? 0;
  const commit = settled.statuses.get(settled.leader)?.commitIndex ?? s.appliedIndex;
  await ctx.cluster.kill(id, "SIGKILL");
  const time = await timeStart(ctx, id, commit, timeoutMs);
  return {
    node: ctx.cluster.node(id).name,
    snapshotBytes: snapshotBytes > 0 ? snapshotBytes : null,
    walEntries: n(s.lastLogIndex) - Math.max(0, n(s.snapshotIndex) - ctx.retainEntries),
    replayEntries: n(s.lastLogIndex) - n(s.snapshotIndex),
    readySeconds: time.ready,
    caughtUpSeconds: time.caughtUp,
    peakRss: ctx.cluster.memory(id)?.hwm ?? null,
  };
}

// -------------------------------------------------------------------------------------------------

export interface InstallResult {
  readonly node: string;
  /** Puts written while it was down, to make the leader compact past it. */
  readonly writtenWhileDown: number;
  readonly readySeconds: number;
  readonly caughtUpSeconds: number;
  readonly snapshotsInstalled: number;
  readonly installedBytes: number | null;
  /** raftkv_snapshot_duration_seconds{kind="installed"}: storing and restoring it, on the node's loop. */
  readonly installSeconds: number | null;
  /** installedBytes over the time from /readyz 200 to caught up (transfer, install, the entries after it). */
  readonly mbPerSecond: number | null;
  readonly peakRss: number | null;
}

/**
 * Stops a follower, writes until the leader has compacted its log past it, starts it again and times
 * its catch-up, which needs the leader's snapshot (InstallSnapshot) since the entries it lacks are gone.
 */
export async function installSnapshot(ctx: PhaseContext, except: number | undefined, timeoutMs: number): Promise<InstallResult> {
  const settled = await settle(ctx);
  const id = follower(settled, except);
  const stopped = settled.statuses.get(id);
  // Its log may hold entries past what it applied: the leader must compact past all of them.
  const stoppedAt = Math.max(n(stopped?.appliedIndex ?? 0n), n(stopped?.lastLogIndex ?? 0n)) + 10;
  await ctx.cluster.kill(id, "SIGKILL");
  const leaderStatus = leaderOf(settled);
  // The leader compacts to (snapshot index - retained entries) after each snapshot: find the first
  // snapshot whose compaction passes the stopped follower's last entry.
  let snapshots = 1;
  while (n(leaderStatus.snapshotIndex) + snapshots * ctx.snapshotEntries - ctx.retainEntries <= stoppedAt) snapshots++;
  const target = n(leaderStatus.snapshotIndex) + snapshots * ctx.snapshotEntries;
  const writes = target - n(leaderStatus.appliedIndex) + 1;
  const before = await scrapeAll(ctx);
  await overwrite(ctx, writes);
  await waitFor(ctx.cluster, "the leader to snapshot and compact its log", timeoutMs, 200, async () => {
    const m = await ctx.cluster.metrics(settled.leader);
    return counterDelta(before.get(settled.leader), m, "raftkv_snapshots_total", created) >= snapshots ? true : undefined;
  });
  const after = await settle(ctx);
  await snapshotsFinished(ctx, settled, after, before);
  const commit = after.statuses.get(after.leader)?.commitIndex ?? 0n;
  const time = await timeStart(ctx, id, commit, timeoutMs);
  const m = await ctx.cluster.metrics(id);
  const count = m?.get("raftkv_snapshot_duration_seconds_count", installed) ?? 0;
  const installedBytes = m?.get("raftkv_snapshot_last_bytes", installed) ?? null;
  const transferSeconds = time.caughtUp - time.ready;
  return {
    node: ctx.cluster.node(id).name,
    writtenWhileDown: writes,
    readySeconds: time.ready,
    caughtUpSeconds: time.caughtUp,
    snapshotsInstalled: count,
    installedBytes,
    installSeconds: count > 0 ? (m?.get("raftkv_snapshot_duration_seconds_sum", installed) ?? 0) / count : null,
    mbPerSecond: installedBytes !== null && count > 0 && transferSeconds > 0 ? installedBytes / 1e6 / transferSeconds : null,
    peakRss: ctx.cluster.memory(id)?.hwm ?? null,
  };
}
