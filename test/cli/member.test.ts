import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exitCodes, runCli, runServe, type CliIo } from "../../src/cli/index.js";
import { MembershipPendingError, UnknownOutcomeError } from "../../src/driver/errors.js";
import { FakeNode } from "../rpc/fake-node.js";
import { startServer } from "../server/harness.js";
import { freePorts } from "../chaos/free-ports.js";

/**
 * The membership verbs against a real single node (`raftkv serve`, run in this process). One node takes
 * real membership changes: a learner whose peer URL answers nothing is added and removed like any
 * other, it just never catches up, and promoting it is refused (the leader promotes only a learner
 * that answers, and the node runs with --promote-lag-entries 0 besides, so it is refused as lagging
 * if that check comes first).
 */

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const dataDir = mkdtempSync(join(tmpdir(), "raftkv-member-"));
const stopServer = new AbortController();
let served: Promise<number> | undefined;
let endpoint = "";
/** A closed port: a command that sent anything there would exit 4 (unavailable), not 2. */
let nowhere = "";
/** Peer URLs where nothing listens, for learners that never answer. */
let deadPeer = "";
let otherDeadPeer = "";

/** Runs the CLI with a deadline well inside the test's. */
async function raftkv(...args: string[]): Promise<Run> {
  return bare(...args, "--timeout", "5s");
}

/** Runs the CLI with exactly these arguments. */
async function bare(...args: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    env: { RAFTKV_ENDPOINTS: endpoint },
    signal: new AbortController().signal,
  };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

beforeAll(async () => {
  const [clientPort, peerPort, ...unused] = await freePorts(5);
  [nowhere, deadPeer, otherDeadPeer] = unused.map((port) => `http://127.0.0.1:${port}`) as [string, string, string];
  endpoint = `http://127.0.0.1:${clientPort}`;
  const io: CliIo = { stdout: () => {}, stderr: (t) => process.stderr.write(t), env: {}, signal: stopServer.signal };
  // Id 1, named node-1 (the defaults of a node without --initial-cluster).
  const listen = ["--listen-client", `127.0.0.1:${clientPort}`, "--listen-peer", `127.0.0.1:${peerPort}`];
  served = runServe(["--data-dir", dataDir, ...listen, "--tick-ms", "20", "--promote-lag-entries", "0", "--log-level", "error"], io);
  // The node elects itself within a few ticks; the client retries until it answers.
  const ready = await raftkv("member", "list");
  if (ready.code !== exitCodes.ok) throw new Error(`the node did not start: ${ready.stderr}`);
}, 15_000);

afterAll(async () => {
  stopServer.abort();
  const code = await served;
  rmSync(dataDir, { recursive: true, force: true });
  expect(code).toBe(exitCodes.ok);
});

describe("raftkv member and leader", () => {
  it("lists the members as a table, the same with the members alias, and as one line of JSON", async () => {
    const listed = await raftkv("member", "list");
    expect(listed.code).toBe(exitCodes.ok);
    expect(listed.stdout).toMatch(
      new RegExp(`^ID\\s+NAME\\s+PEER_URLS\\s+CLIENT_URLS\\s+LEARNER\\n1\\s+node-1\\s+http\\S+\\s+${endpoint}\\s+no\\n$`),
    );
    expect(await raftkv("members")).toEqual(listed);
    expect((await raftkv("member", "list", "--serializable")).stdout).toBe(listed.stdout);
    const json = await raftkv("member", "list", "-o", "json");
    expect(json.stdout.trim().split("\n")).toHaveLength(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ members: [{ id: "1", name: "node-1", clientUrls: [endpoint] }] });
  });

  it("adds a learner, refuses to promote it while it lags, updates it and removes it", async () => {
    const added = await raftkv("member", "add", "node-2", "--peer-url", deadPeer, "--client-url", "http://127.0.0.1:1");
    expect(added).toMatchObject({ code: exitCodes.ok, stderr: "" });
    const [message, ...table] = added.stdout.trimEnd().split("\n");
    expect(message).toBe("added member 2 (node-2) as a learner; promote it once caught up: raftkv member promote 2");
    expect(table[0]).toMatch(/^ID\s+NAME\s+PEER_URLS\s+CLIENT_URLS\s+LEARNER$/);
    expect(table.slice(1)).toEqual([
      expect.stringMatching(/^1\s+node-1\s.*\sno$/),
      expect.stringMatching(new RegExp(`^2\\s+node-2\\s+${deadPeer}\\s+http://127.0.0.1:1\\s+yes$`)),
    ]);
    expect((await raftkv("member", "list")).stdout).toMatch(/\n2\s+node-2\s+\S+\s+\S+\s+yes\n$/);

    const promote = await raftkv("member", "promote", "2");
    expect(promote.code).toBe(exitCodes.failed);
    expect(promote.stdout).toBe("");
    // Refused as lagging (--promote-lag-entries 0), or as not answering: its node does not run.
    expect(promote.stderr).toMatch(
      /^raftkv member promote: learner 2 (is \d+ entries behind the leader \(at most 0 to be promoted\)|has not answered the leader lately.*) \[failed_precondition, membership-refused\]\n$/,
    );

    const updated = await raftkv("member", "update", "2", "--peer-url", otherDeadPeer, "--name", "node-2b");
    expect(updated.code).toBe(exitCodes.ok);
    expect(updated.stdout).toMatch(
      new RegExp(
        `^updated member 2 \\(node-2b\\): peer URL ${otherDeadPeer}, client URL http://127.0.0.1:1\\nID\\s+NAME[^\\n]*\\n1\\s[^\\n]*\\n2\\s+node-2b\\s+${otherDeadPeer}\\s+http://127.0.0.1:1\\s+yes\\n$`,
      ),
    );

    const removed = await raftkv("member", "remove", "2");
    expect(removed.code).toBe(exitCodes.ok);
    expect(removed.stdout).toMatch(/^removed member 2\nID\s+NAME\s+PEER_URLS\s+CLIENT_URLS\s+LEARNER\n1\s+node-1\s[^\n]*\n$/);

    const reused = await raftkv("member", "add", "again", "--peer-url", deadPeer, "--id", "2");
    expect(reused.code).toBe(exitCodes.failed);
    expect(reused.stderr).toContain("member id 2 was used before and is never reused");
    expect(reused.stderr).toContain("[failed_precondition, membership-refused]");
  });

  it("prints each change as one line of JSON with -o json", async () => {
    const added = await raftkv("member", "add", "node-j", "--peer-url", deadPeer, "-o", "json");
    expect(added.code).toBe(exitCodes.ok);
    expect(added.stdout.trim().split("\n")).toHaveLength(1);
    const response = JSON.parse(added.stdout) as { member: { id: string; name: string; learner: boolean }; members: unknown[] };
    expect(response.member).toMatchObject({ name: "node-j", learner: true });
    expect(response.members).toHaveLength(2);
    const removed = await raftkv("member", "remove", response.member.id, "-o", "json");
    expect(removed.code).toBe(exitCodes.ok);
    expect(JSON.parse(removed.stdout)).toMatchObject({ members: [{ id: "1" }] });
  });

  it("refuses to remove the last voter (exit 1, the server's reason)", async () => {
    const run = await raftkv("member", "remove", "1");
    expect(run).toEqual({
      code: exitCodes.failed,
      stdout: "",
      stderr: "raftkv member remove: node 1 is the last voter [failed_precondition, membership-refused]\n",
    });
  });

  it("transfers leadership with leader transfer, and the same with the move-leader alias", async () => {
    const transfer = await raftkv("leader", "transfer");
    expect(transfer.code).toBe(exitCodes.ok);
    expect(transfer.stdout).toMatch(/^leader is now node 1 \(term \d+\)\n$/);
    expect(await raftkv("move-leader", "--to", "1")).toEqual(transfer);
  });

  it.each([
    [["member", "add"], "expected NAME --peer-url URL, got 0 argument(s)"],
    [["member", "add", ""], "NAME must not be empty"],
    [["member", "add", "n"], "--peer-url URL is required"],
    [
      ["member", "add", "n", "--peer-url", "10.0.0.4:2380"],
      '--peer-url must be an http(s) URL with a host like http://10.0.0.4:2380, got "10.0.0.4:2380"',
    ],
    [["member", "add", "n", "--peer-url", "http://h:2380", "--client-url", "ftp://h:2379"], "--client-url must be an http(s) URL"],
    [["member", "add", "n", "--peer-url", "http://h:2380", "--id", "four"], '--id must be a whole number, got "four"'],
    [["member", "add", "n", "--peer-url", "http://h:2380", "--learner"], "Unknown option '--learner'"],
    [["member", "promote"], "expected ID, got 0 argument(s)"],
    [["member", "promote", "abc"], 'ID must be a member id (a positive whole number), got "abc"'],
    [["member", "remove", "0"], 'ID must be a member id (a positive whole number), got "0"'],
    [["member", "remove", "1", "2"], "expected ID, got 2 argument(s)"],
    [["member", "update", "2"], "--peer-url URL is required"],
    [["member", "update", "x", "--peer-url", "http://h:2380"], "ID must be a member id"],
    [["member", "update", "2", "--peer-url", "http://h:2380", "--name", ""], "--name must not be empty"],
    [["leader", "transfer", "--to", "one"], '--to must be a whole number, got "one"'],
    [["move-leader", "--to", "one"], '--to must be a whole number, got "one"'],
  ])("refuses %j with exit code 2, sending nothing", async (args, message) => {
    const run = await raftkv(...args, "--endpoints", nowhere);
    expect(run.code).toBe(exitCodes.usage);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain(message);
    expect(run.stderr).toContain(`Run raftkv ${args[0] === "move-leader" ? "move-leader" : `${args[0]} ${args[1]}`} --help for usage.`);
  });

  it("lists the sub-commands for raftkv --help, raftkv member (exit 2), member --help and an unknown one", async () => {
    const help = await bare("--help");
    expect(help.code).toBe(exitCodes.ok);
    expect(help.stdout).toMatch(/\n {2}member add NAME --peer-url URL +Add a member/);
    expect(help.stdout).toMatch(/\n {2}members +Same as member list/);
    expect(help.stdout).toMatch(/\n {2}leader transfer +Hand leadership/);
    expect(help.stdout).toMatch(/\n {2}move-leader +Same as leader transfer/);

    const group = await bare("member");
    expect(group.code).toBe(exitCodes.usage);
    expect(group.stdout).toContain("Usage: raftkv member <command>");
    for (const verb of ["list", "add NAME --peer-url URL", "promote ID", "remove ID", "update ID --peer-url URL"]) {
      expect(group.stdout).toContain(`  member ${verb} `);
    }
    expect(await bare("member", "--help")).toEqual({ ...group, code: exitCodes.ok });
    expect((await bare("leader", "help")).stdout).toContain("leader transfer");

    const unknown = await bare("member", "join");
    expect(unknown.code).toBe(exitCodes.usage);
    expect(unknown.stderr).toMatch(/^raftkv member: unknown command "join"\n\nUsage: raftkv member <command>/);

    const add = await bare("member", "add", "--help");
    expect(add.code).toBe(exitCodes.ok);
    expect(add.stdout).toMatch(/^Usage: raftkv member add NAME --peer-url URL \[flags\]\n/);
    expect(add.stdout).toMatch(/--voter +Add a voter/);
  });
});

describe("raftkv member when a change must wait or its outcome stays unknown", () => {
  it("retries a change that must wait for an earlier one, and exits 5 naming member list when the outcome is unknown", async () => {
    const server = await startServer({ node: new FakeNode(1) });
    try {
      let waits = 2;
      server.node.fail = (kind) =>
        kind === "membership" && waits-- > 0 ? new MembershipPendingError("the change at index 7 is not committed yet") : undefined;
      const added = await bare("member", "add", "node-9", "--peer-url", "http://127.0.0.1:1", "--endpoints", server.url, "--timeout", "5s");
      expect(added.stderr).toBe("");
      expect(added.code).toBe(exitCodes.ok);
      expect(added.stdout).toMatch(/^added member 2 \(node-9\) as a learner/);
      expect(waits).toBe(-1);

      server.node.fail = (kind) => (kind === "membership" ? new UnknownOutcomeError("leadership lost") : undefined);
      const unknown = await bare("member", "promote", "2", "--endpoints", server.url, "--timeout", "300ms");
      expect(unknown.code).toBe(exitCodes.unknownOutcome);
      expect(unknown.stderr).toMatch(
        /^raftkv member promote: the change may or may not have been made \(raftkv member list shows whether it was\): /,
      );
    } finally {
      await server.close();
    }
  });
});
