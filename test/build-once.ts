import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Vitest global setup: builds dist/ (src/ and gen/ compiled, the cluster page bundled) once before any test runs, so that the real
 * `raftkv serve` processes the e2e and chaos suites start (through bin/raftkv.js, which runs dist/ when it
 * is current) are the code under test, compiled, as in production: no TypeScript loader in every child.
 */
export default function setup(): void {
  const root = resolve(fileURLToPath(import.meta.url), "..", "..");
  // What `npm run build` does: the compiled server and the cluster page's bundle it serves at /.
  execFileSync("npm", ["run", "--silent", "build"], { cwd: root, stdio: "inherit" });
}
