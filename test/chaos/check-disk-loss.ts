import { NodeRole } from "../../gen/raftkv/v1/cluster_pb.js";
import { bootstrapRefusal, joinRefusal, type ChaosCluster, type CrashRecord } from "./cluster.js";
import type { Violation } from "./violation.js";

/**
 * The disk-loss nemesis killed a node, deleted its data directory and started it again with the same
 * flags. Its cluster exists, so the only right outcome is a refusal: `raftkv serve` exits by itself
 * with code 6 and says "refusing to start ... the cluster already exists" (issue 9). A node that
 * started instead would vote again having forgotten its votes and acknowledgements, and could let the
 * cluster lose acknowledged writes; one that exited otherwise, or was still undecided once every fault
 * had healed, is a finding too.
 *
 * The refusing node is out for the rest of the run, unless the membership nemesis replaces it (removes
 * its member, starts it empty with --join): it counts as unavailable, not as a crash, and it stays out of
 * the replica comparison (its data is gone) until replaced.
 */
export interface DiskLoss {
  readonly id: number;
  /** The nemesis fault that took the disk. */
  readonly faultId: number;
  /** When, in ms after the workload started (the clock of the timeline and of crash records). */
  readonly atMs: number;
}

export interface DiskLossVerdict {
  /** Nodes that refused to start as they must. */
  readonly refused: readonly number[];
  readonly violations: readonly Violation[];
}

/** raftkv serve's exit code for "my data directory is empty but the cluster exists" (src/cli/exit-codes.ts). */
export const EXIT_DATA_LOST = 6;
/**
 * The two ways raftkv refuses: the bootstrap check of a node started with its founding flags, and, for a
 * node started with --join (one that a membership change replaced earlier in the run), the join finding
 * a voter at its own peer URL.
 */
const refusals = [bootstrapRefusal, joinRefusal];
const POLL_MS = 100;

/**
 * Waits (up to `timeoutMs`, counted from now: call it once every fault has healed, when every other
 * member can answer the node) for each node that lost its disk to exit, and judges how it did. A node
 * still running then is stopped once judged, so the rest of the run's checks see only the others.
 */
export async function judgeDiskLosses(cluster: ChaosCluster, losses: readonly DiskLoss[], timeoutMs: number): Promise<DiskLossVerdict> {
  const refused: number[] = [];
  const violations: Violation[] = [];
  const deadline = Date.now() + timeoutMs;
  for (const loss of losses) {
    const node = cluster.node(loss.id);
    // Its first exit after the loss is its answer. (A membership change may have replaced it since: then
    // it runs again, as another member, and its refusal is on record.)
    const exitOf = (): CrashRecord | undefined => cluster.crashes.find((crash) => crash.id === loss.id && crash.atMs >= loss.atMs);
    while (exitOf() === undefined && (node.state === "running" || node.state === "paused") && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const what = `node ${loss.id}, restarted on an empty data directory ${Math.round(loss.atMs)} ms after the workload started (fault ${loss.faultId})`;
    const exit = exitOf();
    if (exit !== undefined) {
      if (exit.code === EXIT_DATA_LOST && refusals.some((refusal) => refusal.test(exit.logTail))) {
        refused.push(loss.id);
        continue;
      }
      violations.push({
        kind: "disk-loss",
        message: `${what}, exited ${exit.atMs} ms after the workload started with code ${exit.code} (signal ${exit.signal}), not with the refusal (code ${EXIT_DATA_LOST}, "refusing to start ... the cluster already exists", or with --join "... is a voter at this node's peer URL"); log tail:\n${exit.logTail}`,
        ops: [],
      });
      continue;
    }
    if (node.state !== "running" && node.state !== "paused") {
      // Stopped by someone else than itself (the harness never does): nothing to judge it by.
      violations.push({ kind: "disk-loss", message: `${what}, is ${node.state} without an exit of its own`, ops: [] });
      continue;
    }
    const answer = (await cluster.statusAll())[cluster.ids.indexOf(loss.id)];
    const status = answer?.status?.status;
    violations.push({
      kind: "disk-loss",
      message:
        status !== undefined
          ? `${what}, started and serves (${NodeRole[status.role] ?? status.role} in term ${status.term}, applied ${status.appliedIndex}) instead of refusing with exit code ${EXIT_DATA_LOST}: ` +
            `it votes again having forgotten its votes and acknowledgements (issue 9); log tail:\n${node.logTail()}`
          : `${what}, had not decided ${timeoutMs} ms after every fault healed (still waiting for the other members?); log tail:\n${node.logTail()}`,
      ops: [],
    });
    await node.kill();
  }
  return { refused, violations };
}
