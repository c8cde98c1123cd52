import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bytes } from "./bytes.js";
import { startE2eCluster, waitFor, type E2eCluster } from "./e2e-cluster.js";
import { Timings } from "./timings.js";
import { freePorts } from "../chaos/free-ports.js";

/**
 * A real Prometheus (Debian's `prometheus` package, run as a plain process: no systemd) scraping a real
 * 3-node cluster's /metrics every second, asked through its own HTTP API what an operator's dashboards
 * and alerts would ask: is every node up, is there exactly one leader, are WAL fsyncs being measured.
 * This proves the exposition parses in Prometheus itself and that the metric names and labels the
 * documentation and alert rules use are the ones a server really exports.
 */

/** The prometheus executable on PATH, or undefined (the test then skips and says why). */
function findPrometheus(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, "prometheus");
    if (dir !== "" && existsSync(candidate)) return candidate;
  }
  return undefined;
}

const prometheusPath = findPrometheus();
if (prometheusPath === undefined)
  console.warn("e2e: the Prometheus test is skipped: no prometheus on PATH (apt-get install -y prometheus)");

/** How long Prometheus may take to start, and to scrape every target at least twice. */
const prometheusReadyMs = 30_000;
const scrapedMs = 20_000;

/** A free loopback port: bound once by the OS, then released for Prometheus to take. */

interface Vector {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

describe.skipIf(prometheusPath === undefined)(
  "a real Prometheus scraping a 3-node cluster (skipped when prometheus is not installed)",
  () => {
    const timings = new Timings();
    let cluster: E2eCluster | undefined;
    let prometheus: ChildProcess | undefined;
    let dir = "";
    let api = "";

    const query = async (promql: string): Promise<Vector[]> => {
      const response = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = (await response.json()) as { status: string; data?: { resultType: string; result: Vector[] }; error?: string };
      if (body.status !== "success" || body.data === undefined) throw new Error(`query ${promql}: ${body.error ?? response.status}`);
      return body.data.result;
    };
    const scalar = async (promql: string): Promise<number | undefined> => {
      const [first] = await query(promql);
      return first === undefined ? undefined : Number(first.value[1]);
    };

    beforeAll(async () => {
      cluster = await timings.time("start a 3-node cluster", () => startE2eCluster());
      // A few writes, so the fsync histogram has entries beyond the leader's first no-op.
      for (let i = 0; i < 5; i++) await cluster.client.put({ key: bytes(`prometheus/${i}`), value: bytes("v") });

      dir = mkdtempSync(join(tmpdir(), "raftkv-prometheus-"));
      const targets = cluster.endpoints.map((url) => new URL(url).host);
      writeFileSync(
        join(dir, "prometheus.yml"),
        [
          "global:",
          "  scrape_interval: 1s",
          "  evaluation_interval: 1s",
          "scrape_configs:",
          "  - job_name: raftkv",
          "    scrape_timeout: 900ms",
          "    static_configs:",
          `      - targets: [${targets.map((t) => `"${t}"`).join(", ")}]`,
          "",
        ].join("\n"),
      );
      const [port] = await freePorts(1);
      api = `http://127.0.0.1:${port}`;
      prometheus = spawn(
        prometheusPath ?? "prometheus",
        [
          `--config.file=${join(dir, "prometheus.yml")}`,
          `--storage.tsdb.path=${join(dir, "data")}`,
          `--web.listen-address=127.0.0.1:${port}`,
          "--log.level=warn",
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      let log = "";
      prometheus.stderr?.on("data", (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4_000)));
      await timings.time("Prometheus ready", () =>
        waitFor(
          "Prometheus to answer /-/ready",
          prometheusReadyMs,
          async () => ((await fetch(`${api}/-/ready`)).ok ? true : undefined),
          async () => `prometheus log:\n${log}`,
        ),
      );
    });

    afterAll(async () => {
      if (prometheus !== undefined && prometheus.exitCode === null) {
        const exited = new Promise((resolve) => prometheus?.once("exit", resolve));
        prometheus.kill("SIGKILL");
        await exited;
      }
      await cluster?.close();
      if (dir !== "") rmSync(dir, { recursive: true, force: true });
      console.log(timings.summary("prometheus"));
    });

    it("scrapes every node, sees exactly one leader and a non-empty fsync histogram", async () => {
      const endpoints = cluster?.endpoints ?? [];
      await timings.time("every target up and scraped twice", () =>
        waitFor("Prometheus to scrape every node", scrapedMs, async () => {
          const up = await query('up{job="raftkv"}');
          const scrapes = await scalar('count(count_over_time(up{job="raftkv"}[1m]) >= 2)');
          return up.length === endpoints.length && up.every((v) => v.value[1] === "1") && scrapes === endpoints.length ? true : undefined;
        }),
      );

      const targets = (await (await fetch(`${api}/api/v1/targets`)).json()) as {
        data: { activeTargets: { scrapeUrl: string; health: string; lastError: string }[] };
      };
      expect(targets.data.activeTargets.map((t) => [t.scrapeUrl, t.health, t.lastError]).sort()).toEqual(
        endpoints.map((url) => [`${url}/metrics`, "up", ""]).sort(),
      );

      // Exactly one node says it leads, and every node names that same leader.
      const leaders = await query('raftkv_raft_role{role="leader"} == 1');
      expect(leaders).toHaveLength(1);
      const leaderInstance = leaders[0]?.metric.instance;
      const leaderId = (await query(`raftkv_raft_leader{instance="${leaderInstance}"}`))[0]?.value[1];
      const named = await query("raftkv_raft_leader");
      expect(named.map((v) => v.value[1])).toEqual(endpoints.map(() => leaderId));
      expect(Number(leaderId)).toBeGreaterThan(0);

      // Every node made its log durable at least once (the leader's no-op of its term reaches all three).
      const fsyncs = await query("raftkv_wal_fsync_duration_seconds_count");
      expect(fsyncs).toHaveLength(endpoints.length);
      for (const v of fsyncs) expect(Number(v.value[1]), v.metric.instance).toBeGreaterThan(0);
      expect(await scalar('sum(raftkv_wal_fsync_duration_seconds_bucket{le="+Inf"})')).toBe(
        await scalar("sum(raftkv_wal_fsync_duration_seconds_count)"),
      );
      // The writes above were counted by the node that served them.
      expect(await scalar('sum(raftkv_rpc_requests_total{method="Put",code="ok"})')).toBeGreaterThanOrEqual(5);
    });
  },
);
