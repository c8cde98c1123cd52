import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { CompareResult, CompareTarget, GetRequestSchema } from "../../gen/raftkv/v1/kv_pb.js";
import { exitCodes, runCli, type CliIo } from "../../src/cli/index.js";
import { formatInitialCluster, type InitialMember } from "../../src/config/index.js";
import { createKvStore } from "../../src/kv/index.js";
import { createRaftkvClient, type RaftkvClient } from "../../src/rpc/client/index.js";
import { readBackupFile } from "../../src/storage/index.js";
import { freePorts } from "../chaos/free-ports.js";
import { NodeProcess } from "../chaos/node-process.js";
import { startReaper, type Reaper } from "../chaos/reaper.js";
import { fastTiming, repoRoot, startE2eCluster, waitFor, type E2eCluster } from "./e2e-cluster.js";
import { Timings } from "./timings.js";

/**
 * Backup and disaster recovery end to end (docs/operations.md, "Backup and disaster recovery"): a real
 * 3-node cluster takes puts, deletes (one of a prefix) and a txn; `raftkv snapshot save` (the CLI, its
 * own process, asking a follower first) runs while a writer keeps writing; `snapshot status` describes
 * the file; the cluster is stopped; `snapshot restore` seeds three new data directories; a new 3-node
 * cluster of real `raftkv serve` processes starts from them and holds every write acknowledged before
 * the save, at a revision at least the saved one, and takes new writes. Then the refusals: a damaged
 * file (status and restore) and a non-empty data directory.
 */
const utf8 = new TextEncoder();
const text = new TextDecoder();
const timings = new Timings();

let work: string;
let source: E2eCluster | undefined;
let reaper: Reaper | undefined;
const restored: NodeProcess[] = [];
let restoredClient: RaftkvClient | undefined;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "raftkv-backup-e2e-"));
});

afterAll(async () => {
  restoredClient?.close();
  for (const node of restored) await node.stop().catch(() => undefined);
  reaper?.close();
  await source?.close();
  rmSync(work, { recursive: true, force: true });
  console.log(timings.summary("backup"));
});

/** Runs `raftkv ARGS` as its own process, through bin/raftkv.js as an operator would. */
function raftkv(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(repoRoot, "bin", "raftkv.js"), ...args],
      { cwd: repoRoot, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs the CLI in this process, capturing what it prints. */
async function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: {}, signal: new AbortController().signal };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

describe("backup and restore", () => {
  const file = (): string => join(work, "backup.db");
  /** What every key acknowledged before the save was set to; undefined for a key deleted before it. */
  const acknowledged = new Map<string, string | undefined>();
  let revisionBeforeSave = 0n;
  let saved: { revision: bigint; keyCount: number } = { revision: 0n, keyCount: 0 };
  const members: InitialMember[] = [];
  let clusterId = "";

  it("saves a consistent snapshot of a running cluster with the CLI while writes go on", async () => {
    source = await timings.time("source cluster up", () => startE2eCluster());
    const { client } = source;
    for (let i = 0; i < 30; i++) {
      await client.put({ key: utf8.encode(`k/${i}`), value: utf8.encode(`v${i}`) });
      acknowledged.set(`k/${i}`, `v${i}`);
    }
    await client.delete({ key: utf8.encode("k/0") });
    acknowledged.set("k/0", undefined);
    // k/1 and k/10 .. k/19.
    await client.delete({ key: utf8.encode("k/1"), prefix: true });
    for (const key of acknowledged.keys()) if (key.startsWith("k/1")) acknowledged.set(key, undefined);
    const txn = await client.txn({
      compare: [{ key: utf8.encode("k/2"), target: CompareTarget.VALUE, result: CompareResult.EQUAL, value: utf8.encode("v2") }],
      success: [
        { request: { case: "put", value: { key: utf8.encode("k/2"), value: utf8.encode("from-txn") } } },
        { request: { case: "delete", value: { key: utf8.encode("k/3") } } },
        { request: { case: "put", value: { key: utf8.encode("t/new"), value: utf8.encode("created") } } },
      ],
    });
    expect(txn.succeeded).toBe(true);
    acknowledged.set("k/2", "from-txn");
    acknowledged.set("k/3", undefined);
    acknowledged.set("t/new", "created");
    revisionBeforeSave = txn.header?.revision ?? 0n;

    // A writer that goes on during the save: what it had acknowledged before the save started must be
    // in the backup; what it wrote during the save may or may not be.
    let writing = true;
    let saving = false;
    const during = new Map<string, string>();
    const writer = (async () => {
      for (let n = 0; writing; n++) {
        const key = `bg/${n}`;
        const response = await client.put({ key: utf8.encode(key), value: utf8.encode(`b${n}`) });
        if (!saving) {
          acknowledged.set(key, `b${n}`);
          revisionBeforeSave = response.header?.revision ?? revisionBeforeSave;
        } else during.set(key, `b${n}`);
      }
    })();
    await waitFor("background writes", 10_000, async () => (acknowledged.has("bg/5") ? true : undefined));

    // A follower first: its read barrier asks the leader, so the backup still holds every acknowledged write.
    const leader = await source.stableLeader();
    const endpoints = [...source.ids.filter((id) => id !== leader.id), leader.id].map((id) => source?.cluster.clientUrl(id) ?? "");
    saving = true;
    const save = await timings.time("snapshot save (its own process)", () =>
      raftkv(["snapshot", "save", file(), "--endpoints", endpoints.join(","), "--output", "json"]),
    );
    expect(save.stderr).toBe("");
    expect(save.code).toBe(exitCodes.ok);
    const line = JSON.parse(save.stdout) as { endpoint: string; revision: string; keyCount: string; sha256: string };
    expect(line.endpoint).toBe(endpoints[0]);
    writing = false;
    await writer;
    expect(during.size).toBeGreaterThan(0);
    expect(readdirSync(work)).toEqual(["backup.db"]);

    // The file itself: every acknowledged key with its value, nothing deleted, a revision at least the
    // last acknowledged one; writes made during the save either absent or with their value.
    const { data } = await readBackupFile(file());
    const store = createKvStore();
    store.restore(data);
    expect(BigInt(store.revision)).toBeGreaterThanOrEqual(revisionBeforeSave);
    for (const [key, value] of acknowledged) {
      const kv = store.get(create(GetRequestSchema, { key: utf8.encode(key) })).kv;
      expect(kv === undefined ? undefined : text.decode(kv.value), key).toBe(value);
    }
    for (const [key, value] of during) {
      const kv = store.get(create(GetRequestSchema, { key: utf8.encode(key) })).kv;
      if (kv !== undefined) expect(text.decode(kv.value)).toBe(value);
    }
    saved = { revision: BigInt(store.revision), keyCount: store.keyCount };
    expect(line.revision).toBe(String(store.revision));
  });

  it("status verifies the file and shows its revision and keys (table and json)", async () => {
    const json = await raftkv(["snapshot", "status", file(), "--output", "json"]);
    expect(json.code).toBe(exitCodes.ok);
    const status = JSON.parse(json.stdout) as Record<string, string>;
    expect(status.revision).toBe(String(saved.revision));
    expect(status.keyCount).toBe(String(saved.keyCount));
    expect(status.dataBytes).toBe(String(readFileSync(file()).byteLength - 128));
    expect(status.sha256).toMatch(/^[0-9a-f]{64}$/);
    const table = await cli(["snapshot", "status", file()]);
    expect(table.code).toBe(exitCodes.ok);
    expect(table.stdout.split("\n")[0]).toMatch(/^REVISION\s+APPLIED_INDEX\s+RAFT_TERM\s+MEMBER\s+KEYS\s+BYTES\s+SHA256\s+CREATED$/);
    expect(table.stdout).toContain(status.sha256);
  });

  it("restores three new data directories that a new cluster of real `raftkv serve` starts from", async () => {
    await source?.close();
    source = undefined;
    const ports = await freePorts(6);
    const names = ["alpha", "bravo", "charlie"];
    names.forEach((name, i) =>
      members.push({
        id: i + 1,
        name,
        peerUrl: `http://127.0.0.1:${ports[2 * i] ?? 0}`,
        clientUrl: `http://127.0.0.1:${ports[2 * i + 1] ?? 0}`,
      }),
    );
    const initialCluster = formatInitialCluster(members);
    const ids = new Set<string>();
    for (const member of members) {
      const restore = await timings.time(`restore ${member.name} (its own process)`, () =>
        raftkv([
          "snapshot",
          "restore",
          file(),
          "--data-dir",
          join(work, member.name),
          "--name",
          member.name,
          "--initial-cluster",
          initialCluster,
          "--output",
          "json",
        ]),
      );
      expect(restore.stderr).toBe("");
      expect(restore.code).toBe(exitCodes.ok);
      const result = JSON.parse(restore.stdout) as { clusterId: string; memberId: string; snapshotTerm: string };
      expect(result.memberId).toBe(String(member.id));
      expect(result.snapshotTerm).toBe("1");
      ids.add(result.clusterId);
      expect(readdirSync(join(work, member.name)).sort()).toEqual(["member.json", "raft"]);
    }
    // Restored apart, the members agree on the cluster id without being told one.
    expect(ids.size).toBe(1);
    clusterId = [...ids][0] ?? "";
    expect(clusterId).toMatch(/^restored-[0-9a-f]{16}$/);
    reaper = startReaper();
    mkdirSync(join(work, "logs"));
    for (const member of members) {
      const node = new NodeProcess({
        id: member.id,
        command: [process.execPath, join(repoRoot, "bin", "raftkv.js"), "serve"],
        args: [
          "--name",
          member.name,
          "--data-dir",
          join(work, member.name),
          "--cluster-id",
          clusterId,
          "--initial-cluster",
          initialCluster,
          "--log-level",
          "warn",
          ...fastTiming,
        ],
        cwd: repoRoot,
        logPath: join(work, "logs", `${member.name}.log`),
        reaper,
        onCrash: (id, code) => console.error(`restored node ${id} exited with ${code}:\n${node.logTail()}`),
      });
      restored.push(node);
      node.start();
    }
    const client = createRaftkvClient({
      endpoints: members.map((m) => m.clientUrl),
      attemptTimeoutMs: 2_000,
      timeoutMs: 20_000,
      attemptsMax: 200,
    });
    restoredClient = client;
    await timings.time("restored cluster up (leader known to all)", () =>
      waitFor("a leader in the restored cluster", 40_000, async () => {
        const all = await client.statusAll();
        const leaders = new Set(all.map((s) => s.status?.status?.leader ?? 0n));
        return leaders.size === 1 && !leaders.has(0n) ? true : undefined;
      }),
    );

    // Linearizable reads, on every member: each acknowledged key with its value, each deleted key gone.
    for (const member of members) {
      const one = createRaftkvClient({ endpoints: [member.clientUrl], timeoutMs: 20_000 });
      try {
        for (const [key, value] of acknowledged) {
          const got = await one.get({ key: utf8.encode(key) });
          expect(got.kv === undefined ? undefined : text.decode(got.kv.value), `${member.name}: ${key}`).toBe(value);
          expect(got.header?.revision ?? 0n).toBeGreaterThanOrEqual(saved.revision);
        }
      } finally {
        one.close();
      }
    }
    const count = await client.range({ key: new Uint8Array(0), prefix: true, countOnly: true });
    expect(count.count).toBe(BigInt(saved.keyCount));
    expect(count.header?.revision).toBe(saved.revision);

    // New writes: revisions go on from the saved one.
    const put = await client.put({ key: utf8.encode("after/restore"), value: utf8.encode("yes") });
    expect(put.header?.revision).toBe(saved.revision + 1n);
    const again = await client.put({ key: utf8.encode("k/2"), value: utf8.encode("changed") });
    expect(again.header?.revision).toBe(saved.revision + 2n);
    const got = await client.get({ key: utf8.encode("k/2") });
    expect(got.kv?.version).toBe(3n);
    expect(text.decode(got.kv?.value ?? new Uint8Array(0))).toBe("changed");
  });

  it("refuses a damaged file in status and restore, saying so", async () => {
    const bytes = readFileSync(file());
    const damagedData = join(work, "damaged-data.db");
    writeFileSync(damagedData, Buffer.from(bytes).fill(bytes[200] === undefined ? 0 : bytes[200] ^ 0xff, 200, 201));
    const damagedHeader = join(work, "damaged-header.db");
    copyFileSync(file(), damagedHeader);
    writeFileSync(damagedHeader, Buffer.from(bytes).fill((bytes[17] ?? 0) ^ 0x01, 17, 18));
    for (const [path, message] of [
      [damagedData, /the data's SHA-256 is [0-9a-f]{64}, but the header says [0-9a-f]{64}: the file is damaged/],
      [damagedHeader, /the header checksum does not match: the file is damaged/],
    ] as const) {
      const status = await raftkv(["snapshot", "status", path]);
      expect(status.code).toBe(exitCodes.failed);
      expect(status.stderr).toMatch(message);
      expect(status.stderr).toContain(path);
      const target = join(work, `restore-of-${path.endsWith("data.db") ? "data" : "header"}`);
      const restore = await cli([
        "snapshot",
        "restore",
        path,
        "--data-dir",
        target,
        "--id",
        "1",
        "--initial-cluster",
        formatInitialCluster(members),
      ]);
      expect(restore.code).toBe(exitCodes.failed);
      expect(restore.stderr).toMatch(message);
      // Nothing was written.
      expect(existsSync(target)).toBe(false);
    }
  });

  it("refuses to restore into a data directory that is not empty", async () => {
    const initialCluster = formatInitialCluster(members);
    const used = await cli([
      "snapshot",
      "restore",
      file(),
      "--data-dir",
      join(work, "alpha"),
      "--name",
      "alpha",
      "--initial-cluster",
      initialCluster,
    ]);
    expect(used.code).toBe(exitCodes.failed);
    expect(used.stderr).toMatch(/refusing to restore into .*alpha: it is not empty \(it holds .*member\.json/);
    const other = join(work, "other");
    mkdirSync(other);
    writeFileSync(join(other, "notes.txt"), "mine");
    const stray = await cli(["snapshot", "restore", file(), "--data-dir", other, "--name", "alpha", "--initial-cluster", initialCluster]);
    expect(stray.code).toBe(exitCodes.failed);
    expect(stray.stderr).toMatch(/it is not empty \(it holds notes\.txt\)/);
    expect(readdirSync(other)).toEqual(["notes.txt"]);
    // An empty directory is fine, and --cluster-id is taken as given.
    const empty = join(work, "empty");
    mkdirSync(empty);
    const ok = await cli([
      "snapshot",
      "restore",
      file(),
      "--data-dir",
      empty,
      "--name",
      "bravo",
      "--initial-cluster",
      initialCluster,
      "--cluster-id",
      "mine",
      "--output",
      "json",
    ]);
    expect(ok.stderr).toBe("");
    expect(JSON.parse(ok.stdout)).toMatchObject({ clusterId: "mine", memberId: "2" });
  });
});
