#!/usr/bin/env node
// The `raftkv` command. It runs the compiled JavaScript in dist/ (built by `npm run build`, which
// `npm ci` runs through the `prepare` script) whenever dist/ is at least as new as every source file;
// otherwise, in a checkout whose sources changed since the last build, it runs the TypeScript sources
// through tsx's ESM loader, registered in this process (no child process: signals and exit codes stay
// direct). Compiled code starts faster and spends no CPU on a loader; a stale build is never run.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { setTimeout } from "node:timers";
import { fileURLToPath, URL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const source = join(root, "src", "cli", "index.ts");
const compiled = join(root, "dist", "src", "cli", "index.js");

/** The newest modification time of the TypeScript files under `dir` (0 when there is none). */
function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function compiledIsCurrent() {
  if (!existsSync(compiled)) return false;
  if (!existsSync(source)) return true;
  const builtAt = statSync(compiled).mtimeMs;
  return newestSource(join(root, "src")) <= builtAt && newestSource(join(root, "gen")) <= builtAt;
}

let cli;
if (compiledIsCurrent()) {
  cli = await import(new URL(`file://${compiled}`).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  cli = await import(new URL(`file://${source}`).href);
}
const code = await cli.main(process.argv.slice(2));
process.exitCode = code;
// Everything is closed by now; this only guards against a stray handle keeping a finished command alive.
setTimeout(() => process.exit(code), 2_000).unref();
