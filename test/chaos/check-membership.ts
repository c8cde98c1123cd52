import type { Member } from "../../gen/raftkv/v1/cluster_pb.js";
import { exitCodes } from "../../src/cli/exit-codes.js";
import type { ChaosCluster } from "./cluster.js";
import type { Violation } from "./violation.js";

/**
 * After every fault healed, the membership the cluster reports must be the one the membership nemesis
 * made (issue 12), and every change must have finished:
 * - a member the harness removed is gone from the member list, and its process stopped by itself with
 *   exit code 7 (one still running, or one that exited otherwise, is a finding: a removed member that
 *   keeps running still answers clients and peers from a membership it is no longer part of);
 * - every member in the list is held by a node of the harness, at that node's peer URL, and is a voter
 *   (a learner that joined must have caught up and promoted itself by now);
 * - every node the harness runs holds a member of the list (a node that started with --join and was
 *   never added, or that was removed without knowing, is not part of the cluster it serves for).
 * A node that lost its disk and was not replaced is still a member (a voter that will never answer) and
 * runs no process: that is the disk-loss nemesis's business.
 */
export interface MembershipVerdict {
  readonly violations: readonly Violation[];
  /** Why the membership could not be judged (no leader answered MemberList: the recovery check says so). */
  readonly reasons: readonly string[];
  /** The member ids listed at the end, ascending. */
  readonly members: readonly number[];
}

const pollMs = 250;

/**
 * Waits (up to `timeoutMs`) for the member list to match the harness's record, then judges. `lost`:
 * nodes that lost their disk and were not replaced.
 */
export async function judgeMembership(cluster: ChaosCluster, lost: readonly number[], timeoutMs: number): Promise<MembershipVerdict> {
  const violations: Violation[] = [];
  const reasons: string[] = [];
  const deadline = Date.now() + timeoutMs;
  let listed: Member[] | undefined;
  let problems: string[] = [];
  while (Date.now() < deadline) {
    const read = await cluster.members(5000).catch(() => undefined);
    if (read !== undefined) {
      listed = read;
      cluster.adoptJoined(read);
      problems = differences(cluster, read, lost);
      if (problems.length === 0) break;
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  if (listed === undefined) {
    reasons.push(`the member list could not be read within ${timeoutMs} ms after every fault healed, so the membership was not checked`);
  } else if (problems.length > 0) {
    violations.push({
      kind: "membership",
      message:
        `${timeoutMs} ms after every fault healed, the cluster's membership still differs from what the membership nemesis did: ${problems.join("; ")}\n` +
        `member list: ${listed.map(describeMember).join(", ")}\n${(await cluster.describe()).join("\n")}`,
      ops: [],
    });
  }
  // A removed member's process that is still running is stopped, so that the rest of the checks (one
  // leader, replicas) see only the members.
  for (const id of cluster.ids) {
    const member = cluster.memberOf(id);
    const node = cluster.node(id);
    if (member === undefined || !cluster.removalsRequested().has(member)) continue;
    if (listed === undefined || listed.some((m) => Number(m.id) === member)) continue;
    if (node.state === "running" || node.state === "paused") await node.kill();
    cluster.forgetRemoved(id);
  }
  return { violations, reasons, members: (listed ?? []).map((m) => Number(m.id)).sort((a, b) => a - b) };
}

function describeMember(m: Member): string {
  return `${m.id}${m.learner ? " (learner)" : ""} ${m.name} ${m.peerUrls.join(" ")}`;
}

/** What differs between the member list and the harness's record; empty when they agree. */
function differences(cluster: ChaosCluster, listed: readonly Member[], lost: readonly number[]): string[] {
  const problems: string[] = [];
  const byId = new Map(listed.map((m) => [Number(m.id), m]));
  for (const m of listed) {
    const id = Number(m.id);
    const slot = cluster.slotOf(id);
    if (slot === undefined || cluster.memberOf(slot) !== id) {
      problems.push(
        `member ${id} (${m.peerUrls.join(" ")}) is held by no node of the harness${cluster.removalsRequested().has(id) ? " (its removal was asked for)" : ""}`,
      );
      continue;
    }
    if (!m.peerUrls.includes(cluster.peerUrl(slot)))
      problems.push(`member ${id}'s peer URLs ${m.peerUrls.join(" ")} are not node ${slot}'s`);
    if (m.learner) problems.push(`member ${id} (node ${slot}) is still a learner`);
  }
  for (const slot of cluster.ids) {
    const member = cluster.memberOf(slot);
    const state = cluster.node(slot).state;
    const up = state === "running" || state === "paused";
    if (member !== undefined && !byId.has(member)) {
      problems.push(
        cluster.removalsRequested().has(member)
          ? `node ${slot} still runs member ${member}, which was removed: it did not stop with exit code ${exitCodes.removed}`
          : `node ${slot}'s member ${member} is not in the member list`,
      );
    }
    if (member === undefined && up) problems.push(`node ${slot} runs but holds no member (it started with --join and was not added)`);
    if (member !== undefined && !up && !lost.includes(slot)) problems.push(`node ${slot} (member ${member}) is not running`);
  }
  return problems;
}
