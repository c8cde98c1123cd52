import type { Cluster } from "./cluster.js";
import { bulkPut, stateKey } from "./load.js";
import { say } from "./phases.js";
import { mb } from "./report.js";

/** --sustained N: N Puts over a fixed set of keys, with each node's disk and memory every 10%. */

export interface Checkpoint {
  readonly percent: number;
  readonly puts: number;
  readonly seconds: number;
  /** Puts per second since the previous checkpoint. */
  readonly putsPerSecond: number | null;
  /** du of each node's data directory, by node name. */
  readonly diskBytes: Record<string, number>;
  /** VmRSS of each node, by node name. */
  readonly rss: Record<string, number | null>;
}

export async function sustained(cluster: Cluster, puts: number, keys: number, value: Uint8Array, inflight: number): Promise<Checkpoint[]> {
  const checkpoints: Checkpoint[] = [];
  const take = (percent: number, done: number, elapsedMs: number): void => {
    const previous = checkpoints.at(-1);
    const diskBytes: Record<string, number> = {};
    const rss: Record<string, number | null> = {};
    for (const node of cluster.nodes) {
      diskBytes[node.name] = cluster.diskBytes(node.id);
      rss[node.name] = cluster.memory(node.id)?.rss ?? null;
    }
    const seconds = elapsedMs / 1000;
    const putsPerSecond =
      previous === undefined || seconds <= previous.seconds ? null : (done - previous.puts) / (seconds - previous.seconds);
    const checkpoint = { percent, puts: done, seconds, putsPerSecond, diskBytes, rss };
    checkpoints.push(checkpoint);
    say(
      `sustained ${String(percent).padStart(3)}%: ${done} Puts, ${seconds.toFixed(1)} s` +
        `${putsPerSecond === null ? "" : ` (${putsPerSecond.toFixed(0)} Puts/s)`}; ` +
        cluster.nodes.map((node) => `${node.name} disk ${mb(diskBytes[node.name])} RSS ${mb(rss[node.name])}`).join(", "),
    );
  };
  take(0, 0, 0);
  let next = 1;
  await bulkPut(
    cluster,
    puts,
    (i) => stateKey(i % keys),
    value,
    inflight,
    (done, elapsedMs) => {
      // Every 10% of the Puts; the sync reads of /proc and the directories pause the client a moment.
      while (next <= 10 && done >= Math.ceil((puts * next) / 10)) take(next++ * 10, done, elapsedMs);
    },
  );
  return checkpoints;
}
