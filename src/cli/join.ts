import { join } from "node:path";
import type { Member } from "../../gen/raftkv/v1/cluster_pb.js";
import type { ServerConfig } from "../config/index.js";
import { hasRaftState, readIdentity, type MemberView } from "../driver/index.js";
import type { Logger } from "../lib/logger.js";
import { sleep } from "../lib/sleep.js";
import { createRaftkvClient, RaftkvCallError, type RaftkvClient } from "../rpc/client/index.js";

/**
 * What `--join` decided for this start:
 * - `member`: start as usual (the data directory holds state, or this node is a founding member of a
 *   cluster that cannot be reached yet: the bootstrap check decides);
 * - `joined`: the cluster added this node as a learner under `id`; start empty, knowing `members`;
 * - `refused`: a voter of the cluster already has this node's peer URL, so this node is that voter and
 *   lost its data: it must be removed before it can join again (it is not started);
 * - `stopped`: the process was asked to stop while it was still trying to reach the cluster.
 */
export type JoinDecision =
  | { readonly kind: "member"; readonly id: number }
  | { readonly kind: "joined"; readonly id: number; readonly members: readonly MemberView[] }
  | { readonly kind: "refused"; readonly message: string }
  | { readonly kind: "stopped" };

/** Pauses between attempts to reach the cluster to join, doubling up to the second. */
const joinRetryMs = 500;
const joinRetryMsMax = 5_000;
/** How long one attempt may take: the client's own retries (leader changes, elections) run within it. */
const joinCallTimeoutMs = 10_000;
/** How long a founding member tries to reach a cluster to join before it bootstraps with its peers. */
const foundingJoinTimeoutMs = 2_000;

/**
 * Decides how a node started with `--join` comes up (see JoinDecision). It never adds a node twice: a
 * node that holds data (member.json names the id the cluster gave it) is a member already, and a learner
 * already registered at this node's peer URL is this node's own interrupted join (a learner has promised
 * nothing, so starting it again empty is safe). Retries until the cluster answers or `signal` aborts;
 * a founding member stops trying when it cannot reach anyone and bootstraps with the others instead.
 */
export async function decideJoin(config: ServerConfig, logger: Logger, signal: AbortSignal): Promise<JoinDecision> {
  const identity = await readIdentity(config.dataDir, { clusterId: config.clusterId });
  if (identity !== undefined || (await hasRaftState(join(config.dataDir, "raft")))) {
    return { kind: "member", id: identity?.memberId ?? config.id };
  }
  const founding = config.initialCluster.length > 1 || config.initialCluster.some((m) => m.peerUrl !== config.advertisePeerUrl);
  // A founding member of a new cluster finds nothing to join (its peers are starting too): it gives up
  // after one short try instead of the whole budget, so a new cluster forms without delay.
  const client = createRaftkvClient({
    endpoints: config.join,
    timeoutMs: founding ? foundingJoinTimeoutMs : joinCallTimeoutMs,
    attemptTimeoutMs: founding ? foundingJoinTimeoutMs : joinCallTimeoutMs,
  });
  try {
    for (let pauseMs = joinRetryMs; ; pauseMs = Math.min(joinRetryMsMax, pauseMs * 2)) {
      try {
        return await joinOnce(config, client, logger, signal);
      } catch (error) {
        if (signal.aborted) return { kind: "stopped" };
        const unreachable = error instanceof RaftkvCallError && error.reason === undefined;
        if (founding && unreachable) {
          logger.info("the cluster to join does not answer; starting as a founding member (--initial-cluster)", { join: config.join });
          return { kind: "member", id: config.id };
        }
        logger.warn("cannot join the cluster yet; retrying", { join: config.join, error: String(error), retryInMs: pauseMs });
        await sleep(pauseMs, signal);
      }
    }
  } finally {
    client.close();
  }
}

async function joinOnce(config: ServerConfig, client: RaftkvClient, logger: Logger, signal: AbortSignal): Promise<JoinDecision> {
  const { members } = await client.memberList({}, { signal });
  const mine = members.find((m) => m.peerUrls.includes(config.advertisePeerUrl));
  if (mine !== undefined && !mine.learner) {
    const founder = config.initialCluster.find((m) => m.peerUrl === config.advertisePeerUrl && BigInt(m.id) === mine.id);
    // A founding member that has not started yet, or that lost its data: the bootstrap check tells which.
    if (founder !== undefined) return { kind: "member", id: founder.id };
    return {
      kind: "refused",
      message: `member ${mine.id} (${mine.name}) is a voter at this node's peer URL ${config.advertisePeerUrl}, and this node's data directory is empty: it lost its data. Remove it first (raftkv member remove ${mine.id}), then start this node again with --join`,
    };
  }
  if (mine !== undefined) {
    logger.info("resuming an interrupted join: this node is already a learner", { id: Number(mine.id) });
    return { kind: "joined", id: Number(mine.id), members: members.map(toView) };
  }
  const added = await client.memberAdd(
    { id: 0n, name: config.name, peerUrls: [config.advertisePeerUrl], clientUrls: [config.advertiseClientUrl], learner: true },
    { signal },
  );
  const id = Number(added.member?.id ?? 0n);
  if (id === 0) throw new Error("the cluster added this node but did not say under which id");
  logger.info("added to the cluster as a learner", { id, members: added.members.map((m) => Number(m.id)) });
  return { kind: "joined", id, members: added.members.map(toView) };
}

/**
 * Once a joined learner has caught up, asks the leader to promote it; the leader refuses while it lags
 * (--promote-lag-entries) and the next attempt comes a second later. Ends once this node is a voter,
 * or when `signal` aborts.
 */
export async function promoteWhenCaughtUp(
  config: ServerConfig,
  id: number,
  isVoter: () => boolean,
  logger: Logger,
  signal: AbortSignal,
): Promise<void> {
  const client = createRaftkvClient({ endpoints: config.join, timeoutMs: joinCallTimeoutMs });
  try {
    while (!signal.aborted && !isVoter()) {
      try {
        await client.memberPromote({ id: BigInt(id) }, { signal });
        logger.info("promoted to voter", { id });
        return;
      } catch (error) {
        if (signal.aborted) return;
        // Refused while it lags, or no leader for a moment: the next attempt comes a second later.
        if (!(error instanceof RaftkvCallError && error.reason === "membership-refused")) {
          logger.warn("asking to be promoted failed; retrying", { error: String(error) });
        }
      }
      await sleep(1_000, signal);
    }
  } finally {
    client.close();
  }
}

function toView(m: Member): MemberView {
  return { id: Number(m.id), name: m.name, peerUrl: m.peerUrls[0] ?? "", clientUrl: m.clientUrls[0] ?? "", learner: m.learner };
}
