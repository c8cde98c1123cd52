import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Member } from "../../gen/raftkv/v1/cluster_pb.js";
import { exitCodes } from "../../src/cli/exit-codes.js";
import { createRaftkvClient, RaftkvCallError, type RaftkvClient } from "../../src/rpc/client/index.js";
import { bytes, text } from "./bytes.js";
import { fastTiming, repoRoot, sleep, waitFor } from "./e2e-cluster.js";
import { freePorts } from "../chaos/free-ports.js";

/**
 * Issue 12 on real processes, one story under continuous writes: a 3-member cluster grows to 5 by
 * `--join` (learners first, promoted by themselves once caught up, through a snapshot since the log
 * is compacted), loses its leader by removal, replaces a member whose disk was wiped (refused until it
 * is removed, then joins under a new id), transfers leadership, and shrinks back to 3. A writer runs
 * throughout; every acknowledged write must be read back at the end, and the longest pause between two
 * acknowledgements is reported per step.
 *
 * The steps share the cluster: read the first failure.
 */

const root = mkdtempSync(join(tmpdir(), "raftkv-membership-"));
const keepData = process.env.RAFTKV_E2E_KEEP_DATA === "1";
/** Snapshots every 200 entries, 50 kept below: a joining node catches up through a snapshot. */
const snapshotArgs = ["--snapshot-entries", "200", "--snapshot-retain-entries", "50"];

interface Proc {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly args: readonly string[];
  child: ChildProcess;
  exited: Promise<number | null>;
}

const procs = new Map<string, Proc>();

function launch(p: Omit<Proc, "child" | "exited">): Proc {
  const log = openSync(join(root, `${p.name}.log`), "a");
  const child = spawn(process.execPath, [join(repoRoot, "bin", "raftkv.js"), "serve", ...p.args], {
    cwd: repoRoot,
    stdio: ["ignore", log, log],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const proc: Proc = { ...p, child, exited };
  procs.set(p.name, proc);
  return proc;
}

async function node(name: string, extra: readonly string[]): Promise<Proc> {
  const [clientPort, peerPort] = await freePorts(2);
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    "--name",
    name,
    "--data-dir",
    join(root, name),
    "--advertise-client-url",
    clientUrl,
    "--advertise-peer-url",
    peerUrl,
    ...fastTiming,
    ...snapshotArgs,
    ...extra,
  ];
  return launch({ name, clientUrl, peerUrl, args });
}

/** The process's exit code, or an error naming the cluster's state if it is still running after `ms`. */
async function exitedWithin(p: Proc, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), ms)));
  const outcome = await Promise.race([p.exited, timeout]);
  clearTimeout(timer);
  if (outcome === "timeout")
    throw new Error(`${p.name} still runs after ${ms} ms\n${await describeCluster()}\n${logOf(p.name).slice(-3000)}`);
  return outcome;
}

function logOf(name: string): string {
  try {
    return readFileSync(join(root, `${name}.log`), "utf8");
  } catch {
    return "";
  }
}

let client: RaftkvClient;
let founders: Proc[] = [];

async function members(): Promise<Member[]> {
  return (await client.memberList({})).members;
}

async function describeCluster(): Promise<string> {
  const lines = [...procs.values()].map((p) => `${p.name} ${p.clientUrl} exit=${p.child.exitCode}`);
  try {
    lines.push(`members: ${(await members()).map((m) => `${m.id}:${m.name}${m.learner ? "(learner)" : ""}`).join(" ")}`);
  } catch (error) {
    lines.push(`members: ${String(error)}`);
  }
  return lines.join("\n");
}

/** The voters and learners, by name. */
async function roster(): Promise<{ voters: string[]; learners: string[] }> {
  const list = await members();
  return {
    voters: list.filter((m) => !m.learner).map((m) => m.name),
    learners: list.filter((m) => m.learner).map((m) => m.name),
  };
}

/** The leader as the running processes see it (the one that says it leads). */
async function leaderOf(): Promise<{ id: number; name: string }> {
  const running = [...procs.values()].filter((p) => p.child.exitCode === null).map((p) => p.clientUrl);
  const asker = createRaftkvClient({ endpoints: running, timeoutMs: 2_000 });
  try {
    for (const s of await asker.statusAll()) {
      const st = s.status?.status;
      if (st !== undefined && st.leader === st.id) return { id: Number(st.id), name: st.name };
    }
  } finally {
    asker.close();
  }
  throw new Error("no running process leads");
}

/** A writer that runs through every step: acknowledged writes, and the longest gap between two acks. */
class Writer {
  readonly acked = new Map<string, string>();
  private running = true;
  private lastAck = Date.now();
  private longestGapMs = 0;
  private done: Promise<void> | undefined;
  errors = 0;

  start(writerClient: RaftkvClient): void {
    this.lastAck = Date.now();
    this.done = (async () => {
      for (let i = 0; this.running; i++) {
        const key = `w/${i % 500}`;
        const value = `v${i}`;
        try {
          await writerClient.put({ key: bytes(key), value: bytes(value) });
          this.acked.set(key, value);
          const now = Date.now();
          this.longestGapMs = Math.max(this.longestGapMs, now - this.lastAck);
          this.lastAck = now;
        } catch (error) {
          // A write of unknown outcome may have applied: the key's final value is then unknowable.
          if (error instanceof RaftkvCallError && error.outcomeUnknown) this.acked.delete(key);
          this.errors++;
          await sleep(20);
        }
      }
    })();
  }

  /** The longest pause since the last call (the pause of one step). */
  takeLongestGap(): number {
    const gap = Math.max(this.longestGapMs, Date.now() - this.lastAck);
    this.longestGapMs = 0;
    return gap;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

const writer = new Writer();
let writerClient: RaftkvClient;
const pauses: string[] = [];

function recordPause(step: string): void {
  pauses.push(`${step}: longest write pause ${writer.takeLongestGap()} ms`);
}

beforeAll(async () => {
  const names = ["m1", "m2", "m3"];
  const all = await freePorts(2 * names.length);
  const ports = names.map((_, i) => [all[2 * i], all[2 * i + 1]] as const);
  const initial = names.map((n, i) => `${i + 1}:${n}=http://127.0.0.1:${ports[i]?.[1]}|http://127.0.0.1:${ports[i]?.[0]}`).join(",");
  founders = names.map((name, i) => {
    const [clientPort, peerPort] = ports[i] ?? [0, 0];
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const args = [
      "--id",
      String(i + 1),
      "--name",
      name,
      "--data-dir",
      join(root, name),
      "--initial-cluster",
      initial,
      ...fastTiming,
      ...snapshotArgs,
    ];
    return launch({ name, clientUrl, peerUrl, args });
  });
  const endpoints = founders.map((f) => f.clientUrl);
  client = createRaftkvClient({ endpoints, timeoutMs: 20_000, attemptTimeoutMs: 2_000 });
  writerClient = createRaftkvClient({ endpoints, timeoutMs: 20_000, attemptTimeoutMs: 2_000 });
  await waitFor("the founders to elect a leader", 40_000, async () => (await leaderOf()).id, describeCluster);
  writer.start(writerClient);
}, 60_000);

afterAll(async () => {
  await writer.stop();
  client?.close();
  writerClient?.close();
  for (const p of procs.values()) if (p.child.exitCode === null) p.child.kill("SIGKILL");
  await Promise.all([...procs.values()].map((p) => p.exited));
  console.log(
    `e2e membership (issue 12):\n  ${pauses.join("\n  ")}\n  acknowledged keys ${writer.acked.size}, failed writes ${writer.errors}`,
  );
  if (!keepData) rmSync(root, { recursive: true, force: true });
  else console.log(`kept ${root}`);
}, 60_000);

describe("issue 12: grow, shrink, replace and roll a live cluster under writes", () => {
  it("grows 3 -> 5: two nodes started with --join become learners, catch up through a snapshot, and promote themselves", async () => {
    await waitFor("the log to pass a snapshot", 30_000, async () => (writer.acked.size >= 300 ? true : undefined));
    recordPause("before growing");
    const joinArgs = ["--join", founders.map((f) => f.clientUrl).join(",")];
    await node("m4", joinArgs);
    await node("m5", joinArgs);
    const grown = await waitFor(
      "5 voters",
      60_000,
      async () => {
        const r = await roster();
        return r.voters.length === 5 && r.learners.length === 0 ? r : undefined;
      },
      describeCluster,
    );
    expect(grown.voters.sort()).toEqual(["m1", "m2", "m3", "m4", "m5"]);
    const ids = (await members()).map((m) => Number(m.id)).sort();
    expect(ids).toEqual([1, 2, 3, 4, 5]);
    expect(logOf("m4")).toContain("added to the cluster as a learner");
    // The member list can show the promotion before m4's own MemberPromote call has returned and logged it.
    await waitFor("m4 to log its promotion", 10_000, async () => (/promoted to voter/.test(logOf("m4")) ? true : undefined));
    // At least one of them was far enough behind to need the leader's snapshot.
    expect(logOf("m4") + logOf("m5")).toMatch(/snapshot/);
    recordPause("grow 3 -> 5 (two joins and promotions)");
  });

  it("restarts a joined member on its own data: it still reaches every member, so leadership can move to it", async () => {
    // A joined node restarts without --initial-cluster members: the URLs of the founders come only
    // from the conf entries (or snapshot) in its own data. Without them it applies the leader's
    // appends but answers nobody, and a cluster that needs its vote cannot elect.
    const m4 = procs.get("m4");
    if (m4 === undefined) throw new Error("m4 is not running");
    m4.child.kill("SIGKILL");
    await m4.exited;
    launch({ ...m4 });
    const m4Id = (await members()).find((m) => m.name === "m4")?.id;
    if (m4Id === undefined) throw new Error("m4 is not a member");
    await waitFor(
      "leadership to move to the restarted m4",
      30_000,
      async () => {
        if ((await leaderOf()).name === "m4") return true;
        await client.transferLeadership({ targetId: m4Id });
        return (await leaderOf()).name === "m4" ? true : undefined;
      },
      describeCluster,
    );
    expect(logOf("m4")).not.toMatch(/added to the cluster as a learner[\s\S]*added to the cluster as a learner/);
    recordPause("restart joined m4 and transfer leadership to it");
  });

  it("removes the leader: it hands off, the change commits, and the removed process stops with exit code 7", async () => {
    const leader = await leaderOf();
    const proc = [...procs.values()].find((p) => p.name === leader.name);
    expect(proc).toBeDefined();
    await client.memberRemove({ id: BigInt(leader.id) });
    expect(await proc?.exited).toBe(exitCodes.removed);
    const after = await waitFor("a new leader", 20_000, async () => {
      const l = await leaderOf();
      return l.id !== leader.id ? l : undefined;
    });
    expect(after.id).not.toBe(leader.id);
    expect((await roster()).voters).not.toContain(leader.name);
    recordPause(`remove the leader (${leader.name})`);
  });

  it("replaces a member whose disk was wiped: refused (exit 6) until it is removed, then it joins under a new id", async () => {
    const leader = await leaderOf();
    const list = await members();
    const victim = list.find((m) => Number(m.id) !== leader.id && !m.learner);
    const proc = [...procs.values()].find((p) => p.name === victim?.name);
    if (victim === undefined || proc === undefined) throw new Error("no follower to replace");
    proc.child.kill("SIGKILL");
    await proc.exited;
    rmSync(join(root, proc.name), { recursive: true, force: true });
    const running = [...procs.values()].filter((p) => p.child.exitCode === null).map((p) => p.clientUrl);
    const argsWithJoin = proc.args.includes("--join") ? proc.args : [...proc.args, "--join", running.join(",")];
    const refused = launch({ ...proc, args: argsWithJoin });
    expect(await exitedWithin(refused, 30_000)).toBe(exitCodes.dataLost);
    expect(logOf(proc.name)).toContain(`raftkv member remove ${victim.id}`);

    await client.memberRemove({ id: victim.id });
    launch({ ...proc, args: argsWithJoin });
    const replaced = await waitFor(
      `${proc.name} to rejoin as a voter under a new id`,
      60_000,
      async () => {
        const m = (await members()).find((x) => x.name === proc.name);
        return m !== undefined && !m.learner && m.id !== victim.id ? m : undefined;
      },
      describeCluster,
    );
    expect(Number(replaced.id)).toBeGreaterThan(5);
    recordPause(`replace ${proc.name} (wiped disk)`);
  });

  it("transfers leadership on demand to the named voter", async () => {
    const leader = await leaderOf();
    const target = (await members()).find((m) => Number(m.id) !== leader.id && !m.learner);
    if (target === undefined) throw new Error("no voter to transfer to");
    const answer = await client.transferLeadership({ targetId: target.id });
    expect(answer.leader).toBe(target.id);
    await waitFor("the new leader to be seen", 10_000, async () => ((await leaderOf()).id === Number(target.id) ? true : undefined));
    recordPause(`transfer leadership to ${target.name}`);
  });

  it("shrinks to 3, and every acknowledged write is read back, linearizably, from the cluster that is left", async () => {
    const leader = await leaderOf();
    const followers = (await members()).filter((m) => Number(m.id) !== leader.id);
    for (const m of followers.slice(0, followers.length - 2)) {
      const proc = [...procs.values()].find((p) => p.name === m.name);
      await client.memberRemove({ id: m.id });
      expect(await proc?.exited).toBe(exitCodes.removed);
    }
    expect((await roster()).voters).toHaveLength(3);
    recordPause("shrink to 3");

    await writer.stop();
    const reader = createRaftkvClient({
      endpoints: [...procs.values()].filter((p) => p.child.exitCode === null).map((p) => p.clientUrl),
      timeoutMs: 20_000,
    });
    try {
      for (const [key, value] of writer.acked) {
        const got = await reader.get({ key: bytes(key) });
        // A later write of the same key whose outcome was unknown may have overwritten it (and was dropped).
        expect(text(got.kv?.value), key).toBe(value);
      }
    } finally {
      reader.close();
    }
    expect(writer.acked.size).toBeGreaterThan(100);
  });
});
