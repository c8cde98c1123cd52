import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeRole } from "../../gen/raftkv/v1/cluster_pb.js";
import { createRaftkvClient, RaftkvCallError, type RaftkvClient } from "../../src/rpc/client/index.js";
import { startReaper, type Reaper } from "../chaos/reaper.js";
import { EmulatedStatefulSet, type EmulatedPod } from "./emulated-statefulset.js";
import { renderOverlay } from "./kustomize.js";
import { replicasOf } from "./pod-spec.js";
import { sleep, waitUntil } from "./pod-process.js";

/**
 * The rendered 3-replica StatefulSet, run as real `raftkv serve` processes the way Kubernetes would run
 * its pods, with only the network and the volumes mapped onto this machine (test/k8s/emulated-statefulset.ts
 * says how: a loopback address per pod standing for its pod IP, a folder per volume, the manifest's
 * probes polled every 100 ms). The test talks to the pods directly, at their own addresses.
 *
 * Then: every pod becomes ready; the leader's pod is killed with SIGKILL and recreated on the same
 * volume and rejoins; and a rolling restart as the StatefulSet controller performs it (highest ordinal
 * first; SIGTERM, SIGKILL after terminationGracePeriodSeconds; the next pod only once every pod is
 * ready) under continuous writes, after which every acknowledged write is read back.
 * test/k8s/scaling.test.ts scales the same StatefulSet up and down.
 */
const statefulSetName = "raftkv";
/** RAFTKV_K8S_KEEP_DATA=1 keeps the pods' logs and volumes for a post-mortem. */
const keepData = process.env.RAFTKV_K8S_KEEP_DATA === "1";
const readyTimeoutMs = 30_000;

describe("the rendered StatefulSet, emulated on loopback", () => {
  const objects = renderOverlay("3-replicas");
  const replicas = replicasOf(objects, statefulSetName);
  const dir = mkdtempSync(join(tmpdir(), "raftkv-statefulset-"));
  let reaper: Reaper;
  let set: EmulatedStatefulSet;
  let pods: EmulatedPod[] = [];
  let client: RaftkvClient;
  const killAll = (): void => set.killNow();

  const describePods = (): string => set.describe();
  const url = (p: EmulatedPod): string => set.url(p, "client");
  const isReady = (p: EmulatedPod): Promise<boolean> => set.probeReady(p);
  const allReady = (): Promise<boolean> => set.allReady();
  const pod = (ordinal: number): EmulatedPod => set.pod(ordinal);

  beforeAll(async () => {
    reaper = startReaper();
    set = new EmulatedStatefulSet({ objects, name: statefulSetName, dir, reaper });
    process.once("exit", killAll);
    await set.start();
    pods = Array.from({ length: replicas }, (_, ordinal) => set.createPod(ordinal));
    console.log(`statefulset: pods ${pods.map((p) => `${p.spec.name}=${p.address}`).join(", ")}; data and logs in ${dir}`);
    client = createRaftkvClient({
      endpoints: pods.map(url),
      attemptTimeoutMs: 2_000,
      timeoutMs: 30_000,
      attemptsMax: 500,
    });
  });

  afterAll(async () => {
    // Undefined when beforeAll failed before creating it.
    (client as RaftkvClient | undefined)?.close();
    await (set as EmulatedStatefulSet | undefined)?.close();
    reaper.close();
    process.removeListener("exit", killAll);
    if (keepData) console.log(`statefulset: logs and volumes kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });

  it("starts every pod at once (podManagementPolicy Parallel) and every pod becomes ready", async () => {
    const started = Date.now();
    for (const p of pods) p.process.start();
    await waitUntil("every pod ready (/readyz)", readyTimeoutMs, allReady, describePods);
    const env = pods.map((p) => p.process.o.env);
    // The identity came from the pod name alone: no pod was given its id.
    expect(env.every((e) => e.RAFTKV_ID === undefined)).toBe(true);
    const statuses = await client.statusAll();
    expect(statuses.map((s) => Number(s.status?.status?.id))).toEqual([1, 2, 3]);
    expect(statuses.map((s) => s.status?.status?.name)).toEqual(["raftkv-0", "raftkv-1", "raftkv-2"]);
    console.log(`statefulset: ${replicas} pods ready ${Date.now() - started} ms after they started`);
  });

  it("a pod killed with SIGKILL and recreated on its volume rejoins and catches up", async () => {
    await client.put({ key: bytes("before-kill"), value: bytes("1") });
    const statuses = await client.statusAll();
    const leaderId = Number(statuses.find((s) => s.status?.status?.role === NodeRole.LEADER)?.status?.status?.id ?? 0);
    expect(leaderId).toBeGreaterThan(0);
    const victim = pod(leaderId - 1);
    const exit = await victim.process.kill();
    expect(exit.signal).toBe("SIGKILL");
    // The other two elect a leader and take writes while the pod is gone.
    await client.put({ key: bytes("while-down"), value: bytes("2") });
    victim.process.start();
    await waitUntil(`${victim.spec.name} ready again`, readyTimeoutMs, () => isReady(victim), describePods);
    const own = createRaftkvClient({ endpoints: [url(victim)], attemptTimeoutMs: 2_000, timeoutMs: 10_000 });
    try {
      // A serializable read answers from the pod's own replica: it holds the write made while it was down.
      await waitUntil(`${victim.spec.name} to apply the write made while it was down`, 10_000, async () => {
        const response = await own.get({ key: bytes("while-down"), serializable: true });
        return text(response.kv?.value) === "2";
      });
      const status = (await own.statusAll())[0]?.status?.status;
      expect(Number(status?.id)).toBe(leaderId);
    } finally {
      own.close();
    }
  });

  it("survives a rolling restart, highest ordinal first, under writes: no acknowledged write is lost", async () => {
    const acknowledged = new Map<string, string>();
    const unknown: string[] = [];
    let stop = false;
    let lastAck = performance.now();
    let longestPauseMs = 0;
    let attempts = 0;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const key = `rolling/${String(i).padStart(6, "0")}`;
        const value = `v${i}`;
        attempts++;
        try {
          await client.put({ key: bytes(key), value: bytes(value) });
          const now = performance.now();
          longestPauseMs = Math.max(longestPauseMs, now - lastAck);
          lastAck = now;
          acknowledged.set(key, value);
        } catch (error) {
          // A write whose outcome is unknown may or may not be there; it is not checked either way.
          if (error instanceof RaftkvCallError && error.outcomeUnknown) unknown.push(key);
          else throw error;
        }
      }
    })();
    await sleep(500);
    for (let ordinal = replicas - 1; ordinal >= 0; ordinal--) {
      const current = pod(ordinal);
      const began = performance.now();
      const exit = await current.process.terminate(current.spec.terminationGracePeriodSeconds * 1000);
      const stoppedMs = Math.round(performance.now() - began);
      // A clean stop within the grace period, not the kubelet's SIGKILL, and within the node's own
      // --shutdown-timeout-ms (exit code 1 would mean it overran it; docs/operations.md#shutdown).
      expect(exit, `${current.spec.name} stopping; its log ends:\n${current.process.logTail()}`).toEqual({ code: 0, signal: null });
      current.process.start();
      // The controller moves on only once every pod is running and ready.
      await waitUntil(`every pod ready after restarting ${current.spec.name}`, readyTimeoutMs, allReady, describePods);
      console.log(
        `statefulset: restarted ${current.spec.name}: stopped in ${stoppedMs} ms (exit code ${exit.code}), every pod ready after ${Math.round(performance.now() - began)} ms`,
      );
    }
    await sleep(500);
    stop = true;
    await writer;
    expect(acknowledged.size).toBeGreaterThan(0);

    const reader = createRaftkvClient({ endpoints: pods.map(url), timeoutMs: 20_000 });
    const stored = new Map<string, string>();
    try {
      let continueKey: Uint8Array | undefined;
      do {
        const page = await reader.range({
          key: bytes("rolling/"),
          prefix: true,
          limit: 1000n,
          ...(continueKey === undefined ? {} : { continueKey }),
        });
        for (const kv of page.kvs) stored.set(text(kv.key), text(kv.value));
        continueKey = page.more ? page.nextKey : undefined;
      } while (continueKey !== undefined);
    } finally {
      reader.close();
    }
    const lost = [...acknowledged].filter(([key, value]) => stored.get(key) !== value).map(([key]) => key);
    console.log(
      `statefulset: rolling restart: ${attempts} writes attempted, ${acknowledged.size} acknowledged, ` +
        `${unknown.length} of unknown outcome, ${lost.length} acknowledged writes missing; longest pause between acknowledged writes ${Math.round(longestPauseMs)} ms`,
    );
    expect(lost).toEqual([]);
  }, 90_000);
});

function bytes(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

function text(value: Uint8Array | undefined): string {
  return new TextDecoder().decode(value ?? new Uint8Array());
}
