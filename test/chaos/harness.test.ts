import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { createPrng } from "../../src/lib/prng.js";
import { routesMarker } from "./cluster.js";
import { freePorts } from "./free-ports.js";
import type { ChaosOp } from "./history.js";
import type { TimelineEntry } from "./nemesis-runner.js";
import { startReaper } from "./reaper.js";
import { verdictLine, writeReport } from "./report.js";
import { parseCli, rerunCommand, UsageError } from "./run-options.js";
import type { RunResult } from "./run.js";
import { leaderSegments, renderTimelineSvg } from "./timeline-svg.js";
import { KeySpace } from "./workload.js";

describe("command line", () => {
  it("has defaults and a rerun command that parses back to the same run", () => {
    const cli = parseCli([]);
    expect(cli.runs).toBe(1);
    expect(cli.run.nodes).toBe(3);
    expect(cli.run.timeMs).toBe(20_000);
    const custom = parseCli([
      "--seed",
      "42",
      "--time",
      "7",
      "--nodes",
      "5",
      "--nemesis",
      "kill,partition",
      "--workers",
      "3",
      "--serve-args=--tick-ms 50",
    ]).run;
    // Split like a shell: words, with double-quoted parts kept together and unquoted.
    const words =
      rerunCommand(custom)
        .replace("npm run chaos -- ", "")
        .match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
    const again = parseCli(words.map((w) => w.replace(/"/g, ""))).run;
    expect(again).toEqual(custom);
    expect(rerunCommand(custom)).toBe(
      'npm run chaos -- --seed 42 --time 7 --nodes 5 --nemesis kill,partition --workers 3 --serve-args="--tick-ms 50"',
    );
  });

  it("refuses bad input with a message naming the option", () => {
    expect(() => parseCli(["--nodes", "4"])).toThrow(new UsageError("--nodes must be 3 or 5, got 4"));
    expect(() => parseCli(["--time", "ten"])).toThrow(/--time must be a whole number/);
    expect(() => parseCli(["--runs", "0"])).toThrow(/--runs must be between 1/);
    expect(() => parseCli(["--nemesis", "meteor"])).toThrow(/unknown nemesis "meteor"/);
    expect(() => parseCli(["--bogus"])).toThrow(UsageError);
    expect(() => parseCli(["positional"])).toThrow(UsageError);
  });
});

describe("key space", () => {
  it("moves a slot to a fresh key after opsPerKeyMax ops and remembers every key used", () => {
    const keys = new KeySpace("p/", 1, 3);
    const prng = createPrng(1);
    expect([1, 2, 3, 4].map(() => keys.take(prng))).toEqual(["p/k0.0", "p/k0.0", "p/k0.0", "p/k0.1"]);
    expect(keys.extra("probe")).toBe("p/probe");
    expect(keys.keys()).toEqual(["p/k0.0", "p/k0.1", "p/probe"]);
  });
});

describe("timeline picture", () => {
  const op = (id: number, callMs: number, endMs: number, status: "ok" | "fail" | "unknown"): ChaosOp => ({
    id,
    worker: 1,
    kind: "put",
    key: "k",
    value: `v${id}`,
    callUs: callMs * 1000,
    endUs: endMs * 1000,
    outcome: status === "ok" ? { status, output: { kind: "put", revision: id } } : { status, reason: "r" },
    attempts: 1,
    endpoint: "e",
  });
  const fault: TimelineEntry = {
    faultId: 1,
    kind: "partition",
    planned: "partition isolate around the leader (drop)",
    plannedStartMs: 100,
    startMs: 100,
    endMs: 900,
    nodes: [2],
    links: [],
    status: "healed",
    note: "the leader was node 2",
  };

  it("draws every op and a lane per overlapping fault, escaping text", () => {
    const svg = renderTimelineSvg({
      ops: [op(1, 10, 12, "ok"), op(2, 200, 1200, "unknown"), op(3, 300, 310, "fail")],
      timeline: [fault, { ...fault, faultId: 2, kind: "kill", planned: "kill -9 <node 1>", startMs: 200, endMs: 400 }],
      workStartMs: 50,
      healedMs: 1000,
      title: "seed 1 & co",
    });
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.match(/<circle /g)).toHaveLength(1);
    expect(svg).toContain(">x</text>");
    expect(svg).toContain(">o</text>");
    expect(svg).toContain("kill -9 &lt;node 1&gt;");
    expect(svg).toContain("seed 1 &amp; co");
    expect(svg).toContain("healed");
    // Two faults overlap in time: two lanes.
    expect(new Set([...svg.matchAll(/<rect x="[\d.]+" y="(\d+)" width="[\d.]+" height="13"/g)].map((m) => m[1])).size).toBe(2);
  });
});

describe("leader lane", () => {
  it("merges samples into segments of one leader, the highest term winning", () => {
    const samples = [
      { atMs: 0, node: 1, role: "LEADER", term: 1 },
      { atMs: 0, node: 2, role: "FOLLOWER", term: 1 },
      { atMs: 500, node: 1, role: "LEADER", term: 1 },
      { atMs: 1000, node: 1 },
      { atMs: 1000, node: 2, role: "CANDIDATE", term: 2 },
      { atMs: 1500, node: 1, role: "LEADER", term: 1 },
      { atMs: 1500, node: 2, role: "LEADER", term: 3 },
    ];
    expect(leaderSegments(samples)).toEqual([
      { startMs: 0, endMs: 1000, leader: 1 },
      { startMs: 1000, endMs: 1500, leader: 0 },
      { startMs: 1500, endMs: 1500, leader: 2 },
    ]);
  });
});

describe("report", () => {
  it("writes every file of a run folder and a one-line verdict with the rerun command", () => {
    const dir = mkdtempSync(join(tmpdir(), "chaos-report-"));
    try {
      const options = parseCli(["--seed", "9", "--time", "5", "--nemesis", "kill"]).run;
      const op: ChaosOp = {
        id: 1,
        worker: 1,
        kind: "put",
        key: "k",
        value: "w1.1",
        callUs: 0,
        endUs: 1000,
        outcome: { status: "ok", output: { kind: "put", revision: 1 } },
        attempts: 1,
        endpoint: "e",
      };
      const result: RunResult = {
        options,
        dir,
        verdict: "fail",
        reasons: [],
        violations: [{ kind: "lost-write", message: "key k: acknowledged write op 1 is lost <here>", ops: [op] }],
        violationCount: 1,
        stats: {
          workload: { started: 1, ok: 1, fail: 0, unknown: 0, retries: 0 },
          linearizableOps: 1,
          keys: 1,
          searchSteps: 3,
          faultsPlanned: 1,
          faultsInjected: 1,
          faultsByKind: { kill: 1 },
          crashes: 0,
          recoveryMs: 1500,
          watchEvents: 1,
          watchSource: "replay of node 1 from revision 1",
          replicasCompared: 3,
          diskLost: [],
          diskLostReplaced: [],
          members: 3,
          expectedExits: 0,
          durationMs: 9000,
          phases: { start: 1000, workload: 5000, check: 300 },
        },
        rerun: rerunCommand(options),
        plan: [],
        timeline: [],
        history: [op],
        workStartMs: 0,
        healedMs: 5000,
        endpoints: ["http://127.0.0.1:1"],
      };
      writeReport(result, {
        watchEvents: [{ revision: 1, type: "put", key: "k", value: "w1.1" }],
        samples: [{ atMs: 0, node: 1, role: "LEADER", term: 1 }],
      });
      expect(readdirSync(dir).sort()).toEqual([
        "history.jsonl",
        "nemesis.json",
        "report.html",
        "status.jsonl",
        "timeline.svg",
        "verdict.json",
        "watch.jsonl",
      ]);
      expect(JSON.parse(readFileSync(join(dir, "history.jsonl"), "utf8").trim())).toEqual(op);
      expect(JSON.parse(readFileSync(join(dir, "verdict.json"), "utf8"))).toMatchObject({
        verdict: "fail",
        violations: [{ kind: "lost-write", opIds: [1] }],
      });
      expect(readFileSync(join(dir, "report.html"), "utf8")).toContain("acknowledged write op 1 is lost &lt;here&gt;");
      const line = verdictLine(result, dir);
      expect(line).toContain("chaos FAIL 1 violation(s): lost-write seed=9 nodes=3 time=5s nemesis=kill");
      expect(line).toContain("rerun: npm run chaos -- --seed 9 --time 5 --nodes 3 --nemesis kill");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("process hygiene", () => {
  it("the reaper SIGKILLs registered processes when the harness side of its pipe closes", async () => {
    const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    const exited = new Promise<string | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    const reaper = startReaper();
    reaper.add(child.pid ?? 0);
    reaper.close();
    expect(await exited).toBe("SIGKILL");
  });

  it("the reaper leaves processes alone once they are removed", async () => {
    const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 300)"], { stdio: "ignore" });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const reaper = startReaper();
    reaper.add(child.pid ?? 0);
    reaper.remove(child.pid ?? 0);
    reaper.close();
    expect(await exited).toBe(0);
  });

  it("hands out distinct free loopback ports below the ephemeral range (a killed node's port must not go to an outgoing connection)", async () => {
    const ports = await freePorts(6);
    expect(new Set(ports).size).toBe(6);
    const ephemeralStart = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(ephemeralStart);
    }
  });
});

describe("peer routes (peer-routes.mjs)", () => {
  it("sends a node's connections to another node's real peer address through the link's proxy, and nothing else", async () => {
    const listen = async (name: string): Promise<Server> => {
      const server = createServer((socket) => socket.end(name));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return server;
    };
    const port = (server: Server): number => (server.address() as AddressInfo).port;
    const [peer, proxy, other] = [await listen("peer"), await listen("proxy"), await listen("other")];
    try {
      // What a node's HTTP/2 client does (net.connect with options), and the (port, host) form.
      const script = [
        'import net from "node:net";',
        "const read = (socket) => new Promise((resolve) => { let text = ''; socket.on('data', (d) => (text += d)); socket.on('end', () => resolve(text)); });",
        `const a = await read(net.connect({ host: "127.0.0.1", port: ${port(peer)} }));`,
        `const b = await read(net.createConnection(${port(peer)}, "127.0.0.1"));`,
        `const c = await read(net.connect({ host: "127.0.0.1", port: ${port(other)} }));`,
        "console.log([a, b, c].join(' '));",
      ].join("\n");
      const preload = pathToFileURL(join(fileURLToPath(import.meta.url), "..", "peer-routes.mjs")).href;
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        env: {
          ...process.env,
          NODE_OPTIONS: `--import=${preload}`,
          RAFTKV_CHAOS_PEER_ROUTES: `127.0.0.1:${port(peer)}=127.0.0.1:${port(proxy)}`,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      await new Promise((resolve) => child.once("exit", resolve));
      expect(stdout.trim()).toBe("proxy proxy other");
      expect(stderr).toContain(`${routesMarker} in pid ${child.pid}: 1 links`);
    } finally {
      for (const server of [peer, proxy, other]) server.close();
    }
  });
});
