import { execFile, execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { startReaper } from "../chaos/reaper.js";
import { findObject, k8sDir, overlays, renderOverlay, repoRoot } from "./kustomize.js";
import { field, listField } from "./pod-spec.js";
import { PodProcess, probeOk, waitUntil } from "./pod-process.js";

/**
 * The alert rules and the metrics they read, checked with Prometheus' own promtool (Debian's
 * `prometheus` package; .ci/run installs it): `promtool check rules` on the PrometheusRule's groups,
 * `promtool test rules` with k8s/monitoring/alerts.test.yaml (each alert firing and not firing), and
 * `promtool check metrics` on a real node's /metrics. Without promtool these tests skip and say why.
 */
const run = promisify(execFile);

function promtoolVersion(): string | undefined {
  try {
    return execFileSync("promtool", ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).split("\n")[0];
  } catch {
    return undefined;
  }
}

/** `promtool check metrics` on `text` (read from stdin); its findings, "" when there are none. */
async function promtoolCheckMetrics(file: string, text: string): Promise<string> {
  writeFileSync(file, text);
  const result = await run("bash", ["-c", 'promtool check metrics < "$1"', "check", file]).catch(
    (error: { stdout?: string; stderr?: string; code?: unknown }) => {
      // Exit code 3 means lint findings; anything else is a failure of the check itself.
      if (error.code !== 3) throw new Error(`promtool check metrics failed:\n${error.stdout ?? ""}${error.stderr ?? ""}`);
      return { stdout: error.stdout ?? "", stderr: error.stderr ?? "" };
    },
  );
  return `${result.stdout}${result.stderr}`.trim();
}

const version = promtoolVersion();
if (version === undefined)
  console.log("k8s: promtool is not installed (Debian package prometheus); the alert rule and metrics checks are skipped");

describe.skipIf(version === undefined)("alert rules and metrics, checked by promtool", () => {
  const dir = mkdtempSync(join(tmpdir(), "raftkv-promtool-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The rule groups of the rendered PrometheusRule as a Prometheus rule file, beside the unit tests. */
  function writeRules(): string {
    const rule = findObject(renderOverlay(overlays[0]), "PrometheusRule", "raftkv");
    // The overlays do not touch the rules; both render the same.
    expect(findObject(renderOverlay(overlays[1]), "PrometheusRule", "raftkv")).toEqual(rule);
    writeFileSync(join(dir, "rules.yaml"), stringify(field(rule, "spec")));
    copyFileSync(join(k8sDir, "monitoring", "alerts.test.yaml"), join(dir, "alerts.test.yaml"));
    return join(dir, "rules.yaml");
  }

  it("promtool check rules accepts the PrometheusRule's groups", async () => {
    const { stdout } = await run("promtool", ["check", "rules", writeRules()]);
    const rules = listField(field(findObject(renderOverlay(overlays[0]), "PrometheusRule", "raftkv"), "spec"), "groups").flatMap((g) =>
      listField(g, "rules"),
    );
    expect(stdout).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  it("promtool test rules: every alert fires when it should and stays quiet on a healthy cluster", async () => {
    writeRules();
    const tests = readFileSync(join(dir, "alerts.test.yaml"), "utf8");
    // Every alert is exercised by the unit tests.
    const alerts = listField(field(findObject(renderOverlay(overlays[0]), "PrometheusRule", "raftkv"), "spec"), "groups")
      .flatMap((g) => listField(g, "rules"))
      .map((r) => String(field(r, "alert")));
    for (const alert of alerts) expect(tests, alert).toMatch(new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
    const result = await run("promtool", ["test", "rules", join(dir, "alerts.test.yaml")]).catch(
      (error: { stdout?: string; stderr?: string }) => {
        throw new Error(`promtool test rules failed:\n${error.stdout ?? ""}${error.stderr ?? ""}`);
      },
    );
    expect(result.stdout).toContain("SUCCESS");
  });

  it("every query of the Grafana dashboard is valid PromQL (promtool check rules, as recording rules)", async () => {
    const dashboard = JSON.parse(readFileSync(join(k8sDir, "monitoring", "dashboard.json"), "utf8")) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const rules = dashboard.panels.flatMap((panel, p) =>
      panel.targets.map((target, t) => ({ record: `dashboard:panel${p}:target${t}`, expr: target.expr })),
    );
    expect(rules.length).toBeGreaterThan(0);
    writeFileSync(join(dir, "dashboard-rules.yaml"), stringify({ groups: [{ name: "dashboard", rules }] }));
    const { stdout } = await run("promtool", ["check", "rules", join(dir, "dashboard-rules.yaml")]);
    expect(stdout).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  it("promtool check metrics accepts a real node's /metrics", async () => {
    const reaper = startReaper();
    const port = 20_000 + 2 * Math.floor(Math.random() * 5_000);
    const node = new PodProcess({
      name: "node-1",
      command: [process.execPath, join(repoRoot, "bin", "raftkv.js"), "serve"],
      env: {
        RAFTKV_LISTEN_CLIENT: `127.0.0.1:${port}`,
        RAFTKV_LISTEN_PEER: `127.0.0.1:${port + 1}`,
        RAFTKV_DATA_DIR: join(dir, "data"),
        RAFTKV_TICK_MS: "20",
      },
      cwd: dir,
      logPath: join(dir, "node.log"),
      reaper,
    });
    try {
      node.start();
      await waitUntil(
        "the node ready",
        30_000,
        () => probeOk(`http://127.0.0.1:${port}/readyz`),
        () => node.logTail(),
      );
      // A write and a read, so that the histograms and the RPC counters have series.
      await run(process.execPath, [join(repoRoot, "bin", "raftkv.js"), "put", "k", "v", "--endpoints", `http://127.0.0.1:${port}`]);
      await run(process.execPath, [join(repoRoot, "bin", "raftkv.js"), "get", "k", "--endpoints", `http://127.0.0.1:${port}`]);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).toContain("raftkv_wal_fsync_duration_seconds_bucket");
      // raftkv's own metrics must pass promtool's lint. prom-client's default Node.js metrics are
      // linted too and their findings printed: three of its gauges end in _total
      // (nodejs_active_handles_total, ...), which promtool reports and only src/metrics could rename.
      const own = text
        .split("\n")
        .filter((line) => /^(# (HELP|TYPE) )?raftkv_/.test(line))
        .join("\n");
      expect(await promtoolCheckMetrics(join(dir, "raftkv-metrics.txt"), `${own}\n`)).toBe("");
      const allFindings = await promtoolCheckMetrics(join(dir, "all-metrics.txt"), text);
      if (allFindings !== "")
        console.log(`k8s: promtool check metrics on the whole /metrics (process and Node.js metrics included):\n${allFindings}`);
      // Every raftkv metric an alert or the dashboard reads is exported under that name.
      const readers =
        readFileSync(join(k8sDir, "base", "prometheusrule.yaml"), "utf8") +
        readFileSync(join(k8sDir, "monitoring", "dashboard.json"), "utf8");
      for (const name of new Set(readers.match(/raftkv_[a-z_]+/g) ?? [])) {
        const exported = name.replace(/_(bucket|count|sum)$/, "");
        expect(text, name).toMatch(new RegExp(`^# TYPE ${exported} `, "m"));
      }
      await node.terminate(15_000);
    } finally {
      if (node.running) await node.kill();
      reaper.close();
    }
  });
});
