import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

interface PackageJson {
  readonly name?: unknown;
  readonly version?: unknown;
}

/**
 * The raftkv package's root folder: the nearest ancestor of this module with raftkv's package.json.
 * Searched rather than fixed because this module runs from src/server (through tsx) and from
 * dist/src/server (compiled, also in the image, which keeps package.json in /app).
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "package.json");
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, "utf8")) as PackageJson).name === "raftkv") return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`raftkv's package.json was not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The version in raftkv's package.json, which ClusterService.Status reports. */
export function packageVersion(): string {
  const { version } = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as PackageJson;
  return typeof version === "string" ? version : "unknown";
}
