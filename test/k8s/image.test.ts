import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { startReaper } from "../chaos/reaper.js";
import { repoRoot } from "./kustomize.js";
import { PodProcess, probeOk, waitUntil } from "./pod-process.js";

/**
 * The image without a Docker engine: scripts/image-build.sh performs the Dockerfile's steps into a
 * scratch directory (npm ci of the build stage, tsc, npm ci --omit=dev of the runtime stage, the COPYs),
 * and this test starts what it produced as the image would run it: the image's ENTRYPOINT and ENV
 * (from the script's image.json), the working directory its WORKDIR, three members on loopback, then a
 * put and a get through the image's own CLI. It also proves the image never writes outside its data
 * directory (a read-only root filesystem in Kubernetes): the image's files are unchanged afterwards
 * and the temporary directory the nodes were given stays empty.
 */
const run = promisify(execFile);

interface ImageConfig {
  readonly root: string;
  readonly workdir: string;
  readonly user: string;
  readonly env: Readonly<Record<string, string>>;
  readonly entrypoint: readonly string[];
  readonly volumes: readonly string[];
}

/** Every file under `dir` with its size and modification time, to tell whether anything wrote there. */
function fingerprint(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (path: string): void => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) walk(child);
      else {
        const stat = statSync(child);
        files.set(relative(dir, child), `${stat.size}/${stat.mtimeMs}`);
      }
    }
  };
  walk(dir);
  return files;
}

describe("the image, built by scripts/image-build.sh from the Dockerfile", () => {
  const dir = mkdtempSync(join(tmpdir(), "raftkv-image-"));
  const out = join(dir, "image");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("builds, holds no sources or dev tools, and runs a 3-member cluster from its own files", async () => {
    const started = Date.now();
    await run("bash", [join(repoRoot, "scripts", "image-build.sh"), out], { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024, timeout: 240_000 });
    console.log(`image: built in ${Date.now() - started} ms`);
    const config = JSON.parse(readFileSync(join(out, "image.json"), "utf8")) as ImageConfig;
    const rootfs = join(out, config.root);
    const app = join(rootfs, config.workdir);
    // Compiled code and production dependencies only.
    expect(existsSync(join(app, "dist", "src", "cli", "index.js"))).toBe(true);
    for (const absent of ["src", "test", "gen", "node_modules/typescript", "node_modules/vitest", "node_modules/eslint"]) {
      expect(existsSync(join(app, absent)), absent).toBe(false);
    }
    expect(existsSync(join(app, "node_modules", "fastify"))).toBe(true);
    expect(config.user).toMatch(/^[1-9]\d*:\d+$/);
    expect(config.entrypoint.slice(-1)).toEqual(["serve"]);

    // The image's paths map into the scratch root; its volume is the one place a node writes.
    const inImage = (path: string): string => (path.startsWith("/") ? join(rootfs, path) : path);
    const volume = config.volumes[0];
    expect(volume).toBeDefined();
    const emptyTmp = join(dir, "tmp");
    mkdirSync(emptyTmp);
    const before = fingerprint(rootfs);
    const reaper = startReaper();
    // Below Linux's ephemeral range; random, so that concurrent runs are unlikely to meet.
    const base = 20_000 + 2 * Math.floor(Math.random() * 5_000);
    const ports = [0, 1, 2].map((i) => ({ client: base + 2 * i, peer: base + 2 * i + 1 }));
    const initialCluster = ports.map((p, i) => `${i + 1}=http://127.0.0.1:${p.peer}|http://127.0.0.1:${p.client}`).join(",");
    const endpoints = ports.map((p) => `http://127.0.0.1:${p.client}`).join(",");
    const nodes = ports.map(
      (p, i) =>
        new PodProcess({
          name: `node-${i + 1}`,
          command: config.entrypoint.map(inImage),
          env: {
            ...config.env,
            // The image's volume, one per member (its own container), and an empty TMPDIR to watch.
            RAFTKV_DATA_DIR: join(dir, `volume-${i + 1}`, relative(volume ?? "/", config.env.RAFTKV_DATA_DIR ?? "")),
            RAFTKV_LISTEN_CLIENT: `127.0.0.1:${p.client}`,
            RAFTKV_LISTEN_PEER: `127.0.0.1:${p.peer}`,
            RAFTKV_ID: String(i + 1),
            RAFTKV_INITIAL_CLUSTER: initialCluster,
            TMPDIR: emptyTmp,
          },
          cwd: app,
          logPath: join(dir, `node-${i + 1}.log`),
          reaper,
        }),
    );
    const cli = (...args: string[]) =>
      run(inImage(config.entrypoint[0] ?? "node"), [...config.entrypoint.slice(1, -1).map(inImage), ...args, "--endpoints", endpoints], {
        cwd: app,
        env: { PATH: process.env.PATH ?? "", ...config.env, TMPDIR: emptyTmp },
        timeout: 30_000,
      });
    try {
      for (const node of nodes) node.start();
      await waitUntil(
        "every member of the image's cluster ready",
        40_000,
        async () => (await Promise.all(ports.map((p) => probeOk(`http://127.0.0.1:${p.client}/readyz`)))).every(Boolean),
        () => nodes.map((n) => `--- ${n.o.name}:\n${n.logTail()}`).join("\n"),
      );
      const put = await cli("put", "from-the-image", "works");
      expect(put.stdout).toMatch(/^OK revision \d+/);
      const get = await cli("get", "from-the-image", "--output", "json");
      const kv = (JSON.parse(get.stdout.trim().split("\n")[0] ?? "{}") as { kv?: { value?: string } }).kv;
      expect(Buffer.from(kv?.value ?? "", "base64").toString()).toBe("works");
      const exits = await Promise.all(nodes.map((n) => n.terminate(30_000)));
      expect(exits.map((e) => e.signal)).toEqual([null, null, null]);
    } finally {
      await Promise.all(nodes.filter((n) => n.running).map((n) => n.kill()));
      reaper.close();
    }
    expect(fingerprint(rootfs)).toEqual(before);
    expect(readdirSync(emptyTmp)).toEqual([]);
    console.log(`image: built, started, put/get and stopped in ${Date.now() - started} ms`);
  }, 300_000);
});
