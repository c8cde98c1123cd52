import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { packageRoot } from "./package-info.js";

/**
 * Where `npm run build` puts the cluster page's script (src/page bundled by esbuild). It is built, not
 * committed: esbuild is a dev dependency, and the image's build stage runs `npm run build` with dev
 * dependencies and copies dist/ into the runtime stage, which has none.
 */
export const clusterPageScript = join("dist", "page", "cluster-page.js");

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>raftkv cluster</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }
td.leader { color: #0a7a2f; font-weight: bold; }
td.candidate, td.precandidate, .down, td.alarm { color: #b3261e; }
.summary strong { font-size: 1.1em; }
.footer { color: #777; }
</style>
<script type="module" src="/cluster-page.js"></script>
</head>
<body><main id="app">Loading the cluster status...</main></body>
</html>
`;

/**
 * The live cluster page on the client port: `/` is a small HTML shell, `/cluster-page.js` the script,
 * which asks ClusterService.ClusterStatus (Connect, same origin) once a second. The script is read once
 * and kept; when the build has not produced it, both routes say how to build it.
 */
export function registerClusterPage(app: FastifyInstance): void {
  const path = join(packageRoot(), clusterPageScript);
  let script: string | undefined;
  const load = async (): Promise<string | undefined> => {
    script ??= await readFile(path, "utf8").catch(() => undefined);
    return script;
  };
  const notBuilt = `the cluster page is not built: ${clusterPageScript} is missing (run npm run build)\n`;

  app.get("/", async (_request, reply) => {
    if ((await load()) === undefined) return reply.code(503).type("text/plain; charset=utf-8").send(notBuilt);
    return reply.type("text/html; charset=utf-8").header("cache-control", "no-cache").send(html);
  });
  app.get("/cluster-page.js", async (_request, reply) => {
    const body = await load();
    if (body === undefined) return reply.code(404).type("text/plain; charset=utf-8").send(notBuilt);
    return reply.type("text/javascript; charset=utf-8").header("cache-control", "no-cache").send(body);
  });
}
