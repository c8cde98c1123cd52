import { watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bytes, text } from "./bytes.js";
import { retryUnavailable, startE2eCluster, waitFor, type E2eCluster } from "./e2e-cluster.js";

/**
 * Issue 13 on real processes: kill -9 of a follower while a snapshot file is being written on it, in
 * both ways a snapshot reaches a follower's disk:
 *  1. the follower's own snapshot of its state (every --snapshot-entries entries);
 *  2. a snapshot the leader sent it (InstallSnapshot), after it fell behind the leader's compacted log.
 * The kill fires the moment the snapshot's temporary file appears in the follower's snap/ directory
 * (`<index>-<term>.snap.tmp`: written, fsynced, then renamed into place), so it lands inside the write;
 * the restarted node's log proves it (it removes the leftover and says so). After each restart the
 * follower must catch up and serve every acknowledged write, linearizably.
 */

/** Snapshots every 200 entries, 20 kept below: both kinds of snapshot come quickly. */
const extraArgs = ["--snapshot-entries", "200", "--snapshot-retain-entries", "20"];
/** 32 KiB values over 150 keys: a state of about 5 MB, whose snapshot takes a while to write. */
const valueBytes = 32 * 1024;
const keyCount = 150;
/** What the restarted node logs when it finds a snapshot write its crash interrupted (snapshot-store.ts). */
const leftoverRemoved = "a snapshot is renamed into place only once complete";

let c: E2eCluster;
const acked = new Map<string, string>();
let sequence = 0;

beforeAll(async () => {
  c = await startE2eCluster({ extraArgs });
}, 60_000);

afterAll(async () => {
  await c?.close();
}, 30_000);

/** One acknowledged Put of a random key (the bundled client retries through elections). */
async function putOne(): Promise<void> {
  const key = `k${Math.floor(Math.random() * keyCount)}`;
  const value = `${++sequence}:`.padEnd(valueBytes, "x");
  await c.client.put({ key: bytes(key), value: bytes(value) });
  acked.set(key, value);
}

/** Kills `id` with SIGKILL as soon as a snapshot's temporary file appears in its snap/ directory. */
function killOnSnapshotWrite(id: number): { killed: Promise<string>; stop(): void } {
  const dir = join(c.cluster.dataDirOf(id), "raft", "snap");
  let watcher: FSWatcher | undefined;
  const killed = new Promise<string>((resolve) => {
    watcher = watch(dir, (_event, name) => {
      if (name === null || !name.endsWith(".snap.tmp")) return;
      watcher?.close();
      void c.cluster
        .node(id)
        .kill()
        .then(() => resolve(name));
    });
  });
  return { killed, stop: () => watcher?.close() };
}

/** Writes until `until` settles; returns its value. */
async function writeUntil<T>(until: Promise<T>, timeoutMs: number): Promise<T> {
  let done = false;
  const result = until.finally(() => (done = true));
  const deadline = Date.now() + timeoutMs;
  while (!done) {
    if (Date.now() > deadline) throw new Error(`nothing happened within ${timeoutMs} ms\n${await c.describe()}`);
    await putOne();
  }
  return result;
}

/** The log the node wrote since its latest start. */
function logSinceStart(id: number): string {
  return c.cluster.node(id).logTail(1 << 20);
}

/**
 * Sets the trap, lets `arm` bring on a snapshot write, restarts the node and checks it caught up with
 * every write; again (up to 3 times) when the kill came too late, after the file was complete.
 */
async function killInsideSnapshotWrite(id: number, arm: (trap: Promise<string>) => Promise<string>): Promise<string> {
  const files: string[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    const trap = killOnSnapshotWrite(id);
    try {
      files.push(await arm(trap.killed));
    } finally {
      trap.stop();
    }
    c.restart(id);
    await expectCaughtUpWithEveryWrite(id);
    if (logSinceStart(id).includes(leftoverRemoved)) {
      console.log(`node ${id} killed inside the write of ${files.join(", then ")} (attempt ${attempt})`);
      return files.join(", ");
    }
  }
  throw new Error(`every kill came after the snapshot file was complete (${files.join(", ")})`);
}

/** Waits for `id` to apply the leader's commit index, then reads every acknowledged key from it. */
async function expectCaughtUpWithEveryWrite(id: number): Promise<void> {
  const leader = await c.stableLeader(30_000);
  const commit = (await c.status(leader.id)).commitIndex;
  await waitFor(
    `node ${id} to catch up to ${commit}`,
    30_000,
    async () => ((await c.status(id)).appliedIndex >= commit ? true : undefined),
    () => c.describe(),
  );
  for (const [key, value] of acked) {
    const got = await retryUnavailable(`linearizable get of ${key} on node ${id}`, () => c.kv(id).get({ key: bytes(key) }));
    expect(text(got.kv?.value ?? new Uint8Array()), key).toBe(value);
  }
}

describe("issue 13: kill -9 while a snapshot is being written", () => {
  it("a follower killed inside its own snapshot's write restarts on the previous snapshot and its log, and loses nothing", async () => {
    const leader = await c.stableLeader();
    const follower = c.ids.find((id) => id !== leader.id) as number;
    const files = await killInsideSnapshotWrite(follower, (killed) => writeUntil(killed, 90_000));
    expect(files).toMatch(/\.snap\.tmp/);
  }, 240_000);

  it("a follower killed while it installs the leader's snapshot restarts, receives it again, and loses nothing", async () => {
    const leader = await c.stableLeader();
    const follower = c.ids.find((id) => id !== leader.id) as number;
    const files = await killInsideSnapshotWrite(follower, async (killed) => {
      await c.cluster.node(follower).kill();
      // Past a snapshot and the retained entries on the leader: the follower can only catch up by InstallSnapshot.
      const behind = (await c.status(leader.id)).commitIndex;
      await waitFor("the leader to compact past the stopped follower", 90_000, async () => {
        await putOne();
        return (await c.status(leader.id)).snapshotIndex > behind + 20n ? true : undefined;
      });
      c.restart(follower);
      return writeUntil(killed, 60_000);
    });
    expect(files).toMatch(/\.snap\.tmp/);
  }, 300_000);
});
