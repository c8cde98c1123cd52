import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { build } from "esbuild";
import { assert } from "../../src/lib/assert.js";
import { repoRoot } from "./e2e-cluster.js";

/**
 * A tiny web server on loopback for the browser test: `/` is an empty page that loads `/page.js`, the
 * connect-web client of browser-page.ts bundled by esbuild. Its origin (another port than the nodes')
 * is what the nodes' --cors-origins must allow.
 */
export interface PageServer {
  /** e.g. http://127.0.0.1:41234, the page's origin. */
  readonly origin: string;
  close(): Promise<void>;
}

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>raftkv e2e</title><script type="module" src="/page.js"></script></head><body></body></html>
`;

export async function bundlePage(): Promise<string> {
  const result = await build({
    entryPoints: [join(repoRoot, "test", "e2e", "browser-page.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  const output = result.outputFiles[0];
  assert(output !== undefined && result.outputFiles.length === 1, "esbuild: one output file for the page");
  return output.text;
}

export async function startPageServer(script: string): Promise<PageServer> {
  const server: Server = createServer((request, response) => {
    if (request.method === "GET" && request.url === "/") {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page);
    } else if (request.method === "GET" && request.url === "/page.js") {
      response.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(script);
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
