import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/** How long one measurement of the data directory is reused. */
const measuredAgeMsMax = 5_000;

/**
 * The bytes a data directory takes on disk (the sum of its files' sizes, preallocated WAL segments at
 * their full size), measured at most every few seconds however often Status is asked: a directory walk
 * per call would let a busy status page cost file-system work on the node.
 */
export function createDataSize(dir: string): () => Promise<number> {
  let measured: { readonly at: number; readonly bytes: Promise<number> } | undefined;
  return () => {
    const now = performance.now();
    if (measured === undefined || now - measured.at > measuredAgeMsMax) measured = { at: now, bytes: directoryBytes(dir) };
    return measured.bytes;
  };
}

async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    // Gone or unreadable (a snapshot file renamed mid-walk, say): count what can be seen.
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(path);
    else if (entry.isFile())
      total += await stat(path).then(
        (s) => s.size,
        () => 0,
      );
  }
  return total;
}
