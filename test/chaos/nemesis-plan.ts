import { assert } from "../../src/lib/assert.js";
import { createPrng, type Prng } from "../../src/lib/prng.js";
import { partitionShapes, type PartitionShape } from "./partitions.js";

/**
 * The nemesis schedule of a run, decided entirely by the seed before the run starts: which faults, on
 * which nodes, when and for how long. What depends on the live cluster (who the leader is at that
 * moment) is named in the plan ("the leader") and resolved when the fault starts; the executed timeline
 * records the resolution.
 *
 * Faults may overlap (a kill during a partition, a pause under latency), which is where bugs hide; at
 * most `overlapMax` are active at once, and every fault heals before the run's end, except a disk loss,
 * which is for good.
 */
export type NemesisKind = "kill" | "pause" | "partition" | "latency" | "transfer" | "disk-loss" | "membership";

export const nemesisKinds: readonly NemesisKind[] = ["kill", "pause", "partition", "latency", "transfer", "disk-loss", "membership"];

/**
 * The kinds drawn again and again through a run. A disk loss is not among them: a member that lost its
 * disk is out until it is replaced, and a second one would take a majority's worth of promises (two of
 * three), which no Raft system survives. It is planned once per run instead (planNemesis). Membership
 * changes have a schedule of their own too: one at a time, seconds apart (planNemesis).
 */
const repeatedKinds: readonly NemesisKind[] = nemesisKinds.filter((k) => k !== "disk-loss" && k !== "membership");

/**
 * A membership change (issue 12):
 * - `replace`: remove a member (`MemberRemove`), wait for its process to exit with code 7, wipe its data
 *   directory and start it again with its flags plus `--join`: it joins as a learner under a new id and
 *   promotes itself once caught up;
 * - `grow`: start a node in an empty slot with `--join` (a member more);
 * - `shrink`: remove a member and leave its slot empty (only above the founding size).
 * A member that lost its disk (disk-loss) is replaced by the next membership change, whatever it was
 * planned as: remove it, then `--join`, the supported way back.
 */
export type MembershipOp = "replace" | "grow" | "shrink";

/** A node chosen by the plan, or whoever leads when the fault starts. */
export type Target = { readonly kind: "leader" } | { readonly kind: "node"; readonly id: number };

/** How a cut link behaves (tcp-proxy.ts): silently dropping, stalling, or refusing. */
export type CutMode = "drop" | "stall" | "reset";

export type FaultSpec =
  /** kill -9, restart on heal with the same data directory. */
  | { readonly kind: "kill"; readonly target: Target }
  /** SIGSTOP, SIGCONT on heal. */
  | { readonly kind: "pause"; readonly target: Target }
  /** `seed` decides the shape's random parts (the halves, the ring order) when it is applied. */
  | { readonly kind: "partition"; readonly shape: PartitionShape; readonly focus: Target; readonly mode: CutMode; readonly seed: number }
  /** Added latency on every link, or on the links to and from one node. */
  | { readonly kind: "latency"; readonly delayMs: number; readonly scope: { readonly kind: "all" } | Target }
  /** Asks the leader to hand over leadership (to a chosen node, or 0 for the most caught-up); instant. */
  | { readonly kind: "transfer"; readonly to: number }
  /**
   * kill -9, its data directory deleted, restarted at once with the same flags; instant, never healed.
   * The cluster exists, so the restarted node must refuse to start (exit code 6) and stays out for the
   * rest of the run. At most one per run.
   */
  | { readonly kind: "disk-loss"; readonly target: Target }
  /** A membership change; instant in the plan, it lasts until the change is done (seconds). */
  | { readonly kind: "membership"; readonly op: MembershipOp; readonly target: Target };

export interface PlannedFault {
  /** 1, 2, ... in start order. */
  readonly id: number;
  /** Milliseconds after the workload starts. */
  readonly startMs: number;
  /** When it heals; equal to startMs for instant faults (transfer). */
  readonly endMs: number;
  readonly spec: FaultSpec;
}

export interface NemesisPlanOptions {
  readonly seed: number;
  /** Node ids, e.g. [1, 2, 3]. */
  readonly ids: readonly number[];
  readonly kinds: readonly NemesisKind[];
  /** Length of the faulty period in ms; every fault heals by then. */
  readonly timeMs: number;
  /** Healthy time at the start, so the history begins with a working cluster. Default 1500. */
  readonly warmupMs?: number;
  /** Fault durations are drawn from this range. Default 1000..6000 ms. */
  readonly durationMsMin?: number;
  readonly durationMsMax?: number;
  /** Healthy gaps between faults. Default 300..2500 ms. */
  readonly gapMsMin?: number;
  readonly gapMsMax?: number;
  /** Most faults active at once. Default 2. */
  readonly overlapMax?: number;
  /** Most faults in one plan. Default 500. */
  readonly faultsMax?: number;
  /** Gaps between the planned starts of membership changes. Default 6000..10000 ms. */
  readonly membershipGapMsMin?: number;
  readonly membershipGapMsMax?: number;
}

/** Membership changes start in the first 60% of the run: each takes seconds, and must end before the checks. */
const membershipShare = 0.6;

const WARMUP_MS_DEFAULT = 1500;
const FAULTS_MAX_DEFAULT = 500;

export function parseNemesisKinds(text: string): readonly NemesisKind[] | { readonly error: string } {
  if (text.trim() === "all") return nemesisKinds;
  if (text.trim() === "none") return [];
  const kinds: NemesisKind[] = [];
  for (const part of text
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "")) {
    const kind = nemesisKinds.find((k) => k === part);
    if (kind === undefined)
      return {
        error: `unknown nemesis ${JSON.stringify(part)}; expected a comma-separated list of ${nemesisKinds.join(", ")}, or all, or none`,
      };
    if (!kinds.includes(kind)) kinds.push(kind);
  }
  if (kinds.length === 0) return { error: "no nemesis given; use none for a fault-free run" };
  return kinds;
}

export function planNemesis(options: NemesisPlanOptions): PlannedFault[] {
  const warmupMs = options.warmupMs ?? WARMUP_MS_DEFAULT;
  const durationMsMin = options.durationMsMin ?? 1000;
  const durationMsMax = options.durationMsMax ?? 6000;
  const gapMsMin = options.gapMsMin ?? 300;
  const gapMsMax = options.gapMsMax ?? 2500;
  const overlapMax = options.overlapMax ?? 2;
  const faultsMax = options.faultsMax ?? FAULTS_MAX_DEFAULT;
  assert(options.ids.length >= 1, "nemesis plan: needs nodes");
  assert(durationMsMin >= 1 && durationMsMin <= durationMsMax, "nemesis plan: bad duration range");
  assert(gapMsMin >= 0 && gapMsMin <= gapMsMax, "nemesis plan: bad gap range");
  assert(overlapMax >= 1, "nemesis plan: overlapMax must be at least 1");
  // A separate stream per purpose, so adding a kind does not shift the other choices of a seed.
  const root = createPrng(options.seed ^ 0x6e656d65);
  const timing = root.fork();
  const choice = root.fork();
  // Forked after the others, so that a disk loss leaves the rest of a seed's schedule as it was.
  const diskLoss = root.fork();
  // And after that one, so that membership changes leave the rest (disk loss included) as it was.
  const membership = root.fork();
  const plan: PlannedFault[] = [];
  const kinds = options.kinds.filter((k) => repeatedKinds.includes(k));
  let t = warmupMs;
  while (kinds.length > 0 && t < options.timeMs && plan.length < faultsMax) {
    const spec = drawFault(kinds, options.ids, choice);
    const instant = spec.kind === "transfer";
    const endMs = instant ? t : Math.min(options.timeMs, t + timing.int(durationMsMin, durationMsMax));
    plan.push({ id: plan.length + 1, startMs: t, endMs, spec });
    const active = plan.filter((f) => f.endMs > t).length;
    // Sometimes start the next fault while this one is still active, so faults compose.
    if (!instant && active < overlapMax && timing.chance(0.35)) {
      t += timing.int(Math.min(200, endMs - t), Math.max(200, endMs - t));
    } else {
      const busyUntil = Math.max(endMs, ...plan.map((f) => f.endMs));
      t = busyUntil + timing.int(gapMsMin, gapMsMax);
    }
  }
  const extra: PlannedFault[] = [];
  if (options.kinds.includes("disk-loss") && options.timeMs > warmupMs && plan.length < faultsMax) {
    // One disk loss, in the first 70% of the faulty period: the refusing node has time to ask the others
    // and exit, and the cluster runs on without it (under the other faults) until the end, or until a
    // membership change replaces it.
    const atMs = diskLoss.int(warmupMs, Math.max(warmupMs, Math.floor(0.7 * options.timeMs)));
    extra.push({ id: 0, startMs: atMs, endMs: atMs, spec: { kind: "disk-loss", target: drawTarget(options.ids, diskLoss) } });
  }
  if (options.kinds.includes("membership")) extra.push(...planMembership(options, warmupMs, membership));
  if (extra.length === 0) return plan;
  // Ids follow start order; at equal times the repeated fault already planned there comes first.
  const all = [...plan, ...extra].slice(0, faultsMax);
  const rank = (f: PlannedFault): number => (plan.includes(f) ? 0 : 1 + extra.indexOf(f));
  return all.sort((a, b) => a.startMs - b.startMs || rank(a) - rank(b) || a.id - b.id).map((fault, i) => ({ ...fault, id: i + 1 }));
}

/**
 * Membership changes, seconds apart, in the first 60% of the run (each takes seconds: a process exits,
 * another starts, catches up and is promoted; one that finds the previous one still in progress starts
 * when it ends). The plan follows the cluster's size:
 * at the founding size it replaces a member or grows by one; above it, it replaces or shrinks back. (When
 * the run skips a change, say a grow while a change was still in progress, the runner checks the size it
 * finds, and skips a shrink that would go below the founding size.)
 */
function planMembership(options: NemesisPlanOptions, warmupMs: number, prng: Prng): PlannedFault[] {
  const gapMsMin = options.membershipGapMsMin ?? 6000;
  const gapMsMax = options.membershipGapMsMax ?? 10_000;
  assert(gapMsMin >= 1 && gapMsMin <= gapMsMax, "nemesis plan: bad membership gap range");
  const lastMs = Math.floor(membershipShare * options.timeMs);
  const changes: PlannedFault[] = [];
  let grown = false;
  for (let t = warmupMs + prng.int(0, 2000); t <= lastMs && changes.length < 100; t += prng.int(gapMsMin, gapMsMax)) {
    const op: MembershipOp = grown ? (prng.chance(0.3) ? "replace" : "shrink") : prng.chance(0.55) ? "replace" : "grow";
    if (op === "grow") grown = true;
    if (op === "shrink") grown = false;
    changes.push({ id: 0, startMs: t, endMs: t, spec: { kind: "membership", op, target: drawTarget(options.ids, prng) } });
  }
  return changes;
}

function drawTarget(ids: readonly number[], prng: Prng): Target {
  // The leader is the most interesting victim; half of the faults aim at it.
  return prng.chance(0.5) ? { kind: "leader" } : { kind: "node", id: prng.pick(ids) };
}

function drawFault(kinds: readonly NemesisKind[], ids: readonly number[], prng: Prng): FaultSpec {
  const kind = prng.pick(kinds);
  switch (kind) {
    case "kill":
      return { kind, target: drawTarget(ids, prng) };
    case "pause":
      return { kind, target: drawTarget(ids, prng) };
    case "partition": {
      const shape = prng.pick(partitionShapes);
      const mode: CutMode = prng.chance(0.5) ? "drop" : prng.chance(0.5) ? "stall" : "reset";
      return { kind, shape, focus: drawTarget(ids, prng), mode, seed: prng.int(0, 0x7fffffff) };
    }
    case "latency": {
      const delayMs = prng.pick([20, 50, 100, 200, 400]);
      return { kind, delayMs, scope: prng.chance(0.5) ? { kind: "all" } : drawTarget(ids, prng) };
    }
    case "transfer":
      return { kind, to: prng.chance(0.3) ? 0 : prng.pick(ids) };
    case "disk-loss":
      return { kind, target: drawTarget(ids, prng) };
    case "membership":
      return { kind, op: "replace", target: drawTarget(ids, prng) };
  }
}

export function describeTarget(target: Target): string {
  return target.kind === "leader" ? "the leader" : `node ${target.id}`;
}

export function describeFault(spec: FaultSpec): string {
  switch (spec.kind) {
    case "kill":
      return `kill -9 ${describeTarget(spec.target)}, restart on heal`;
    case "pause":
      return `SIGSTOP ${describeTarget(spec.target)}, SIGCONT on heal`;
    case "partition":
      return `partition ${spec.shape} around ${describeTarget(spec.focus)} (${spec.mode})`;
    case "latency":
      return `+${spec.delayMs} ms latency on ${spec.scope.kind === "all" ? "every link" : `the links of ${describeTarget(spec.scope)}`}`;
    case "transfer":
      return `transfer leadership to ${spec.to === 0 ? "the most caught-up voter" : `node ${spec.to}`}`;
    case "disk-loss":
      return `kill -9 ${describeTarget(spec.target)}, delete its data directory, restart it (it must refuse: exit code 6)`;
    case "membership":
      switch (spec.op) {
        case "replace":
          return `replace ${describeTarget(spec.target)}: remove it (exit code 7), wipe it, start it again with --join (a new member id)`;
        case "grow":
          return "grow: start a node in an empty slot with --join (a learner, then a voter)";
        case "shrink":
          return `shrink: remove ${describeTarget(spec.target)} (exit code 7) and leave its slot empty`;
      }
  }
}
