import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeRole } from "../../gen/raftkv/v1/cluster_pb.js";
import type { PutResponse } from "../../gen/raftkv/v1/kv_pb.js";
import { assert } from "../../src/lib/assert.js";
import { RaftkvCallError } from "../../src/rpc/client/index.js";
import type { CrashRecord } from "../chaos/cluster.js";
import { cutBetweenGroups } from "../chaos/partitions.js";
import { bytes, text } from "./bytes.js";
import { retryUnavailable, sleep, startE2eCluster, waitFor, type E2eCluster } from "./e2e-cluster.js";
import { Timings } from "./timings.js";

/**
 * Issue 9, on real processes: a member that lost its data directory came back empty, voted again, and
 * acknowledged writes were lost. The story of the issue, step by step, on one 3-node cluster:
 *  1. A leads; B is cut off from A and C, so B falls behind;
 *  2. one key is written 50 times, every write acknowledged by the quorum A + C;
 *  3. C is killed (kill -9), its data directory deleted, and C started again with the same flags: it
 *     asks the others what they hold, A answers that the cluster exists, and C exits by itself with
 *     code 6 instead of joining empty (before the fix it bootstrapped as a new member);
 *  4. A is killed and B reconnected: B is the only member left running, and with C refusing it cannot
 *     gather a quorum. The cluster is unavailable, and that is the point: before the fix B and the empty
 *     C elected a leader whose log lacked the 50 writes, and a linearizable read returned nothing;
 *  5. A (its data intact) comes back: A and B elect a leader, and the 50th write is read.
 * Then the case where a wiped member cannot ask anyone: every peer is down. It must wait (never guess
 * "new"), serve nothing and write nothing, and refuse as soon as one peer answers.
 *
 * The steps share the cluster and its roles, so read the first failure.
 *
 * Against the code before the fix (judgeBootstrap always "new" and RaftService accepting any
 * incarnation) this file fails at step 3 (C serves), step 4 (B and the empty C elect a leader and both
 * answer the read with (absent) at revision 0) and step 5 (the 50th write is gone for good). Step 4
 * shows the loss only if A dies before it replicates its log to the empty C again; it kills A as soon
 * as C serves, and the writes were lost in every such run. With the bootstrap check alone disabled the
 * incarnation refusal does not save them either: B never heard from C before C lost its disk
 * (followers do not message each other), so B has no incarnation of C to compare with.
 */
const timings = new Timings();
let fixture: E2eCluster | undefined;

function cluster(): E2eCluster {
  assert(fixture !== undefined, "the cluster did not start (see beforeAll)");
  return fixture;
}

const key = "issue9/key";
const writes = 50;
const lastValue = `v${writes}`;
/** The network fault id of B's isolation. */
const isolateB = 1;
/**
 * How long step 4 watches the cluster with A dead and B reconnected: many election timeouts (200 to
 * 400 ms here) plus the time B's peer links take to reconnect, so that a B + C majority, if one could
 * form, would have formed and served reads.
 */
const unavailableWatchMs = 5_000;

/** The roles of the story, fixed in step 1 (node ids). */
interface Roles {
  readonly a: number;
  readonly b: number;
  readonly c: number;
}
let roles: Roles | undefined;
/** The acknowledgement of the 50th write. */
let lastPut: PutResponse | undefined;

function story(): { roles: Roles; lastPut: PutResponse } {
  assert(roles !== undefined && lastPut !== undefined, "step 1 (the acknowledged writes) did not finish (see its failure)");
  return { roles, lastPut };
}

/** The log of node `id` written since byte `offset` (a start's own lines; the file keeps every start). */
function logSince(id: number, offset: number): string {
  return readFileSync(cluster().cluster.logPath(id)).subarray(offset).toString("utf8");
}

function logSize(id: number): number {
  try {
    return statSync(cluster().cluster.logPath(id)).size;
  } catch {
    return 0;
  }
}

/** Every file under node `id`'s data directory, relative to it. */
function dataFiles(id: number): string[] {
  const root = cluster().cluster.dataDirOf(id);
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.push(relative(root, path));
    }
  };
  walk(root);
  return files.sort();
}

/** The exit of node `id` recorded after `since` crash records, if any. */
function exitAfter(id: number, since: number): CrashRecord | undefined {
  return cluster()
    .cluster.crashes.slice(since)
    .find((crash) => crash.id === id);
}

/**
 * Starts the wiped node `id` again and waits for what it does with its empty data directory: exit by
 * itself (the fix: code 6), or open and serve (what the old code did).
 */
async function restartWiped(id: number): Promise<{ readonly exited: CrashRecord } | { readonly serving: true }> {
  const c = cluster();
  const since = c.cluster.crashes.length;
  c.restart(id);
  return waitFor(
    `node ${id} to exit or to serve`,
    30_000,
    async () => {
      const exited = exitAfter(id, since);
      if (exited !== undefined) return { exited };
      // Its client port listens only once its node has opened.
      await c.status(id);
      return { serving: true as const };
    },
    () => c.describe(),
  );
}

/**
 * One Put through the bundled client, called again (for up to 30 s) only when its failure proves it was
 * not applied (no leader during an election, which a loaded 2-core CI machine can drag past the
 * client's own 10 s budget). A write of unknown outcome is not retried: applied twice it would change
 * the key's version, which step 5 checks.
 */
async function putNotAppliedRetried(c: E2eCluster, k: string, value: string): Promise<PutResponse> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await c.client.put({ key: bytes(k), value: bytes(value) });
    } catch (error) {
      if (!(error instanceof RaftkvCallError) || error.outcomeUnknown || Date.now() >= deadline) throw error;
    }
  }
}

beforeAll(async () => {
  fixture = await timings.time("start 3 nodes and elect", () => startE2eCluster());
}, 60_000);

afterAll(async () => {
  await fixture?.close();
  console.log(timings.summary("e2e data loss (issue 9)"));
});

describe("issue 9: a member that lost its data directory while the cluster went on", () => {
  it("1-2. acknowledges 50 writes of one key through the quorum A + C while B is cut off", async () => {
    const c = cluster();
    const leader = await c.stableLeader();
    const [b, cc] = c.ids.filter((id) => id !== leader.id);
    assert(b !== undefined && cc !== undefined, "3 nodes");
    const r: Roles = { a: leader.id, b, c: cc };
    // Both directions, dropped silently: B neither hears nor is heard, as behind a broken switch.
    c.cluster.network.add(isolateB, { kind: "cut", mode: "drop", links: cutBetweenGroups([[r.b], [r.a, r.c]]) });

    let put: PutResponse | undefined;
    await timings.time(`${writes} acknowledged writes without B`, async () => {
      for (let i = 1; i <= writes; i++) {
        put = await putNotAppliedRetried(c, key, `v${i}`);
        // Only A or C can lead here (a loaded machine may move the leadership between them): with B cut
        // off, every acknowledged write is on both A and C, which is all the story needs.
        expect(put.header?.memberId, `write ${i} acknowledged by node ${put.header?.memberId}`).not.toBe(BigInt(r.b));
      }
    });
    assert(put !== undefined, "50 writes");
    lastPut = put;
    roles = r;

    // C holds every write on its disk (it is about to lose them); B holds none of them.
    const onC = await waitFor(`node ${r.c} to apply the 50th write`, 10_000, async () => {
      const got = await c.kv(r.c).get({ key: bytes(key), serializable: true });
      return text(got.kv?.value) === lastValue ? got : undefined;
    });
    expect(onC.kv?.modRevision).toBe(put.header?.revision);
    const onB = await c.kv(r.b).get({ key: bytes(key), serializable: true });
    expect(onB.kv, `node ${r.b} (cut off) has the key`).toBeUndefined();
  });

  it("3. kill -9 of C, its data directory deleted, restart: C refuses to start (exit code 6), as A says the cluster exists", async () => {
    const c = cluster();
    const { roles: r } = story();
    await c.cluster.node(r.c).kill();
    c.cluster.wipe(r.c);
    const logFrom = logSize(r.c);
    const outcome = await timings.time("restart of the wiped C -> its decision", () => restartWiped(r.c));
    const log = logSince(r.c, logFrom);
    // Before the fix the empty C bootstrapped as a new member and served; the next steps show what
    // that cost.
    expect(
      "exited" in outcome ? outcome.exited : undefined,
      `node ${r.c} started empty and serves (issue 9); its log:\n${log}`,
    ).toBeDefined();
    if (!("exited" in outcome)) return;
    expect(outcome.exited.code, `node ${r.c}'s exit code; its log:\n${log}`).toBe(6);
    expect(log).toMatch(/refusing to start: the data directory of member \d+ is empty, but the cluster already exists/);
    // It refused before writing anything, and released its lock on the way out.
    expect(dataFiles(r.c)).toEqual([]);
  });

  it("4. kill -9 of A and B reconnected: B alone cannot lead, and no node serves a read that lacks the 50 writes", async () => {
    const c = cluster();
    const { roles: r } = story();
    await c.cluster.node(r.a).kill();
    c.cluster.network.remove(isolateB);

    // Ask every node, again and again, for a linearizable read; failing is the right answer here
    // (no quorum), answering without the 50th write is the bug.
    /** Each distinct answer that lacks the writes, with how often it came. */
    const lacking = new Map<string, number>();
    const leaders = new Set<string>();
    let answered = 0;
    let refused = 0;
    const deadline = Date.now() + unavailableWatchMs;
    while (Date.now() < deadline) {
      for (const id of c.ids) {
        try {
          const got = await c.kv(id).get({ key: bytes(key) }, { timeoutMs: 1_000 });
          answered++;
          const value = got.kv === undefined ? "(absent)" : text(got.kv.value);
          if (value !== lastValue) {
            const answer = `node ${id} answered ${value} at revision ${got.header?.revision} in term ${got.header?.raftTerm}`;
            lacking.set(answer, (lacking.get(answer) ?? 0) + 1);
          }
        } catch (error) {
          refused++;
          // No answer is the right answer here; a connection to the killed A can also end as Canceled
          // (its HTTP/2 stream reset), which is no answer either. Any other code would be a real reply.
          expect([Code.Unavailable, Code.DeadlineExceeded, Code.Canceled], `node ${id}: ${ConnectError.from(error).message}`).toContain(
            ConnectError.from(error).code,
          );
        }
        const status = await c.status(id).catch(() => undefined);
        if (status?.role === NodeRole.LEADER) leaders.add(`node ${id} in term ${status.term}`);
      }
      await sleep(100);
    }
    console.log(`step 4: ${answered} linearizable reads answered, ${refused} refused or timed out in ${unavailableWatchMs} ms`);
    expect(
      [...lacking].map(([answer, times]) => `${answer} (${times} times)`),
      `linearizable reads without the ${writes} acknowledged writes (they were lost)`,
    ).toEqual([]);
    expect([...leaders], `leaders while only B runs (C refused to start, A is dead)`).toEqual([]);
    expect(c.cluster.node(r.c).state, `node ${r.c} (the wiped member)`).toBe("crashed");
  });

  it("5. A restarts on its intact data: A and B elect a leader, and a linearizable read on each returns the 50th write", async () => {
    const c = cluster();
    const { roles: r, lastPut: put } = story();
    c.restart(r.a);
    await timings.time("restart of A -> stable leader of A and B", () => c.stableLeader(30_000));
    // On both: the leader answers from its own state, B only once it has applied what the leader
    // committed, so B's answer also shows that B caught up.
    for (const id of [r.a, r.b]) {
      const got = await retryUnavailable(`linearizable get on node ${id}`, () => c.kv(id).get({ key: bytes(key) }));
      const seen = `node ${id} answered ${got.kv === undefined ? "(absent)" : text(got.kv.value)} at revision ${got.header?.revision} in term ${got.header?.raftTerm}`;
      expect(got.kv === undefined ? "(absent)" : text(got.kv.value), seen).toBe(lastValue);
      expect(got.kv?.modRevision, seen).toBe(put.header?.revision);
      expect(got.kv?.version, seen).toBe(BigInt(writes));
    }
  });
});

describe("a wiped member restarted while every other member is unreachable", () => {
  /** Where C's log stood when it was started with every peer down. */
  let waitingLogFrom = 0;
  /** Set once C was seen waiting: the next step needs it. */
  let waiting = false;

  it("waits for its peers: alive, client port closed, nothing but LOCK in its data directory", async () => {
    const c = cluster();
    const { roles: r } = story();
    // Whatever the story left running: A and B are killed, and C (already refused) is down.
    await Promise.all(c.ids.map((id) => c.cluster.node(id).kill()));
    c.cluster.wipe(r.c);
    waitingLogFrom = logSize(r.c);
    const since = c.cluster.crashes.length;
    c.restart(r.c);
    const first = await timings.time("start of the wiped C with every peer down -> waiting", () =>
      waitFor(
        `node ${r.c} to log that it waits for the other members`,
        30_000,
        async () => {
          if (logSince(r.c, waitingLogFrom).includes("waiting for every other member to answer")) return "waiting";
          if (exitAfter(r.c, since) !== undefined) return "exited";
          // Serving with every peer down: it guessed that the cluster is new.
          return c.status(r.c).then(
            () => "serving",
            () => undefined,
          );
        },
        async () => `its log:\n${logSince(r.c, waitingLogFrom)}`,
      ),
    );
    expect(
      first,
      `node ${r.c} with every peer down; exit: ${JSON.stringify(exitAfter(r.c, since))}; its log:\n${logSince(r.c, waitingLogFrom)}`,
    ).toBe("waiting");
    // A few rounds of asking later it still waits: it never takes silence for "the cluster is new".
    await sleep(2_000);
    expect(exitAfter(r.c, since), `node ${r.c} exited while its peers were down`).toBeUndefined();
    expect(c.cluster.node(r.c).state).toBe("running");
    const served = await c.status(r.c).then(
      (status) => `it serves: ${status.role} in term ${status.term}`,
      (error: unknown) => ConnectError.from(error),
    );
    expect(served instanceof ConnectError ? served.code : served, "its client port").toBe(Code.Unavailable);
    expect(served instanceof ConnectError ? served.message : "").toMatch(/ECONNREFUSED/);
    expect(dataFiles(r.c), "its data directory while it waits").toEqual(["LOCK"]);
    waiting = true;
  });

  it("refuses to start (exit code 6) as soon as one member with state answers", async () => {
    const c = cluster();
    const { roles: r } = story();
    expect(waiting, `node ${r.c} was not left waiting by the previous step (see its failure)`).toBe(true);
    const since = c.cluster.crashes.length;
    c.restart(r.a);
    const exited = await timings.time("restart of A -> the waiting C exits", () =>
      waitFor(
        `node ${r.c} to exit`,
        30_000,
        async () => exitAfter(r.c, since),
        () => c.describe(),
      ),
    );
    const log = logSince(r.c, waitingLogFrom);
    expect(exited.code, `node ${r.c}'s exit code; its log:\n${log}`).toBe(6);
    expect(log).toMatch(/refusing to start: the data directory of member \d+ is empty, but the cluster already exists/);
    expect(dataFiles(r.c)).toEqual([]);
  });
});
