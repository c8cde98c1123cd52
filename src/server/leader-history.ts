import type { KvNode } from "../driver/types.js";
import type { LeaderChangeView } from "../rpc/cluster-service.js";

/** How often the node's leader is looked at: elections here take hundreds of milliseconds. */
const sampleMs = 250;
/** How many changes are kept; the page shows the recent ones, not a log. */
const changesMax = 20;

export interface LeaderHistory {
  /** The changes seen so far, oldest first. */
  changes(): readonly LeaderChangeView[];
  stop(): void;
}

/**
 * The leader changes this node sees, for ClusterStatus and the cluster page. Sampled rather than
 * reported by the driver: the driver has no hook for it that the client app can reach, and a sample
 * four times a second costs nothing. A change shorter than a sample can be missed; the term in the
 * next change still shows that one happened.
 *
 * Recorded: every new leader, and losing the leader once (not each failed election's term after it).
 */
export function startLeaderHistory(node: Pick<KvNode, "status">): LeaderHistory {
  const changes: LeaderChangeView[] = [];
  let last: { term: number; leader: number } | undefined;
  const sample = (): void => {
    const { term, leader } = node.status();
    const changed = last === undefined ? leader !== 0 : leader !== last.leader || (leader !== 0 && term !== last.term);
    last = { term, leader };
    if (!changed) return;
    changes.push({ term, leader, seenUnixMs: Date.now() });
    if (changes.length > changesMax) changes.shift();
  };
  sample();
  const timer = setInterval(sample, sampleMs);
  timer.unref();
  return {
    changes: () => changes,
    stop: () => clearInterval(timer),
  };
}
