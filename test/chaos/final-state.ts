import { assert } from "../../src/lib/assert.js";
import { createRaftkvClient } from "../../src/rpc/client/index.js";
import type { FinalRead } from "./check-lost-writes.js";
import type { ChaosCluster } from "./cluster.js";
import { defaultWorkload, describeError, type RunClock, type Workload } from "./workload.js";

/**
 * The end of a run, after every fault healed: recovery (a leader and an acknowledged write within a
 * bound) and the final state (one linearizable read of every key). Both are recorded in the history as
 * ops of the harness's own worker, so the checkers judge them like any other op.
 */

/** The worker id of the harness's probes and final reads. */
export const HARNESS_WORKER = 0;
const FINAL_READ_ATTEMPTS_MAX = 20;
const RANGE_PAGES_MAX = 10_000;

/**
 * Polls until a leader answers and a write succeeds (recorded in the history like any op), bounded by
 * `recoveryMsMax`. Returns the time it took, or undefined.
 */
export async function recover(cluster: ChaosCluster, clock: RunClock, workload: Workload, recoveryMsMax: number): Promise<number | undefined> {
  const startMs = clock.nowMs();
  let probe = 0;
  while (clock.nowMs() - startMs < recoveryMsMax) {
    const leader = await cluster.leader();
    if (leader !== undefined) {
      probe++;
      // Straight to the leader that answered: recovery is about the cluster, not about a client's
      // luck in finding it.
      const ok = await workload.probeWrite(HARNESS_WORKER, `probe.${probe}`, leader.id - 1);
      if (ok) return clock.nowMs() - startMs;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

/**
 * One linearizable read of every key (a paged Range of the prefix), recorded as a get per key with the
 * Range's invocation and completion times: one linearizable read observes every key at one point.
 */
export async function finalRead(
  endpoints: readonly string[],
  workload: Workload,
  clock: RunClock,
  budgetMs: number,
): Promise<{ read: FinalRead; revision: number } | { error: string }> {
  // One client per node, tried in turn: a node that hangs must not take every attempt.
  const clients = endpoints.map((endpoint) => createRaftkvClient({ endpoints: [endpoint], timeoutMs: 5000, attemptTimeoutMs: 2000 }));
  const prefix = new TextEncoder().encode(defaultWorkload.prefix);
  const decoder = new TextDecoder();
  const deadline = Date.now() + budgetMs;
  let lastError = "no attempt";
  try {
    for (let attempt = 0; attempt < FINAL_READ_ATTEMPTS_MAX && Date.now() < deadline; attempt++) {
      const client = clients[attempt % clients.length];
      const endpoint = endpoints[attempt % endpoints.length] ?? "";
      assert(client !== undefined, "final read: a client per endpoint");
      const callUs = clock.nowUs();
      try {
        // Pages of one scan may come from different revisions; a scan is accepted only when every page
        // has the same revision, so the whole read is one point in time.
        const values = new Map<string, string | null>();
        let continueKey: Uint8Array | undefined;
        let revision: bigint | undefined;
        let consistent = true;
        for (let page = 0; page < RANGE_PAGES_MAX; page++) {
          const response = await client.range({ key: prefix, prefix: true, ...(continueKey === undefined ? {} : { continueKey }) });
          const pageRevision = response.header?.revision ?? 0n;
          if (revision !== undefined && pageRevision !== revision) consistent = false;
          revision = pageRevision;
          for (const kv of response.kvs) values.set(decoder.decode(kv.key), decoder.decode(kv.value));
          if (!response.more) break;
          continueKey = response.nextKey;
        }
        if (!consistent) {
          lastError = "the pages of the scan came from different revisions";
          continue;
        }
        const endUs = clock.nowUs();
        for (const key of workload.keySpace.keys()) if (!values.has(key)) values.set(key, null);
        workload.recordFinalReads(HARNESS_WORKER, values, callUs, endUs, Number(revision ?? 0n), endpoint);
        return { read: { values, callUs }, revision: Number(revision ?? 0n) };
      } catch (error) {
        lastError = `${endpoint}: ${describeError(error)}`;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    return { error: lastError };
  } finally {
    for (const client of clients) client.close();
  }
}
