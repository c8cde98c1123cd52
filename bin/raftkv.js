#!/usr/bin/env node
// The `raftkv` command. In a checkout (after `npm ci`, no build step) it runs the TypeScript sources
// through tsx's ESM loader, registered in this process (no child process: signals and exit codes stay
// direct). An installed package without sources runs the compiled dist/ instead.
import { existsSync } from "node:fs";
import process from "node:process";
import { setTimeout } from "node:timers";
import { URL } from "node:url";

const source = new URL("../src/cli/index.ts", import.meta.url);
const compiled = new URL("../dist/src/cli/index.js", import.meta.url);

let cli;
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  cli = await import(source.href);
} else {
  cli = await import(compiled.href);
}
const code = await cli.main(process.argv.slice(2));
process.exitCode = code;
// Everything is closed by now; this only guards against a stray handle keeping a finished command alive.
setTimeout(() => process.exit(code), 2_000).unref();
