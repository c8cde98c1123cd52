import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeRole } from "../../gen/raftkv/v1/cluster_pb.js";
import type { PutResponse, WatchResponse } from "../../gen/raftkv/v1/kv_pb.js";
import { assert } from "../../src/lib/assert.js";
import { errorReason } from "../../src/rpc/index.js";
import type { LeaderView } from "../chaos/cluster.js";
import { bytes, text } from "./bytes.js";
import { certainlyNotApplied, retryUnavailable, sleep, startE2eCluster, waitFor, withTimeout, type E2eCluster } from "./e2e-cluster.js";
import { Timings } from "./timings.js";

/**
 * One real 3-node cluster through a failover story, in order:
 *  1. a write acknowledged by the leader is read linearizably from a follower;
 *  2. the same (client id, sequence) sent twice applies once;
 *  3. kill -9 of the leader while two watches stream from it and writes are in flight: a new leader
 *     is elected and writes resume; then what that one kill left behind is judged step by step
 *     (resends to the new leader apply once, the watch resumed from last revision + 1 sees every
 *     revision once and in order);
 *  4. the killed node restarts and catches up;
 *  5. a leader cut off from its followers' answers replicates writes it can never acknowledge; resent to
 *     the next leader, they apply once;
 *  6. SIGTERM of every node and a restart keep every acknowledged write.
 * The steps share the cluster and one kill (each start or restart costs seconds of CPU on a small
 * machine), so a failure early makes later steps fail too: read the first failure.
 */
const timings = new Timings();
let fixture: E2eCluster | undefined;

function cluster(): E2eCluster {
  assert(fixture !== undefined, "the cluster did not start (see beforeAll)");
  return fixture;
}

/** Every acknowledged write of this file: key -> last acknowledged value and its revision. */
const acked = new Map<string, { readonly value: string; readonly revision: bigint }>();

function record(key: string, value: string, response: PutResponse): void {
  const revision = response.header?.revision ?? 0n;
  assert(revision > 0n, () => `put ${key}: acknowledged without a revision`);
  acked.set(key, { value, revision });
}

/** A call's answer or failure, kept for a later step to judge. */
type Outcome<T> = { readonly ok: T } | { readonly error: unknown };

function settle<T>(promise: Promise<T>): Promise<Outcome<T>> {
  return promise.then(
    (ok) => ({ ok }),
    (error: unknown) => ({ error }),
  );
}

interface Seen {
  readonly key: string;
  readonly value: string;
  readonly revision: bigint;
  /** The node that sent the event. */
  readonly from: bigint;
}

interface Written {
  readonly key: string;
  readonly value: string;
  readonly revision: bigint;
}

function eventsOf(message: WatchResponse): Seen[] {
  if (message.kind.case !== "events") throw new Error(`the watch ended with ${message.kind.case ?? "an empty message"}`);
  return message.kind.value.events.map((event) => ({
    key: text(event.kv?.key),
    value: text(event.kv?.value),
    revision: event.kv?.modRevision ?? 0n,
    from: message.header?.memberId ?? 0n,
  }));
}

const withoutSender = (seen: readonly Seen[]): Written[] => seen.map(({ key, value, revision }) => ({ key, value, revision }));

/** What the kill -9 of step 3 left behind, for the steps that judge it. */
interface KillRun {
  readonly old: LeaderView;
  readonly elected: LeaderView;
  /** The writes under watch/, in order: half before the kill, half after. */
  readonly written: readonly Written[];
  readonly watch: { readonly seen: readonly Seen[]; readonly resumes: number };
  readonly bundledWatch: { readonly seen: readonly Seen[]; readonly failure: unknown };
  /** Acknowledged by the old leader just before the kill. */
  readonly ackedBefore: {
    readonly request: { key: Uint8Array; value: Uint8Array; clientId: string; sequence: bigint };
    readonly response: PutResponse;
  };
  /** Sent to the old leader, each with a session, as it was killed. */
  readonly inFlight: readonly { readonly key: string; readonly clientId: string; readonly first: Outcome<PutResponse> }[];
  /** Sent through the bundled client (the old leader its first endpoint) as it was killed. */
  readonly bundledInFlight: readonly { readonly key: string; readonly outcome: Outcome<PutResponse> }[];
}
let killRun: KillRun | undefined;

function kill(): KillRun {
  assert(killRun !== undefined, "the kill -9 step did not finish (see its failure)");
  return killRun;
}

/** The server's deadline for requests without one: short, for the writes a deposed leader cannot settle. */
const requestTimeoutMs = 2_500;

/** Nodes killed and not restarted yet. */
const down = new Set<number>();

beforeAll(async () => {
  fixture = await timings.time("start 3 nodes and elect", () =>
    startE2eCluster({ extraArgs: ["--request-timeout-ms", String(requestTimeoutMs)] }),
  );
}, 60_000);

afterAll(async () => {
  await fixture?.close();
  console.log(timings.summary("e2e failover"));
});

describe("a 3-node cluster before any failure", () => {
  it("answers a linearizable read on a follower with the write just acknowledged by the leader", async () => {
    const c = cluster();
    for (let round = 0; round < 4; round++) {
      const key = `story/first-${round}`;
      const put = await c.onLeader((leader) => c.kv(leader).put({ key: bytes(key), value: bytes(`v${round}`) }));
      record(key, `v${round}`, put);
      const followers = c.ids.filter((id) => BigInt(id) !== put.header?.memberId);
      // Straight after the acknowledgement a follower may not have applied the entry yet; the ReadIndex
      // round must make it wait for it.
      const follower = followers[round % followers.length] ?? 0;
      const got = await retryUnavailable(`linearizable get on node ${follower}`, () => c.kv(follower).get({ key: bytes(key) }));
      expect(got.header?.memberId).toBe(BigInt(follower));
      expect(text(got.kv?.value)).toBe(`v${round}`);
      expect(got.kv?.modRevision).toBe(put.header?.revision);
      expect(got.header?.revision ?? 0n).toBeGreaterThanOrEqual(put.header?.revision ?? 0n);
    }
  });

  it("applies the same (client id, sequence) once when it is sent twice, and refuses an older sequence", async () => {
    const c = cluster();
    const clientId = `e2e-${randomUUID()}`;
    const request = { key: bytes("once/same"), value: bytes("v1"), clientId, sequence: 1n };
    const first = await retryUnavailable("first send", () => c.onLeader((leader) => c.kv(leader).put(request)));
    const again = await retryUnavailable("second send", () => c.onLeader((leader) => c.kv(leader).put(request)));
    expect(again.header?.revision).toBe(first.header?.revision);
    const got = await c.client.get({ key: bytes("once/same") });
    expect(got.kv?.version).toBe(1n);
    expect(got.kv?.modRevision).toBe(first.header?.revision);

    const second = await c.client.put({ key: bytes("once/same"), value: bytes("v2"), clientId, sequence: 2n });
    record("once/same", "v2", second);
    const stale = await c.client.put({ ...request, value: bytes("late") }).then(
      () => undefined,
      (error: unknown) => error as { code?: Code; reason?: string },
    );
    expect(stale?.code).toBe(Code.FailedPrecondition);
    expect(stale?.reason).toBe("stale-sequence");
    expect((await c.client.get({ key: bytes("once/same") })).kv?.version).toBe(2n);
  });
});

describe("kill -9 of the leader", () => {
  const attemptsMax = 3;
  const writes = 20;
  const inFlightWrites = 6;
  const bundledInFlightWrites = 3;

  /** The leader lost its role before the kill (an election on a loaded machine): the attempt is void. */
  class LeadershipMoved extends Error {}

  /**
   * One attempt of the step: watches on the leader, writes, and the kill. Everything it writes is
   * under keys of its own attempt, so a void attempt leaves nothing the next one could mistake.
   */
  async function killMidTraffic(attempt: number): Promise<KillRun> {
    const c = cluster();
    const base = `e2e-${randomUUID()}`;
    const prefix = `watch/${attempt}/`;
    const inFlight = Array.from({ length: inFlightWrites }, (_, i) => ({
      key: `once/inflight-${attempt}-${i}`,
      clientId: `${base}-b${i}`,
    }));
    // Keys that exist (version 1), so that one application makes version 2 and two would make 3.
    for (const { key } of inFlight) record(key, "before", await c.client.put({ key: bytes(key), value: bytes("before") }));
    const leader = await c.stableLeader();
    const stop = new AbortController();
    try {
      // A watch as any client runs one: on the leader, and when its stream breaks, again on another node
      // from the revision after the last one received.
      const watchRequest = { key: bytes(prefix), prefix: true };
      const seen: Seen[] = [];
      let resumes = 0;
      const firstStream = c.kv(leader.id).watch(watchRequest, { signal: stop.signal })[Symbol.asyncIterator]();
      const confirmation = await firstStream.next();
      expect(confirmation.value?.header?.memberId).toBe(BigInt(leader.id));
      const watchStart = (confirmation.value?.header?.revision ?? 0n) + 1n;
      const manual = (async () => {
        let stream = firstStream;
        let node = leader.id;
        while (seen.length < writes) {
          try {
            const next = await stream.next();
            if (next.done === true) throw new Error(`the watch on node ${node} ended without an error`);
            seen.push(...eventsOf(next.value));
          } catch (error) {
            if (stop.signal.aborted || !(error instanceof ConnectError)) throw error;
            resumes++;
            node = c.ids.find((id) => id !== leader.id) ?? leader.id;
            const from = (seen.at(-1)?.revision ?? watchStart - 1n) + 1n;
            const resumed = c.kv(node).watch({ ...watchRequest, startRevision: from }, { signal: stop.signal });
            stream = resumed[Symbol.asyncIterator]();
          }
        }
      })();
      manual.catch(() => undefined);

      // The bundled client's own watch on the same node resumes by itself.
      const bundledSeen: Seen[] = [];
      const bundledWatch = c
        .newClient("grpc", [c.cluster.clientUrl(leader.id), ...c.endpoints])
        .watch(watchRequest, { signal: stop.signal });
      const bundledStream = bundledWatch[Symbol.asyncIterator]();
      await bundledStream.next();
      const automatic = (async () => {
        while (bundledSeen.length < writes) {
          const next = await bundledStream.next();
          if (next.done === true) return;
          bundledSeen.push(...eventsOf(next.value));
        }
      })();
      automatic.catch(() => undefined);

      const written: Written[] = [];
      const write = async (i: number): Promise<PutResponse> => {
        const key = `${prefix}k${String(i).padStart(2, "0")}`;
        const put = await c.client.put({ key: bytes(key), value: bytes(`w${i}`) });
        record(key, `w${i}`, put);
        written.push({ key, value: `w${i}`, revision: put.header?.revision ?? 0n });
        return put;
      };
      for (let i = 0; i < writes / 2; i++) await write(i);

      // The node to kill must still lead; its term now is the one the next leader must exceed.
      const leading = await c.status(leader.id);
      if (leading.role !== NodeRole.LEADER)
        throw new LeadershipMoved(`node ${leader.id} is ${NodeRole[leading.role]} in term ${leading.term}`);
      const old: LeaderView = { id: leader.id, term: leading.term };
      const ackedKey = `once/acked-${attempt}`;
      const ackedRequest = { key: bytes(ackedKey), value: bytes("a1"), clientId: `${base}-a`, sequence: 1n };
      const ackedResponse = await c
        .kv(old.id)
        .put(ackedRequest)
        .catch((error: unknown) => {
          throw certainlyNotApplied(error) ? new LeadershipMoved(ConnectError.from(error).rawMessage) : error;
        });
      record(ackedKey, "a1", ackedResponse);

      // Writes on their way to the leader as it dies, staggered over the moment of the kill so that some
      // may have committed and some not.
      const inFlightAnswers = Promise.all(
        inFlight.map(async ({ key, clientId }, i) => {
          await sleep(15 * i);
          return {
            key,
            clientId,
            first: await settle(c.kv(old.id).put({ key: bytes(key), value: bytes("after"), clientId, sequence: 1n })),
          };
        }),
      );
      const bundledClient = c.newClient("grpc", [c.cluster.clientUrl(old.id), ...c.endpoints]);
      const bundledAnswers = Promise.all(
        Array.from({ length: bundledInFlightWrites }, async (_, i) => {
          const key = `once/bundled-${attempt}-${i}`;
          return { key, outcome: await settle(bundledClient.put({ key: bytes(key), value: bytes("b") })) };
        }),
      );
      await sleep(40);
      await c.cluster.node(old.id).kill();
      down.add(old.id);
      const elected = await timings.time("kill -9 of the leader -> new stable leader", () => c.stableLeader(20_000, old));

      for (let i = writes / 2; i < writes; i++) {
        const put = await write(i);
        expect(put.header?.memberId).not.toBe(BigInt(old.id));
        expect(put.header?.raftTerm ?? 0n).toBeGreaterThan(old.term);
      }
      await timings.time("the resumed watch catches up", () =>
        withTimeout(manual, 20_000, () => `the watch to deliver ${writes} events (it has ${seen.length})`),
      );
      const bundledFailure = await withTimeout(automatic, 10_000, () => `the bundled client's watch to deliver ${writes} events`).then(
        () => undefined,
        (error: unknown) => error,
      );
      return {
        old,
        elected,
        written,
        watch: { seen, resumes },
        bundledWatch: { seen: bundledSeen, failure: bundledFailure },
        ackedBefore: { request: ackedRequest, response: ackedResponse },
        inFlight: await inFlightAnswers,
        bundledInFlight: await bundledAnswers,
      };
    } finally {
      stop.abort();
    }
  }

  it("elects a new leader, and writes resume, after kill -9 of a leader with watches open and writes in flight", async () => {
    for (let attempt = 1; killRun === undefined; attempt++) {
      try {
        killRun = await killMidTraffic(attempt);
      } catch (error) {
        if (!(error instanceof LeadershipMoved) || attempt >= attemptsMax) throw error;
        console.log(`kill -9 step, attempt ${attempt}: the leader changed before the kill (${error.message}); trying again`);
      }
    }
    expect(killRun.elected.id).not.toBe(killRun.old.id);
    expect(killRun.elected.term).toBeGreaterThan(killRun.old.term);
  });

  it("applies an acknowledged write once when it is resent to the new leader", async () => {
    const c = cluster();
    const { ackedBefore, old } = kill();
    const resent = await retryUnavailable("resend", () => c.onLeader((leader) => c.kv(leader).put(ackedBefore.request)));
    expect(resent.header?.memberId).not.toBe(BigInt(old.id));
    expect(resent.header?.revision).toBe(ackedBefore.response.header?.revision);
    expect((await c.client.get({ key: ackedBefore.request.key })).kv?.version).toBe(1n);
  });

  it("applies each write that was in flight during the kill once when it is resent to the new leader", async () => {
    const c = cluster();
    let appliedBeforeResend = 0;
    for (const { key, clientId, first } of kill().inFlight) {
      // A linearizable read on the new leader tells whether the old leader's entry survived: a new leader
      // commits all of its log with its first entry, and what it does not have is gone for good.
      const before = await c.client.get({ key: bytes(key) });
      const resent = await retryUnavailable(`resend of ${key}`, () =>
        c.onLeader((leader) => c.kv(leader).put({ key: bytes(key), value: bytes("after"), clientId, sequence: 1n })),
      );
      record(key, "after", resent);
      const after = await c.client.get({ key: bytes(key) });
      expect(after.kv?.version, key).toBe(2n);
      expect(after.kv?.modRevision, key).toBe(resent.header?.revision);
      if (before.kv?.version === 2n) {
        appliedBeforeResend++;
        expect(resent.header?.revision, `${key}: the resend returns the first application's revision`).toBe(before.kv.modRevision);
      }
      if ("ok" in first) expect(resent.header?.revision, `${key}: acknowledged before the kill`).toBe(first.ok.header?.revision);
    }
    console.log(
      `exactly-once: ${appliedBeforeResend} of ${inFlightWrites} writes in flight during the kill had applied before their resend`,
    );
  });

  it("retries, through the bundled client, writes in flight during the kill, each applied once", async () => {
    const c = cluster();
    const outcomes = kill().bundledInFlight;
    expect(outcomes).toHaveLength(bundledInFlightWrites);
    for (const { key, outcome } of outcomes) {
      expect("error" in outcome ? outcome.error : undefined, key).toBeUndefined();
      expect((await c.client.get({ key: bytes(key) })).kv?.version, key).toBe(1n);
    }
  });

  it("delivers every revision once, in order, to a watch resumed from last revision + 1 on another node", () => {
    const { watch, written, old } = kill();
    expect(withoutSender(watch.seen)).toEqual(written);
    expect(watch.resumes).toBe(1);
    // The stream really moved: the first events came from the killed leader, the last from another node.
    expect(watch.seen[0]?.from).toBe(BigInt(old.id));
    expect(watch.seen.at(-1)?.from).not.toBe(BigInt(old.id));
  });

  it("resumes the bundled client's watch by itself across the same kill", () => {
    const { bundledWatch, written, old } = kill();
    expect(bundledWatch.failure, "the bundled client's watch failed").toBeUndefined();
    expect(withoutSender(bundledWatch.seen)).toEqual(written);
    expect(bundledWatch.seen.at(-1)?.from).not.toBe(BigInt(old.id));
  });

  it("restarts the killed node, which catches up and serves the latest write from its own state", async () => {
    const c = cluster();
    const { old } = kill();
    for (const id of down) c.restart(id);
    down.clear();
    const put = await c.client.put({ key: bytes("story/latest"), value: bytes("caught-up") });
    record("story/latest", "caught-up", put);
    const leaderApplied = (await c.status(Number(put.header?.memberId))).appliedIndex;
    const caughtUp = await timings.time("restart of the killed node -> caught up", () =>
      waitFor(
        `node ${old.id} to apply index ${leaderApplied}`,
        30_000,
        async () => {
          const status = await c.status(old.id);
          return status.appliedIndex >= leaderApplied ? status : undefined;
        },
        () => c.describe(),
      ),
    );
    const others = await Promise.all(c.ids.filter((id) => id !== old.id).map((id) => c.status(id)));
    expect(caughtUp.appliedIndex).toBeGreaterThanOrEqual(Math.min(...others.map((s) => Number(s.appliedIndex))));
    // Serializable: from the restarted node's own state, no ReadIndex round that could hide a gap.
    const got = await c.kv(old.id).get({ key: bytes("story/latest"), serializable: true });
    expect(got.header?.memberId).toBe(BigInt(old.id));
    expect(text(got.kv?.value)).toBe("caught-up");
    expect(got.kv?.modRevision).toBe(put.header?.revision);
  });
});

describe("a leader cut off from its followers' answers", () => {
  const writes = 4;
  const attemptsMax = 3;

  interface CutOffRun {
    readonly old: LeaderView;
    readonly base: string;
    readonly keys: readonly string[];
    readonly answers: readonly Outcome<PutResponse>[];
  }

  /**
   * One attempt: cut the followers' answers off from the leader, send it writes, wait until both
   * followers have them, heal. Undefined when the node was no longer the leader when the writes arrived
   * (an election on a loaded machine): they were refused, and the attempt proves nothing.
   */
  async function cutOffLeader(attempt: number): Promise<CutOffRun | undefined> {
    const c = cluster();
    const base = `e2e-${randomUUID()}`;
    const keys = Array.from({ length: writes }, (_, i) => `once/unacked-${attempt}-${i}`);
    for (const key of keys) record(key, "before", await c.client.put({ key: bytes(key), value: bytes("before") }));
    const old = await c.stableLeader();
    const followers = c.ids.filter((id) => id !== old.id);
    const lastBefore = (await c.status(old.id)).lastLogIndex;

    // The followers still receive the leader's entries, but their acknowledgements never arrive: the
    // entries reach a majority, the leader can never learn it, and CheckQuorum makes it step down.
    c.cluster.network.add(1, { kind: "cut", mode: "drop", links: followers.map((from) => ({ from, to: old.id })) });
    try {
      // The deposed leader keeps these pending until the server's deadline (--request-timeout-ms): it
      // cannot learn their fate.
      const answers: (Outcome<PutResponse> | undefined)[] = keys.map(() => undefined);
      const sent = keys.map(async (key, i) => {
        answers[i] = await settle(c.kv(old.id).put({ key: bytes(key), value: bytes("after"), clientId: `${base}-${i}`, sequence: 1n }));
      });
      const target = lastBefore + BigInt(writes);
      const replicated = await waitFor(
        `both followers to have log index ${target}`,
        10_000,
        async () => {
          if (answers.some((a) => a !== undefined && "error" in a && certainlyNotApplied(a.error))) return "refused";
          const statuses = await Promise.all(followers.map((id) => c.status(id)));
          return statuses.every((s) => s.lastLogIndex >= target) ? "replicated" : undefined;
        },
        () => c.describe(),
      );
      await withTimeout(Promise.all(sent), 15_000, () => "the cut-off leader to answer its writes");
      if (replicated === "refused") {
        // Some of these may still have applied before the leader changed: their values are unknown now.
        for (const key of keys) acked.delete(key);
        return undefined;
      }
      return { old, base, keys, answers: answers.map((a) => a ?? { error: new Error("no answer") }) };
    } finally {
      c.cluster.network.healAll();
    }
  }

  it("applies once, when resent to the next leader, writes it replicated but could never acknowledge", async () => {
    const c = cluster();
    let run: CutOffRun | undefined;
    for (let attempt = 1; run === undefined; attempt++) {
      run = await cutOffLeader(attempt);
      if (run === undefined) {
        expect(attempt, "attempts whose leader changed before its writes arrived").toBeLessThan(attemptsMax);
        console.log(`cut-off step, attempt ${attempt}: the leader changed before the writes arrived; trying again`);
        await c.stableLeader(20_000);
      }
    }
    for (const answer of run.answers) {
      // The client is told that it cannot know whether these applied, and to retry with the same session.
      const error = "error" in answer ? ConnectError.from(answer.error) : undefined;
      expect([Code.Unavailable, Code.DeadlineExceeded]).toContain(error?.code);
      expect(error === undefined ? undefined : errorReason(error)).toBe("unknown-outcome");
    }
    await timings.time("cut-off leader -> stable new leader after heal", () => c.stableLeader(20_000, run.old));

    for (const [i, key] of run.keys.entries()) {
      const before = await c.client.get({ key: bytes(key) });
      expect(before.kv?.version, `${key} applied though never acknowledged`).toBe(2n);
      const resent = await retryUnavailable(`resend of ${key}`, () =>
        c.onLeader((leader) => c.kv(leader).put({ key: bytes(key), value: bytes("after"), clientId: `${run.base}-${i}`, sequence: 1n })),
      );
      record(key, "after", resent);
      expect(resent.header?.revision, key).toBe(before.kv?.modRevision);
      expect((await c.client.get({ key: bytes(key) })).kv?.version, key).toBe(2n);
    }
  });
});

describe("a full stop", () => {
  it("keeps every acknowledged write through SIGTERM of every node and a restart", async () => {
    const c = cluster();
    expect(down.size, "every node runs before the full stop").toBe(0);
    const exitCodes = await timings.time("SIGTERM of all three nodes at once -> all exited", () =>
      Promise.all(c.ids.map((id) => c.terminate(id))),
    );
    expect(exitCodes, "exit codes after SIGTERM").toEqual(c.ids.map(() => 0));

    for (const id of c.ids) c.restart(id);
    await timings.time("restart of all three -> stable leader", () => c.stableLeader(40_000));
    const range = await c.client.range({ key: bytes(""), prefix: true });
    expect(range.more).toBe(false);
    const stored = new Map(range.kvs.map((kv) => [text(kv.key), { value: text(kv.value), revision: kv.modRevision }]));
    expect(acked.size).toBeGreaterThanOrEqual(30);
    for (const [key, write] of acked) expect(stored.get(key), key).toEqual(write);
    const lastAcked = [...acked.values()].reduce((max, w) => (w.revision > max ? w.revision : max), 0n);
    expect(range.header?.revision ?? 0n).toBeGreaterThanOrEqual(lastAcked);
  });
});
