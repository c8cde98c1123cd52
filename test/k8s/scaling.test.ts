import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Member } from "../../gen/raftkv/v1/cluster_pb.js";
import { exitCodes } from "../../src/cli/exit-codes.js";
import { createRaftkvClient, RaftkvCallError, type RaftkvClient } from "../../src/rpc/client/index.js";
import { startReaper, type Reaper } from "../chaos/reaper.js";
import { EmulatedStatefulSet, type EmulatedPod } from "./emulated-statefulset.js";
import { findObject, renderOverlay, repoRoot } from "./kustomize.js";
import { field, replicasOf } from "./pod-spec.js";
import { waitUntil } from "./pod-process.js";

/**
 * Scaling the rendered 3-replica StatefulSet, emulated as in test/k8s/emulated-statefulset.ts (real
 * `raftkv serve` processes, a loopback address per pod, the client Service as a proxy to the ready
 * pods), the way docs/kubernetes.md#scaling says, under continuous writes through the client Service:
 *
 * - up, 3 -> 4 (`kubectl scale --replicas=4`): the StatefulSet creates raftkv-3 from the same template;
 *   nobody touches the cluster: the pod joins through the client Service (RAFTKV_JOIN), as a learner,
 *   and promotes itself to voter;
 * - down, 4 -> 3: the documented commands, run as `kubectl exec raftkv-0 -- node /app/bin/raftkv.js ...`
 *   would run them (this checkout's CLI, its default endpoint being pod raftkv-0's own client port):
 *   `member list` piped to awk finds raftkv-3's member id by name, `member remove ID` removes it; the pod
 *   exits with code 7, the kubelet restarts the container on the same volume and it exits 7 again (as a
 *   pod scaled up again on the retained claim would), then `kubectl scale --replicas=3` deletes it; its
 *   claim stays;
 * - up again, 3 -> 4, after `kubectl delete pvc data-raftkv-3`: the pod joins under a new member id, 5
 *   (ids are never reused);
 * - every acknowledged write is read back with linearizable reads.
 */
const execFileAsync = promisify(execFile);
const statefulSetName = "raftkv";
/** RAFTKV_K8S_KEEP_DATA=1 keeps the pods' logs and volumes for a post-mortem. */
const keepData = process.env.RAFTKV_K8S_KEEP_DATA === "1";
const readyTimeoutMs = 30_000;
const joinTimeoutMs = 30_000;

describe("scaling the rendered StatefulSet, emulated on loopback", () => {
  const objects = renderOverlay("3-replicas");
  const founders = replicasOf(objects, statefulSetName);
  const clientService = String(field(findObject(objects, "Service", "raftkv-client"), "metadata", "name"));
  const dir = mkdtempSync(join(tmpdir(), "raftkv-scaling-"));
  let reaper: Reaper;
  let set: EmulatedStatefulSet;
  /** An application: through the client Service, as any client in the cluster. */
  let app: RaftkvClient;
  /** `kubectl exec raftkv-0 -- raftkv member ...`: the CLI's default endpoint, the pod's own client port. */
  let admin: RaftkvClient;
  const killAll = (): void => set.killNow();

  const writes = {
    acknowledged: new Map<string, string>(),
    unknown: 0,
    failed: 0,
    stop: false,
    lastAck: 0,
    longestPauseMs: 0,
    done: Promise.resolve(),
  };
  /** Resets the longest pause and returns what it was since the last call. */
  const takePause = (): number => {
    const pause = Math.max(writes.longestPauseMs, performance.now() - writes.lastAck);
    writes.longestPauseMs = 0;
    return Math.round(pause);
  };
  const timings: string[] = [];
  let stepStarted = performance.now();
  const step = (what: string): void => {
    timings.push(`${what}: ${Math.round(performance.now() - stepStarted)} ms, longest write pause ${takePause()} ms`);
    stepStarted = performance.now();
  };

  const members = async (): Promise<Member[]> => (await admin.memberList({})).members;
  const describeAll = (): string => {
    const ready = set.readyOrdinals().map((o) => `${statefulSetName}-${o}`);
    return `ready endpoints of ${clientService}: ${ready.join(", ") || "none"}\n${set.describe()}`;
  };
  const log = (p: EmulatedPod): string => readFileSync(join(dir, `${p.spec.name}.log`), "utf8");
  /** Waits until the pod's member is a voter and the pod is ready; returns the member. */
  const joinedAsVoter = async (p: EmulatedPod): Promise<Member> => {
    let member: Member | undefined;
    await waitUntil(
      `${p.spec.name} to join as a voter and be ready`,
      joinTimeoutMs,
      async () => {
        member = (await members()).find((m) => m.name === p.spec.name && !m.learner);
        return member !== undefined && (await set.probeReady(p));
      },
      describeAll,
    );
    if (member === undefined) throw new Error("unreachable");
    return member;
  };
  /** Waits for `count` more acknowledged writes: the cluster takes writes now. */
  const writesGoOn = async (count: number): Promise<void> => {
    const target = writes.acknowledged.size + count;
    await waitUntil(`${count} more acknowledged writes`, 20_000, async () => writes.acknowledged.size >= target, describeAll);
  };

  beforeAll(async () => {
    reaper = startReaper();
    set = new EmulatedStatefulSet({ objects, name: statefulSetName, dir, reaper });
    process.once("exit", killAll);
    await set.start();
    const started = performance.now();
    await set.scale(founders);
    await waitUntil("every founding pod ready (/readyz)", readyTimeoutMs, () => set.allReady(), describeAll);
    timings.push(`${founders} founding pods ready: ${Math.round(performance.now() - started)} ms`);
    app = createRaftkvClient({ endpoints: [set.service(clientService).url("client")], attemptTimeoutMs: 2_000, timeoutMs: 30_000 });
    admin = createRaftkvClient({ endpoints: [set.url(set.pod(0), "client")], attemptTimeoutMs: 2_000, timeoutMs: 20_000 });
    writes.lastAck = performance.now();
    writes.done = (async () => {
      for (let i = 0; !writes.stop; i++) {
        const key = `scaling/${String(i).padStart(6, "0")}`;
        const value = `v${i}`;
        try {
          await app.put({ key: bytes(key), value: bytes(value) });
          const now = performance.now();
          writes.longestPauseMs = Math.max(writes.longestPauseMs, now - writes.lastAck);
          writes.lastAck = now;
          writes.acknowledged.set(key, value);
        } catch (error) {
          // A write whose outcome is unknown may or may not be there; it is not checked either way.
          if (error instanceof RaftkvCallError && error.outcomeUnknown) writes.unknown++;
          else writes.failed++;
        }
      }
    })();
    await writesGoOn(3);
    stepStarted = performance.now();
    takePause();
  });

  afterAll(async () => {
    writes.stop = true;
    await writes.done;
    console.log(
      `scaling: ${timings.join("; ")}; writes: ${writes.acknowledged.size} acknowledged, ${writes.unknown} of unknown outcome, ${writes.failed} failed`,
    );
    // Undefined when beforeAll failed before creating them.
    (app as RaftkvClient | undefined)?.close();
    (admin as RaftkvClient | undefined)?.close();
    await (set as EmulatedStatefulSet | undefined)?.close();
    reaper.close();
    process.removeListener("exit", killAll);
    if (keepData) console.log(`scaling: logs and volumes kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });

  it("scales up 3 -> 4: the new pod, from the same template, joins by itself through the client Service and becomes a voter", async () => {
    const before = [...writes.acknowledged].at(-1);
    if (before === undefined) throw new Error("no acknowledged write yet");
    const { created } = await set.scale(founders + 1);
    expect(created.map((p) => p.spec.name)).toEqual([`${statefulSetName}-${founders}`]);
    const added = set.pod(founders);
    // The same template as the founders: only the pod name differs, and the URLs made from it.
    expect(added.spec.env.RAFTKV_INITIAL_CLUSTER).toBe(set.pod(0).spec.env.RAFTKV_INITIAL_CLUSTER);
    expect(added.spec.env.RAFTKV_ADVERTISE_PEER_URL).toBe(`http://${added.spec.name}.${statefulSetName}:2380`);
    // Ready (a leader known) as a learner already, maybe before it has caught up: a linearizable read
    // through it still sees every write acknowledged before it joined.
    await waitUntil(`${added.spec.name} ready`, joinTimeoutMs, () => set.probeReady(added), describeAll);
    const own = createRaftkvClient({ endpoints: [set.url(added, "client")], attemptTimeoutMs: 2_000, timeoutMs: 10_000 });
    try {
      expect(text((await own.get({ key: bytes(before[0]) })).kv?.value)).toBe(before[1]);
    } finally {
      own.close();
    }
    const member = await joinedAsVoter(added);
    expect(Number(member.id)).toBe(founders + 1);
    expect(log(added)).toContain("added to the cluster as a learner");
    // The member list can show the promotion before the pod's own MemberPromote call has returned and
    // logged it (CI at ecf0508 read the log in between).
    await waitUntil("the promotion in the pod's log", 10_000, async () => log(added).includes("promoted to voter"), describeAll);
    const list = await members();
    expect(list.map((m) => [m.name, m.learner])).toEqual(
      Array.from({ length: founders + 1 }, (_, ordinal) => [`${statefulSetName}-${ordinal}`, false]),
    );
    await writesGoOn(3);
    step("scale up 3 -> 4 (join, promotion)");
  });

  it("scales down 4 -> 3: member remove, the pod exits 7 (again after a restart), then the replica count", async () => {
    const leaving = set.pod(founders);
    const id = (await members()).find((m) => m.name === leaving.spec.name)?.id;
    if (id === undefined) throw new Error(`${leaving.spec.name} is no member`);
    // docs/kubernetes.md#scaling, for ordinal N:
    //   id=$(kubectl exec raftkv-0 -- node /app/bin/raftkv.js member list | awk -v pod=raftkv-N '$2 == pod { print $1 }')
    //   kubectl exec raftkv-0 -- node /app/bin/raftkv.js member remove "$id"
    const cli = `"${process.execPath}" "${join(repoRoot, "bin", "raftkv.js")}"`;
    const removal = await run(
      `id=$(${cli} member list | awk -v pod=${leaving.spec.name} '$2 == pod { print $1 }') && ${cli} member remove "$id"`,
      { RAFTKV_ENDPOINTS: set.url(set.pod(0), "client") },
    );
    expect(removal.stdout).toContain(`removed member ${id}`);
    expect((await members()).map((m) => m.name)).not.toContain(leaving.spec.name);
    expect(await leaving.process.exit()).toEqual({ code: exitCodes.removed, signal: null });
    expect(log(leaving)).toContain("this node was removed from the cluster");
    // The kubelet restarts the container (restartPolicy Always) on the same volume: it exits 7 again,
    // a crash loop until the scale-down deletes the pod.
    leaving.process.start();
    expect(await leaving.process.exit()).toEqual({ code: exitCodes.removed, signal: null });
    // kubectl scale statefulset/raftkv --replicas=3: the pod goes, its claim stays.
    const { deleted } = await set.scale(founders);
    expect(deleted.map((d) => d.pod.spec.name)).toEqual([leaving.spec.name]);
    expect(existsSync(set.volumePath("data", founders))).toBe(true);
    const list = await members();
    expect(list.map((m) => [m.name, m.learner])).toEqual(
      Array.from({ length: founders }, (_, ordinal) => [`${statefulSetName}-${ordinal}`, false]),
    );
    await writesGoOn(3);
    step("scale down 4 -> 3 (member remove, exit 7, scale)");
  });

  it("scales up 3 -> 4 again once the removed member's claim is deleted: the pod joins under a new member id", async () => {
    // kubectl delete pvc data-raftkv-3; kubectl scale statefulset/raftkv --replicas=4
    rmSync(set.volumePath("data", founders), { recursive: true, force: true });
    await set.scale(founders + 1);
    const member = await joinedAsVoter(set.pod(founders));
    // Member ids are never reused: the removed member's id stays retired.
    expect(Number(member.id)).toBe(founders + 2);
    await writesGoOn(3);
    step("scale up again (claim deleted, new id)");
  });

  it("serves linearizable reads of every acknowledged write", async () => {
    writes.stop = true;
    await writes.done;
    expect(writes.acknowledged.size).toBeGreaterThan(0);
    const stored = new Map<string, string>();
    let continueKey: Uint8Array | undefined;
    do {
      // Linearizable (the default): through the client Service, whichever pod answers.
      const page = await app.range({
        key: bytes("scaling/"),
        prefix: true,
        limit: 1000n,
        ...(continueKey === undefined ? {} : { continueKey }),
      });
      for (const kv of page.kvs) stored.set(text(kv.key), text(kv.value));
      continueKey = page.more ? page.nextKey : undefined;
    } while (continueKey !== undefined);
    const lost = [...writes.acknowledged].filter(([key, value]) => stored.get(key) !== value).map(([key]) => key);
    expect(lost).toEqual([]);
  });
});

/** `sh -c script` with only PATH and `env`; rejects (with its output) unless it exits 0. */
async function run(script: string, env: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  return execFileAsync("sh", ["-c", script], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, timeout: 30_000 });
}

function bytes(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

function text(value: Uint8Array | undefined): string {
  return new TextDecoder().decode(value ?? new Uint8Array());
}
