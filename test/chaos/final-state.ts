import { assert } from "../../src/lib/assert.js";
import { createRaftkvClient, type RaftkvClient } from "../../src/rpc/client/index.js";
import type { FinalRead } from "./check-lost-writes.js";
import type { ChaosCluster } from "./cluster.js";
import type { Violation } from "./violation.js";
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
export async function recover(
  cluster: ChaosCluster,
  clock: RunClock,
  workload: Workload,
  recoveryMsMax: number,
): Promise<number | undefined> {
  const startMs = clock.nowMs();
  let probe = 0;
  while (clock.nowMs() - startMs < recoveryMsMax) {
    const leader = await cluster.leader();
    if (leader !== undefined) {
      probe++;
      // Straight to the leader that answered: recovery is about the cluster, not about a client's
      // luck in finding it. (By its own URL: it may be a node that joined, which the workload's
      // endpoints do not name.)
      const ok = await workload.probeWrite(HARNESS_WORKER, `probe.${probe}`, cluster.clientUrl(leader.id));
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
  const deadline = Date.now() + budgetMs;
  let lastError = "no attempt";
  try {
    for (let attempt = 0; attempt < FINAL_READ_ATTEMPTS_MAX && Date.now() < deadline; attempt++) {
      const client = clients[attempt % clients.length];
      const endpoint = endpoints[attempt % endpoints.length] ?? "";
      assert(client !== undefined, "final read: a client per endpoint");
      const callUs = clock.nowUs();
      try {
        const scan = await scanPrefix(client, false);
        if (scan === undefined) {
          lastError = "the pages of the scan came from different revisions";
          continue;
        }
        const endUs = clock.nowUs();
        const values = new Map<string, string | null>(scan.values);
        for (const key of workload.keySpace.keys()) if (!values.has(key)) values.set(key, null);
        workload.recordFinalReads(HARNESS_WORKER, values, callUs, endUs, scan.revision, endpoint);
        return { read: { values, callUs }, revision: scan.revision };
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

/**
 * One scan of the workload's prefix. Pages of one scan may come from different revisions; a scan is
 * accepted only when every page has the same revision (one point in time), else undefined.
 */
async function scanPrefix(
  client: RaftkvClient,
  serializable: boolean,
): Promise<{ values: Map<string, string>; revision: number } | undefined> {
  const prefix = new TextEncoder().encode(defaultWorkload.prefix);
  const decoder = new TextDecoder();
  const values = new Map<string, string>();
  let continueKey: Uint8Array | undefined;
  let revision: bigint | undefined;
  for (let page = 0; page < RANGE_PAGES_MAX; page++) {
    const response = await client.range({ key: prefix, prefix: true, serializable, ...(continueKey === undefined ? {} : { continueKey }) });
    const pageRevision = response.header?.revision ?? 0n;
    if (revision !== undefined && pageRevision !== revision) return undefined;
    revision = pageRevision;
    for (const kv of response.kvs) values.set(decoder.decode(kv.key), decoder.decode(kv.value));
    if (!response.more) break;
    continueKey = response.nextKey;
  }
  return { values, revision: Number(revision ?? 0n) };
}

/**
 * Each node's own state (a serializable scan, answered from its local store), compared with the final
 * linearizable read. Called once every node has replayed its history up to the final read's revision,
 * so each has applied at least that far; nothing writes after the final read. Replica agreement is
 * otherwise judged on change histories only, which a snapshot restore that corrupted the records but
 * kept the history would pass.
 */
export async function compareNodeStates(
  nodes: readonly { readonly id: number; readonly endpoint: string }[],
  final: ReadonlyMap<string, string | null>,
  finalRevision: number,
): Promise<{ violations: Violation[]; reasons: string[] }> {
  const violations: Violation[] = [];
  const reasons: string[] = [];
  for (const node of nodes) {
    const client = createRaftkvClient({ endpoints: [node.endpoint], timeoutMs: 5000, attemptTimeoutMs: 2000 });
    try {
      const scan = await scanPrefix(client, true);
      if (scan === undefined || scan.revision !== finalRevision) {
        reasons.push(
          `node ${node.id}'s own state was not compared: it answered at revision ${scan?.revision ?? "mixed"}, the final read was at ${finalRevision}`,
        );
        continue;
      }
      const differences: string[] = [];
      for (const [key, value] of final) {
        const local = scan.values.get(key) ?? null;
        if (local !== value) differences.push(`${key}: node has ${local ?? "(absent)"}, final read ${value ?? "(absent)"}`);
      }
      for (const key of scan.values.keys()) if (!final.has(key)) differences.push(`${key}: only on the node`);
      if (differences.length > 0) {
        violations.push({
          kind: "replica-divergence",
          message: `node ${node.id}'s own state at revision ${finalRevision} differs from the final read: ${differences.slice(0, 5).join("; ")}${differences.length > 5 ? ` (+${differences.length - 5} more)` : ""}`,
          ops: [],
        });
      }
    } catch (error) {
      reasons.push(`node ${node.id}'s own state was not compared: ${describeError(error)}`);
    } finally {
      client.close();
    }
  }
  return { violations, reasons };
}
