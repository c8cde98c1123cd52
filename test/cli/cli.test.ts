import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NotLeaderError, UnknownOutcomeError } from "../../src/driver/errors.js";
import { exitCodes, runCli, type CliIo } from "../../src/cli/index.js";
import { FakeNode } from "../rpc/fake-node.js";
import { startServer, type TestServer } from "../server/harness.js";

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

let leader: TestServer;
let follower: TestServer;
let down: string;

beforeAll(async () => {
  leader = await startServer({ node: new FakeNode(1) });
  follower = await startServer({ node: new FakeNode(2, {}, leader.node.store) });
  follower.node.role = "follower";
  follower.node.leader = 1;
  follower.node.fail = (kind) => (kind === "mutate" ? new NotLeaderError(1, leader.url) : undefined);
  const closed = await startServer();
  down = closed.url;
  await closed.close();
});

afterAll(async () => {
  await Promise.all([leader.close(), follower.close()]);
});

async function raftkv(...args: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    env: { RAFTKV_ENDPOINTS: `${follower.url},${leader.url}` },
    signal: new AbortController().signal,
  };
  // A default deadline first, so that a test's own --timeout (parsed later) wins.
  const [verb = "", ...rest] = args;
  const code = await runCli([verb, "--timeout", "2s", ...rest], io);
  return { code, stdout, stderr };
}

describe("raftkv client verbs", () => {
  it("puts through a follower and reads back, as a table and as JSON", async () => {
    expect(await raftkv("put", "cli/a", "hello world")).toMatchObject({
      code: exitCodes.ok,
      stdout: expect.stringMatching(/^OK revision \d+\n$/),
    });
    const table = await raftkv("get", "cli/a");
    expect(table.code).toBe(exitCodes.ok);
    expect(table.stdout).toMatch(/KEY\s+VALUE\s+CREATE_REVISION\s+MOD_REVISION\s+VERSION\ncli\/a\s+hello world\s+\d+\s+\d+\s+1\n/);
    expect((await raftkv("get", "cli/a", "--value-only")).stdout).toBe("hello world\n");
    const json = JSON.parse((await raftkv("get", "cli/a", "-o", "json")).stdout) as { kv: { value: string } };
    expect(Buffer.from(json.kv.value, "base64").toString()).toBe("hello world");
  });

  it("exits 3 for a missing key, and prints nothing", async () => {
    expect(await raftkv("get", "cli/missing")).toEqual({ code: exitCodes.negative, stdout: "", stderr: "" });
  });

  it("ranges a prefix with paging under a limit, and counts", async () => {
    for (const k of ["r/1", "r/2", "r/3"]) await raftkv("put", k, "v");
    const listed = await raftkv("range", "r/", "--limit", "2", "--keys-only");
    expect(
      listed.stdout
        .trim()
        .split("\n")
        .slice(1)
        .map((l) => l.split(/\s+/)[0]),
    ).toEqual(["r/1", "r/2"]);
    expect(listed.stderr).toContain("1 more keys");
    expect((await raftkv("range", "r/", "--count-only")).stdout).toBe("3\n");
    expect(await raftkv("del", "r/", "--prefix")).toMatchObject({ code: 0, stdout: expect.stringMatching(/^deleted 3 revision/) });
  });

  it("runs a compare-and-swap txn: exit 0 when it swapped, 3 when the condition failed", async () => {
    await raftkv("put", "cas", "v1");
    const swapped = await raftkv("txn", "--if", "cas == v1", "--then", "put cas v2", "--else", "get cas");
    expect(swapped.code).toBe(exitCodes.ok);
    expect(swapped.stdout).toContain("SUCCEEDED");
    const lost = await raftkv("txn", "--if", "cas == v1", "--then", "put cas v3", "--else", "get cas");
    expect(lost.code).toBe(exitCodes.negative);
    expect(lost.stdout).toContain("get: cas = v2");
    const created = await raftkv("txn", "--if", "version(fresh) == 0", "--then", "put fresh 1");
    expect(created.code).toBe(exitCodes.ok);
  });

  it("watches from a revision and stops after --count events", async () => {
    const put = await raftkv("put", "w/k", "1", "-o", "json");
    const revision = (JSON.parse(put.stdout) as { header: { revision: string } }).header.revision;
    await raftkv("put", "w/k", "2");
    const watched = await raftkv("watch", "w/", "--prefix", "--rev", revision, "--count", "2");
    expect(watched.code).toBe(exitCodes.ok);
    expect(watched.stdout.trim().split("\n")).toEqual([`PUT w/k 1 revision ${revision}`, `PUT w/k 2 revision ${BigInt(revision) + 1n}`]);
  });

  it("shows every endpoint's status and exits 4 when one is unreachable", async () => {
    const all = await raftkv("status", "--endpoints", `${leader.url},${follower.url}`);
    expect(all.code).toBe(exitCodes.ok);
    expect(all.stdout).toMatch(/ENDPOINT\s+ID\s+NAME\s+ROLE\s+TERM\s+COMMIT\s+APPLIED\s+LEADER/);
    expect(all.stdout).toMatch(/node-1\s+leader/);
    expect(all.stdout).toMatch(/node-2\s+follower/);
    const partial = await raftkv("status", "--endpoints", `${leader.url},${down}`);
    expect(partial.code).toBe(exitCodes.unavailable);
    expect(partial.stdout).toContain("unreachable");
  });

  it("lists members", async () => {
    const members = await raftkv("members");
    expect(members.code).toBe(exitCodes.ok);
    expect(members.stdout).toMatch(/ID\s+NAME\s+PEER_URLS\s+CLIENT_URLS\s+LEARNER\n2\s+node-2/);
  });

  it.each([
    [["put", "only-key"], "expected KEY VALUE, got 1 argument(s)"],
    [["get", "k", "--bogus"], "Unknown option '--bogus'"],
    [["get", "k", "--output", "yaml"], "--output must be table or json"],
    [["get", "k", "--timeout", "5"], "--timeout must be a duration like 500ms"],
    [["watch", "k", "--rev", "-1"], "--rev"],
    [["txn", "--if", "k ~ v", "--then", "get k"], "unknown operator"],
    [["range", "p", "--keys-only", "--count-only"], "exclude each other"],
  ])("refuses %j with exit code 2", async (args, message) => {
    const run = await raftkv(...args);
    expect(run.code).toBe(exitCodes.usage);
    expect(run.stderr).toContain(message);
  });

  it("exits 1 when the server refuses the request, naming the problem", async () => {
    const run = await raftkv("put", "x".repeat(5000), "v");
    expect(run.code).toBe(exitCodes.failed);
    expect(run.stderr).toContain("exceeds the limit of 4096");
    expect(run.stderr).toContain("[resource_exhausted, limit-exceeded]");
  });

  it("exits 4 when no endpoint answers, and 5 when a write's outcome stayed unknown", async () => {
    const unreachable = await raftkv("get", "k", "--endpoints", down, "--timeout", "300ms");
    expect(unreachable.code).toBe(exitCodes.unavailable);
    leader.node.fail = (kind) => (kind === "mutate" ? new UnknownOutcomeError("leadership lost") : undefined);
    try {
      const unknown = await raftkv("put", "k", "v", "--timeout", "300ms");
      expect(unknown.code).toBe(exitCodes.unknownOutcome);
      expect(unknown.stderr).toContain("may or may not have been applied");
    } finally {
      leader.node.fail = undefined;
    }
  });

  it("prints usage for no command (exit 2), help (exit 0) and per-command help", async () => {
    const io = (sink: { out: string }): CliIo => ({
      stdout: (t) => (sink.out += t),
      stderr: (t) => (sink.out += t),
      env: {},
      signal: new AbortController().signal,
    });
    const none = { out: "" };
    expect(await runCli([], io(none))).toBe(exitCodes.usage);
    expect(none.out).toContain("Usage: raftkv <command>");
    const help = { out: "" };
    expect(await runCli(["txn", "--help"], io(help))).toBe(exitCodes.ok);
    expect(help.out).toContain("raftkv txn --if 'config == v1' --then 'put config v2'");
    const unknown = { out: "" };
    expect(await runCli(["frobnicate"], io(unknown))).toBe(exitCodes.usage);
    expect(unknown.out).toContain('unknown command "frobnicate"');
  });
});
