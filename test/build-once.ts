import { execFileSync } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Vitest global setup: compiles src/ and gen/ into dist/ once before any test runs, so that the real
 * `raftkv serve` processes the e2e and chaos suites start (through bin/raftkv.js, which runs dist/ when it
 * is current) are the code under test, compiled, as in production: no TypeScript loader in every child.
 */
export default function setup(): void {
  const root = resolve(fileURLToPath(import.meta.url), "..", "..");
  execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")], { cwd: root, stdio: "inherit" });
}
