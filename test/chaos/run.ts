import { mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { judgeDiskLosses } from "./check-disk-loss.js";
import { judgeMembership } from "./check-membership.js";
import { checkExactlyOnce, missingRevisions } from "./check-exactly-once.js";
import { checkChaosLinearizability, type LinearizabilityVerdict } from "./check-linearizability.js";
import { checkLostWrites, type FinalRead } from "./check-lost-writes.js";
import { compareNodeStates, finalRead, recover } from "./final-state.js";
import { checkReplicas } from "./check-replicas.js";
import { ChaosCluster } from "./cluster.js";
import { historyStats, type ChaosOp, type HistoryStats, type WatchRecord } from "./history.js";
import { NemesisRunner, type TimelineEntry } from "./nemesis-runner.js";
import { planNemesis, type PlannedFault } from "./nemesis-plan.js";
import { defaultServeCommand } from "./node-process.js";
import { startReaper } from "./reaper.js";
import { rerunCommand, type RunOptions } from "./run-options.js";
import { capViolations, type Violation } from "./violation.js";
import { replayHistory, WatchRecorder } from "./watch-recorder.js";
import { defaultWorkload, describeError, RunClock, Workload } from "./workload.js";
import { writeReport } from "./report.js";
import type { TcpProxyStats } from "./tcp-proxy.js";
import { checkOneLeaderPerTerm, StatusSampler } from "./status-sampler.js";

/**
 * One chaos run, Jepsen style: start a fresh cluster, run the workload and the nemesis together for
 * `timeMs`, heal everything, check that the cluster recovers, read the final state, replay every node's
 * history, stop the cluster, judge, and write the report. Every child process is killed on every path
 * out of here (and by the reaper if the harness itself dies).
 */
export type Verdict = "pass" | "fail" | "inconclusive" | "error";

export interface RunStats {
  readonly workload: HistoryStats;
  /** Ops the linearizability search placed, and over how many keys. */
  readonly linearizableOps: number;
  readonly keys: number;
  readonly searchSteps: number;
  readonly faultsPlanned: number;
  /** Faults that took effect (skipped and failed ones excluded). */
  readonly faultsInjected: number;
  readonly faultsByKind: Readonly<Record<string, number>>;
  readonly crashes: number;
  /** From the last heal to a leader and a successful write; undefined when it did not recover. */
  readonly recoveryMs: number | undefined;
  readonly watchEvents: number;
  /** Where the exactly-once check got its history, and whether it was complete. */
  readonly watchSource: string;
  readonly replicasCompared: number;
  /** Nodes that lost their data directory (disk-loss nemesis) and refused to start, as they must. */
  readonly diskLost: readonly number[];
  /** Of those, the ones a membership change replaced (removed the lost member, joined again with --join). */
  readonly diskLostReplaced: readonly number[];
  /** Members at the end (the member list after healing; the founders when it could not be read). */
  readonly members: number;
  /** Exits the harness expected: removed members (code 7), a join's refused fall-back (code 6). */
  readonly expectedExits: number;
  readonly durationMs: number;
  /** Wall-clock ms of each phase: start (until the first leader), workload (until every op ended), check (final reads to verdict). */
  readonly phases: Readonly<Record<string, number>>;
}

export interface RunResult {
  readonly options: RunOptions;
  readonly dir: string;
  readonly verdict: Verdict;
  /** Why a run is inconclusive or an error; empty for pass and fail. */
  readonly reasons: readonly string[];
  readonly violations: readonly Violation[];
  readonly violationCount: number;
  readonly stats: RunStats;
  readonly rerun: string;
  readonly plan: readonly PlannedFault[];
  readonly timeline: readonly TimelineEntry[];
  readonly history: readonly ChaosOp[];
  /** Where the workload (and the nemesis clock) started on the history's clock, in ms. */
  readonly workStartMs: number;
  /** When every fault was healed, on the history's clock, in ms. */
  readonly healedMs: number | undefined;
  /** Client URLs by node id (1 first), to read the endpoints in the history. */
  readonly endpoints: readonly string[];
}

const REPLAY_TIMEOUT_MS = 20_000;
/** Membership changes: confirming a removal, its process's exit, a join until the new member is a voter. */
const MEMBER_REMOVE_MS = 30_000;
const MEMBER_EXIT_MS = 30_000;
const MEMBER_JOIN_MS = 60_000;
/** How often every node's Status is sampled during the run. */
const STATUS_INTERVAL_MS = 500;

function timestamp(): string {
  return new Date()
    .toISOString()
    .replace(/[:.]/g, "-")
    .replace(/-\d{3}Z$/, "Z");
}

export async function runChaos(options: RunOptions, repoRoot: string): Promise<RunResult> {
  const started = Date.now();
  const dir = resolve(repoRoot, options.resultsDir, `${timestamp()}-seed-${options.seed}`);
  mkdirSync(dir, { recursive: true });
  const rerun = rerunCommand(options);
  const serveCommand = options.serveCommand ?? defaultServeCommand(repoRoot);
  const plan = planNemesis({
    seed: options.seed,
    ids: Array.from({ length: options.nodes }, (_, i) => i + 1),
    kinds: options.nemesis,
    timeMs: options.timeMs,
  });
  const reasons: string[] = [];
  const violations: Violation[] = [];
  const emptyStats: RunStats = {
    workload: { started: 0, ok: 0, fail: 0, unknown: 0, retries: 0 },
    linearizableOps: 0,
    keys: 0,
    searchSteps: 0,
    faultsPlanned: plan.length,
    faultsInjected: 0,
    faultsByKind: {},
    crashes: 0,
    recoveryMs: undefined,
    watchEvents: 0,
    watchSource: "none",
    replicasCompared: 0,
    diskLost: [],
    diskLostReplaced: [],
    members: options.nodes,
    expectedExits: 0,
    durationMs: 0,
    phases: {},
  };
  if (serveCommand === undefined) {
    const result: RunResult = {
      options,
      dir,
      verdict: "error",
      reasons: ["raftkv serve is not available yet: neither bin/raftkv.js nor src/cli/main.ts exists (or pass --serve-command)"],
      violations,
      violationCount: 0,
      stats: emptyStats,
      rerun,
      plan,
      timeline: [],
      history: [],
      workStartMs: 0,
      healedMs: undefined,
      endpoints: [],
    };
    writeReport(result, { watchEvents: [] });
    return result;
  }

  const reaper = startReaper();
  const dataDir = join(dir, "data");
  let cluster: ChaosCluster | undefined;
  const killOnExit = (): void => cluster?.killAllNow();
  process.once("exit", killOnExit);
  const clock = new RunClock();
  let run: Workload | undefined;
  let timeline: TimelineEntry[] = [];
  let watchEvents: WatchRecord[] = [];
  let lin: LinearizabilityVerdict | undefined;
  let recoveryMs: number | undefined;
  let watchSource = "none";
  let replicasCompared = 0;
  let diskLost: readonly number[] = [];
  let diskLostReplaced: readonly number[] = [];
  let members: number = options.nodes;
  let expectedExits = 0;
  /** Exits counted as crashes (a wiped node's refusal is not one); undefined until judged. */
  let crashCount: number | undefined;
  let history: ChaosOp[] = [];
  let workStart = 0;
  let healedMs: number | undefined;
  let endpoints: string[] = [];
  let proxies: TcpProxyStats[] = [];
  let samplesOf: StatusSampler | undefined;
  const phases: Record<string, number> = {};
  const phase = (name: string, since: number): number => {
    phases[name] = Math.round(Date.now() - since);
    return Date.now();
  };
  let phaseStart = Date.now();
  try {
    cluster = await ChaosCluster.create({
      nodes: options.nodes,
      // The membership nemesis grows the cluster into a slot of its own.
      spares: options.nemesis.includes("membership") ? 1 : 0,
      seed: options.seed,
      repoRoot,
      logDir: dir,
      dataDir,
      serveCommand,
      reaper,
      extraArgs: options.serveArgs,
      logLevel: options.logLevel,
      nowMs: () => clock.nowMs() - workStart,
    });
    const c = cluster;
    c.startAll();
    const first = await c.awaitStableLeader(options.startTimeoutMs);
    if (first === undefined) {
      reasons.push(`the cluster elected no leader within ${options.startTimeoutMs} ms of starting; see the node logs`);
      for (const crash of c.crashes)
        reasons.push(`node ${crash.id} exited (code ${crash.code}, signal ${crash.signal}):\n${crash.logTail}`);
      throw new HarnessError();
    }
    const unrouted = c.unroutedNodes();
    if (unrouted.length > 0) {
      reasons.push(
        `the harness's peer routes (test/chaos/peer-routes.mjs, through NODE_OPTIONS) are not in force in node(s) ${unrouted.join(", ")}: ` +
          "their peer traffic would bypass the fault proxies (is the serve command a Node process?)",
      );
      throw new HarnessError();
    }
    phaseStart = phase("start", phaseStart);

    endpoints = c.endpoints();
    const workload = new Workload(
      {
        ...defaultWorkload,
        seed: options.seed,
        // The founding nodes' client URLs: a node that rejoins keeps its URL; a node that grows the
        // cluster is reached through leader hints.
        endpoints: c.founderEndpoints(),
        workers: options.workers,
        keys: options.keys,
        opsPerKeyMax: options.opsPerKeyMax,
      },
      clock,
    );
    run = workload;
    const watch = new WatchRecorder(c.founderEndpoints(), 1000);
    watch.start(defaultWorkload.prefix, 1);
    workStart = clock.nowMs();
    const sampler = new StatusSampler(
      c.ids,
      () => c.statusAll(),
      () => clock.nowMs() - workStart,
      STATUS_INTERVAL_MS,
    );
    sampler.start();
    samplesOf = sampler;
    const nemesis = new NemesisRunner({
      plan,
      nowMs: () => clock.nowMs() - workStart,
      endMs: options.timeMs,
      control: {
        ids: c.ids,
        baseSize: options.nodes,
        members: () => c.memberSlots(),
        emptySlots: () => c.emptySlots(),
        leader: async () => (await c.leader())?.id,
        kill: (id) => c.node(id).kill(),
        restart: (id) => c.node(id).start(),
        wipe: (id) => c.wipe(id),
        pause: (id) => c.node(id).pause(),
        resume: (id) => c.node(id).resume(),
        isUp: (id) => c.isUpMember(id),
        removeMember: (id) => c.removeMember(id, MEMBER_REMOVE_MS, MEMBER_EXIT_MS),
        joinMember: (id) => c.joinMember(id, MEMBER_JOIN_MS),
        addNetworkFault: (id, fault) => c.network.add(id, fault),
        removeNetworkFault: (id) => c.network.remove(id),
        transferLeadership: (to) => c.transferLeadership(to, 5000),
      },
    });
    const working = workload.run(options.timeMs);
    await nemesis.run();
    timeline = nemesis.timeline;
    // A node that lost its disk is out for good (it must refuse to start) unless a membership change
    // replaced it; every other node that holds a member must come back. Removed members stay out.
    const losses = nemesis.diskLosses();
    const lostIds = new Set(losses.filter((loss) => !loss.replaced).map((loss) => loss.id));
    // Crashed nodes come back too, so that recovery measures the cluster, not a missing member.
    for (const id of c.memberSlots()) if (!lostIds.has(id) && c.node(id).state === "crashed") c.node(id).start();
    healedMs = clock.nowMs();
    const recovery = recover(c, clock, workload, options.recoveryMsMax);
    await working;
    recoveryMs = await recovery;
    phaseStart = phase("workload", phaseStart);
    if (recoveryMs === undefined) {
      violations.push({
        kind: "no-recovery",
        message: `no leader with a successful write within ${options.recoveryMsMax} ms after the last fault healed (at ${Math.round(healedMs - workStart)} ms)`,
        ops: [],
      });
    }
    // Every member can answer a wiped node by now, so it must have refused, or do so shortly.
    const refusals = await judgeDiskLosses(c, losses, options.recoveryMsMax);
    violations.push(...refusals.violations);
    diskLost = refusals.refused;
    diskLostReplaced = losses.filter((loss) => loss.replaced).map((loss) => loss.id);
    // Every membership change has finished, and the member list is what the nemesis made of it. (Before
    // the leader check: a removed member that did not stop is judged here, then stopped.)
    const membership = await judgeMembership(c, [...lostIds], options.recoveryMsMax);
    violations.push(...membership.violations);
    reasons.push(...membership.reasons);
    if (membership.members.length > 0) members = membership.members.length;
    // The nodes whose data is theirs and current: the members, but a node that lost its disk.
    const survivors = c.memberSlots().filter((id) => !lostIds.has(id));

    // Every node, restarted ones included, must rejoin: a member that never hears from the leader again
    // leaves the cluster one failure away from unavailability. The bound is twice the recovery bound,
    // which leaves a restarted process time to start on a loaded machine. (A node that lost its disk
    // has exited by now: only running nodes are waited for.)
    const rejoinMsMax = 2 * options.recoveryMsMax;
    const settled = await c.awaitStableLeader(rejoinMsMax);
    await sampler.stop();
    violations.push(...checkOneLeaderPerTerm(sampler.samples));
    if (settled === undefined) {
      const before = await c.peerCounters();
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const after = await c.peerCounters();
      violations.push({
        kind: "no-recovery",
        message:
          `not every node agreed on one leader within ${rejoinMsMax} ms after the workload ended (all faults healed at ${Math.round(healedMs - workStart)} ms):\n` +
          `${(await c.describe()).join("\n")}\npeer-link counters, 2 s apart:\n${before.join("\n")}\n${after.join("\n")}`,
        ops: [],
      });
    }
    const final = await finalRead(
      survivors.map((id) => c.clientUrl(id)),
      workload,
      clock,
      options.recoveryMsMax,
    );
    history = [...workload.ops];
    if ("error" in final) {
      reasons.push(
        `the final read of every key failed after healing (${final.error}), so lost writes could not be checked:\n${(await c.describe()).join("\n")}`,
      );
    } else {
      violations.push(...checkLostWrites(history, final.read));
    }

    const judged = await judgeHistories(c, survivors, watch, history, "error" in final ? undefined : final);
    violations.push(...judged.violations);
    reasons.push(...judged.reasons);
    watchEvents = judged.events;
    watchSource = judged.source;
    replicasCompared = judged.replicas;

    lin = checkChaosLinearizability(history);
    if (lin.violation !== undefined) violations.push(lin.violation);
    if (lin.kind === "budgetExceeded")
      reasons.push(
        `the linearizability search ran out of budget on key ${lin.key ?? "?"} (${lin.operations} ops); the run proves nothing about it`,
      );
    crashCount = 0;
    for (const crash of c.crashes) {
      // A wiped node's own exit was judged above (the refusal it must make, or the violation it is): its
      // first exit after the loss. (Replaced, it may run again, as another member, and crash like any.)
      if (losses.some((loss) => c.crashes.find((other) => other.id === loss.id && other.atMs >= loss.atMs) === crash)) continue;
      // A removed member's exit with code 7, a joining node's refused bootstrap fall-back.
      if (crash.expected !== undefined) {
        expectedExits++;
        continue;
      }
      crashCount++;
      violations.push({
        kind: "crash",
        message: `node ${crash.id} exited on its own ${crash.atMs} ms after the workload started (code ${crash.code}, signal ${crash.signal}); log tail:\n${crash.logTail}`,
        ops: [],
      });
    }
    if (historyStats(workload.ops).ok === 0) reasons.push("no operation succeeded, so the checks had nothing to judge");
    proxies = c.network.stats();
    phase("check", phaseStart);
  } catch (error) {
    if (!(error instanceof HarnessError))
      reasons.push(`harness error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    await samplesOf?.stop();
    run?.close();
    await cluster?.close().catch((error: unknown) => reasons.push(`stopping the cluster: ${describeError(error)}`));
    process.off("exit", killOnExit);
    reaper.close();
  }

  const injected = timeline.filter((e) => e.status === "healed" || e.status === "done");
  for (const e of timeline) if (e.status === "failed") reasons.push(`fault ${e.faultId} (${e.planned}) could not be injected: ${e.note}`);
  // A run whose faults all failed to apply tested nothing but a healthy cluster.
  if (plan.length > 0 && timeline.length > 0 && injected.length === 0)
    reasons.push(`no fault was injected (${plan.length} planned); the run proves nothing about faults`);
  const faultsByKind: Record<string, number> = {};
  for (const e of injected) faultsByKind[e.kind] = (faultsByKind[e.kind] ?? 0) + 1;
  const stats: RunStats = {
    ...emptyStats,
    workload: historyStats(history),
    linearizableOps: lin?.operations ?? 0,
    keys: lin?.keys ?? 0,
    searchSteps: lin?.searchSteps ?? 0,
    faultsInjected: injected.length,
    faultsByKind,
    crashes: crashCount ?? cluster?.crashes.length ?? 0,
    recoveryMs,
    watchEvents: watchEvents.length,
    watchSource,
    replicasCompared,
    diskLost,
    diskLostReplaced,
    members,
    expectedExits,
    durationMs: Date.now() - started,
    phases,
  };
  const harnessFailed = reasons.some(
    (r) => r.startsWith("harness error") || r.startsWith("the cluster elected no leader") || r.startsWith("raftkv serve"),
  );
  const verdict: Verdict =
    violations.length > 0 ? "fail" : harnessFailed ? "error" : reasons.some(isInconclusive) ? "inconclusive" : "pass";
  const result: RunResult = {
    options,
    dir,
    verdict,
    reasons,
    violations: capViolations(violations),
    violationCount: violations.length,
    stats,
    rerun,
    plan,
    timeline,
    history,
    workStartMs: workStart,
    healedMs,
    endpoints,
  };
  writeReport(result, { watchEvents, proxies, samples: samplesOf?.samples ?? [] });
  if (verdict === "pass" && !options.keepData) rmSync(dataDir, { recursive: true, force: true });
  return result;
}

interface HistoryVerdict {
  readonly violations: Violation[];
  readonly reasons: string[];
  /** The history the exactly-once check used, and where it came from. */
  readonly events: WatchRecord[];
  readonly source: string;
  /** How many nodes replayed their history. */
  readonly replicas: number;
}

/**
 * Exactly-once, replica agreement and watch completeness, from the history every surviving node (not
 * one that lost its disk) replays from revision 1 after healing (and the live watch, which must agree with it). Without a final read the
 * last revision is unknown, so no history can be called complete.
 */
async function judgeHistories(
  c: ChaosCluster,
  /** The nodes whose data is theirs: every node but those that lost their disk. */
  survivors: readonly number[],
  watch: WatchRecorder,
  history: readonly ChaosOp[],
  final: { read: FinalRead; revision: number } | undefined,
): Promise<HistoryVerdict> {
  const violations: Violation[] = [];
  const reasons: string[] = [];
  const finalRevision = final?.revision;
  const ackedRevisionMax = Math.max(0, ...history.map((op) => (op.outcome.status === "ok" ? op.outcome.output.revision : 0)));
  const upTo = finalRevision ?? Math.max(ackedRevisionMax, watch.lastRevision);
  await watch.stopAfter(upTo, REPLAY_TIMEOUT_MS);
  const replays = await Promise.all(
    survivors.map(async (id) => [id, await replayHistory(c.clientUrl(id), defaultWorkload.prefix, upTo, REPLAY_TIMEOUT_MS)] as const),
  );
  const replayed = new Map<number, readonly WatchRecord[]>();
  for (const [id, replay] of replays) {
    if (replay.kind === "ok") replayed.set(id, replay.events);
    else if (replay.kind === "compacted") {
      reasons.push(
        `node ${id}'s history was compacted up to revision ${replay.compactRevision}, so it could not be replayed and compared; a longer run needs a larger watch history`,
      );
    } else {
      // A node that agrees on the leader yet cannot deliver its history up to the final read's
      // revision has stopped applying (or diverged): that is the failure, not a reason to skip it.
      violations.push({
        kind: "no-recovery",
        message: `node ${id} could not replay its history up to revision ${upTo} after healing: ${replay.error}`,
        ops: [],
      });
    }
  }
  violations.push(...checkReplicas(replayed, upTo));
  if (final !== undefined) {
    const states = await compareNodeStates(
      [...replayed.keys()].map((id) => ({ id, endpoint: c.clientUrl(id) })),
      final.read.values,
      final.revision,
    );
    violations.push(...states.violations);
    reasons.push(...states.reasons);
  }
  const [first] = replayed;
  const events = first === undefined ? watch.events : [...first[1]];
  const source = first === undefined ? `live watch (${watch.end.kind})` : `replay of node ${first[0]} from revision 1`;
  const gaps = missingRevisions(events, upTo);
  if (gaps.count > 0) {
    violations.push({
      kind: "watch",
      message: `the ${source} misses ${gaps.count} of revisions 1..${upTo} (first: ${gaps.listed.join(", ")})`,
      ops: [],
    });
  }
  if (first !== undefined && watch.events.length > 0) {
    const labels = (id: number): string => (id === first[0] ? `node ${id}'s replay` : "the live watch");
    const live = new Map([
      [first[0], first[1]],
      [first[0] + 1_000_000, watch.events],
    ]);
    violations.push(...checkReplicas(live, Math.min(watch.lastRevision, upTo), labels).map((v) => ({ ...v, kind: "watch" as const })));
  }
  const complete = finalRevision !== undefined && finalRevision >= ackedRevisionMax && gaps.count === 0 && events.length > 0;
  violations.push(...checkExactlyOnce(history, { events, complete }));
  return { violations, reasons, events, source, replicas: replayed.size };
}

class HarnessError extends Error {}

function isInconclusive(reason: string): boolean {
  return (
    reason.startsWith("the linearizability search") ||
    reason.startsWith("no operation succeeded") ||
    reason.startsWith("the final read") ||
    reason.includes("history was compacted") ||
    reason.startsWith("no fault was injected")
  );
}
