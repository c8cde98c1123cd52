import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { NodeId } from "../core/index.js";
import { DataDirError, formatIncarnation, writeFileDurably } from "./member-identity.js";

const peersFile = "peers.json";

export type IncarnationVerdict = "accepted" | "changed";

/**
 * The incarnation each member showed this node first, kept in `<data-dir>/peers.json` so that it
 * survives restarts.
 *
 * Why: a member whose data directory was lost and that came back empty anyway (the bootstrap check in
 * bootstrap-check.ts is the first guard; this is the second) has forgotten the votes it cast and the
 * entries it acknowledged. Counting its vote or its acknowledgement again could elect a leader without
 * committed entries, or call an entry committed that only the lost disk held. So once a member's
 * incarnation changes, every batch it sends is refused: a leader never counts its acknowledgements and
 * a candidate never counts its votes. Membership changes, when they exist, give a replaced member a new
 * id instead, so a changed incarnation of the same id is never legitimate.
 *
 * The first incarnation seen is accepted before it is on disk (the write follows at once): if this node
 * crashes in between, it learns the same incarnation again on restart, and a changed one only matters
 * if that member also lost its disk within those milliseconds.
 */
export class PeerIncarnations {
  private readonly known: Map<NodeId, bigint>;
  private readonly refusedLogged = new Set<string>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly path: string,
    known: Map<NodeId, bigint>,
    private readonly onChanged: (peer: NodeId, known: bigint, seen: bigint, firstTime: boolean) => void,
    private readonly onWriteError: (error: unknown) => void,
  ) {
    this.known = known;
  }

  static async load(
    dataDir: string,
    onChanged: (peer: NodeId, known: bigint, seen: bigint, firstTime: boolean) => void,
    onWriteError: (error: unknown) => void,
  ): Promise<PeerIncarnations> {
    const path = join(dataDir, peersFile);
    const known = new Map<NodeId, bigint>();
    let text: string | undefined;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new DataDirError(
          `${path} is not valid JSON; it is written atomically, so it was damaged outside raftkv. Deleting it makes this node forget which incarnation of each member it knew (docs/storage.md)`,
        );
      }
      for (const [id, value] of Object.entries(parsed as Record<string, unknown>)) {
        const peer = Number(id);
        if (!Number.isSafeInteger(peer) || peer <= 0 || typeof value !== "string" || !/^[0-9a-f]{16}$/.test(value)) {
          throw new DataDirError(`${path} holds an invalid entry ${JSON.stringify(id)}: ${JSON.stringify(value)}`);
        }
        known.set(peer, BigInt(`0x${value}`));
      }
    }
    return new PeerIncarnations(path, known, onChanged, onWriteError);
  }

  /**
   * Judges a batch from `peer` carrying `incarnation` (0: the sender sent none, which every raftkv node
   * does; such a batch is refused like a changed one, since its sender's identity cannot be checked).
   */
  check(peer: NodeId, incarnation: bigint): IncarnationVerdict {
    const known = this.known.get(peer);
    if (known === undefined && incarnation !== 0n) {
      this.known.set(peer, incarnation);
      this.persist();
      return "accepted";
    }
    if (known === incarnation) return "accepted";
    const key = `${peer}/${incarnation}`;
    const firstTime = !this.refusedLogged.has(key);
    if (firstTime) this.refusedLogged.add(key);
    this.onChanged(peer, known ?? 0n, incarnation, firstTime);
    return "changed";
  }

  /** The incarnation this node accepts from `peer`, if it has seen one. */
  incarnationOf(peer: NodeId): bigint | undefined {
    return this.known.get(peer);
  }

  /** Resolves once every recorded incarnation is on disk. */
  flushed(): Promise<void> {
    return this.writing;
  }

  private persist(): void {
    // Writes are chained so that the file always ends with the latest map; each writes the whole map.
    this.writing = this.writing.then(async () => {
      const record: Record<string, string> = {};
      for (const [id, value] of [...this.known].sort((a, b) => a[0] - b[0])) record[String(id)] = formatIncarnation(value);
      try {
        await writeFileDurably(this.path, `${JSON.stringify(record)}\n`);
      } catch (error) {
        this.onWriteError(error);
      }
    });
  }
}
