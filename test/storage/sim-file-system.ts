import { dirname } from "node:path";
import type { Prng } from "../../src/lib/prng.js";
import type { FileHandle, FileSystem } from "../../src/storage/index.js";

/**
 * A simulated disk for fault tests. It enforces the durability model documented in
 * src/storage/file-system.ts, so code that forgets an fsync loses data here:
 * - a file's bytes survive a crash only up to its last sync; later writes survive as a prefix (the last
 *   one possibly torn), or, with `reorderSectors`, as a random subset of their 512-byte sectors;
 * - a creation, rename or unlink survives only after syncDir of its directory (per directory, a crash
 *   keeps a prefix of the unsynced changes, in order, or with `reorderNames` any subset of them);
 * - faults: after a number of operations, chosen operation kinds fail with ENOSPC or EIO (sticky, like a
 *   full or broken disk); or the disk freezes (every operation hangs: the process has crashed).
 * Directories themselves are always durable.
 */
export type FsOp = "open" | "close" | "write" | "datasync" | "sync" | "rename" | "unlink" | "syncDir" | "readFile" | "readdir" | "mkdirp";

interface PendingWrite {
  readonly position: number;
  readonly bytes: Uint8Array;
}

class Inode {
  /** The current content is data[0, size); the rest is spare capacity, so appends grow geometrically. */
  private buf: Uint8Array = new Uint8Array(0);
  private size = 0;
  durable: Uint8Array = new Uint8Array(0);
  pending: PendingWrite[] = [];

  get data(): Uint8Array {
    return this.buf.subarray(0, this.size);
  }

  set data(content: Uint8Array) {
    this.buf = content;
    this.size = content.byteLength;
  }

  write(bytes: Uint8Array, position: number): void {
    const end = position + bytes.byteLength;
    if (end > this.buf.byteLength) {
      const grown = new Uint8Array(Math.max(end, this.buf.byteLength * 2));
      grown.set(this.data);
      this.buf = grown;
    }
    this.buf.set(bytes, position);
    this.size = Math.max(this.size, end);
    this.pending.push({ position, bytes: bytes.slice() });
  }

  sync(): void {
    this.durable = this.data.slice();
    this.pending = [];
  }
}

type NameOp = { readonly kind: "set"; readonly name: string; readonly inode: Inode } | { readonly kind: "delete"; readonly name: string };

export interface CrashOptions {
  /** Apply no unsynced data at all (a clean power cut right after the last sync). */
  readonly loseAllUnsynced?: boolean;
  /** Persist unsynced writes as random sectors instead of an in-order prefix. */
  readonly reorderSectors?: boolean;
  /** Keep a random subset of each directory's unsynced changes instead of an in-order prefix. */
  readonly reorderNames?: boolean;
  /** Flip this many random bits in the surviving files whose path passes `flipFilter`. */
  readonly flipBits?: number;
  readonly flipFilter?: (path: string) => boolean;
}

export interface FlippedBit {
  readonly path: string;
  readonly offset: number;
  readonly bit: number;
}

export class SimFileSystem implements FileSystem {
  private readonly dirs = new Set<string>(["/"]);
  private names = new Map<string, Inode>();
  private durableNames = new Map<string, Inode>();
  private pendingNameOps: { readonly dir: string; readonly op: NameOp }[] = [];
  private dead = false;
  private opsUntilFreeze: number | undefined;
  private freezeKinds: ReadonlySet<FsOp> | undefined;
  private fault: { opsUntil: number; readonly code: "ENOSPC" | "EIO"; readonly ops: ReadonlySet<FsOp> } | undefined;
  private onFreeze: (() => void) | undefined;
  private held: { readonly kinds: ReadonlySet<FsOp>; readonly gate: Promise<void> } | undefined;
  private releaseHeld: (() => void) | undefined;
  /** Resolves when the disk freezes (see freezeAfter). */
  readonly frozen: Promise<void>;
  /** Counts of operations that completed, for tests that measure batching. */
  readonly counts: Record<FsOp, number> = {
    open: 0,
    close: 0,
    write: 0,
    datasync: 0,
    sync: 0,
    rename: 0,
    unlink: 0,
    syncDir: 0,
    readFile: 0,
    readdir: 0,
    mkdirp: 0,
  };
  /** Bits flipped by the crash that made this disk. */
  flipped: readonly FlippedBit[] = [];

  constructor() {
    this.frozen = new Promise((resolve) => {
      this.onFreeze = resolve;
    });
  }

  /**
   * After `ops` more operations (and then at the first operation of one of `kinds`, if given), every
   * operation hangs forever: the process using the disk is dead.
   */
  freezeAfter(ops: number, kinds?: readonly FsOp[]): void {
    this.opsUntilFreeze = ops;
    this.freezeKinds = kinds === undefined ? undefined : new Set(kinds);
  }

  /** After `ops` more operations, every operation of the given kinds fails with `code`, for good. */
  failAfter(ops: number, code: "ENOSPC" | "EIO", kinds: readonly FsOp[]): void {
    this.fault = { opsUntil: ops, code, ops: new Set(kinds) };
  }

  /**
   * Operations of these kinds wait (in flight) until release(): lets a test crash at the moment a
   * write is on its way to the disk.
   */
  hold(kinds: readonly FsOp[]): void {
    this.held = { kinds: new Set(kinds), gate: new Promise((resolve) => (this.releaseHeld = resolve)) };
  }

  release(): void {
    this.held = undefined;
    this.releaseHeld?.();
  }

  get isFrozen(): boolean {
    return this.dead;
  }

  /**
   * Simulates a crash: this disk freezes, and the returned disk holds what survived, decided by `prng`.
   */
  crash(prng: Prng, options: CrashOptions = {}): SimFileSystem {
    this.freeze();
    const next = new SimFileSystem();
    for (const dir of this.dirs) next.dirs.add(dir);
    const names = new Map(this.durableNames);
    const byDir = new Map<string, NameOp[]>();
    for (const { dir, op } of this.pendingNameOps) byDir.set(dir, [...(byDir.get(dir) ?? []), op]);
    for (const ops of byDir.values()) {
      if (options.loseAllUnsynced) continue;
      if (options.reorderNames) {
        for (const op of ops) if (prng.chance(0.5)) applyNameOp(names, op);
        continue;
      }
      const kept = prng.int(0, ops.length);
      for (const op of ops.slice(0, kept)) applyNameOp(names, op);
    }
    const survivors = new Map<Inode, Inode>();
    for (const [name, inode] of names) {
      let survivor = survivors.get(inode);
      if (survivor === undefined) {
        survivor = new Inode();
        survivor.data = surviving(inode, prng, options);
        survivor.sync();
        survivors.set(inode, survivor);
      }
      next.names.set(name, survivor);
    }
    const flipped: FlippedBit[] = [];
    const candidates = [...next.names.entries()].filter(
      ([path, inode]) => inode.data.byteLength > 0 && (options.flipFilter?.(path) ?? true),
    );
    for (let i = 0; i < (options.flipBits ?? 0) && candidates.length > 0; i++) {
      const [path, inode] = prng.pick(candidates);
      const offset = prng.int(0, inode.data.byteLength - 1);
      const bit = prng.int(0, 7);
      inode.data[offset] = (inode.data[offset] ?? 0) ^ (1 << bit);
      inode.sync();
      flipped.push({ path, offset, bit });
    }
    next.flipped = flipped;
    next.durableNames = new Map(next.names);
    return next;
  }

  /** The current content of a file, for tests that inspect or damage it. */
  peek(path: string): Uint8Array | undefined {
    return this.names.get(path)?.data.slice();
  }

  /** Replaces a file's content, durably (for tests that damage files by hand). */
  poke(path: string, data: Uint8Array): void {
    const inode = this.names.get(path);
    if (inode === undefined) throw new Error(`no file ${path}`);
    inode.data = data.slice();
    inode.sync();
  }

  /** Every file path, sorted. */
  paths(): string[] {
    return [...this.names.keys()].sort();
  }

  async mkdirp(path: string): Promise<void> {
    await this.step("mkdirp");
    for (let dir = path; !this.dirs.has(dir); dir = dirname(dir)) this.dirs.add(dir);
  }

  async readdir(path: string): Promise<string[]> {
    await this.step("readdir");
    if (!this.dirs.has(path)) throw fsError("ENOENT", path);
    const prefix = path.endsWith("/") ? path : `${path}/`;
    return [...this.names.keys()].filter((p) => dirname(p) === path).map((p) => p.slice(prefix.length));
  }

  async readFile(path: string): Promise<Uint8Array> {
    await this.step("readFile");
    const inode = this.names.get(path);
    if (inode === undefined) throw fsError("ENOENT", path);
    return inode.data.slice();
  }

  async open(path: string, mode: "create" | "existing"): Promise<FileHandle> {
    await this.step("open");
    if (!this.dirs.has(dirname(path))) throw fsError("ENOENT", path);
    let inode = this.names.get(path);
    if (mode === "existing") {
      if (inode === undefined) throw fsError("ENOENT", path);
    } else {
      inode = new Inode();
      this.changeName(dirname(path), { kind: "set", name: path, inode });
    }
    return this.handle(inode, path);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.step("rename");
    const inode = this.names.get(from);
    if (inode === undefined) throw fsError("ENOENT", from);
    if (dirname(from) !== dirname(to)) throw fsError("EXDEV", to);
    this.changeName(dirname(from), { kind: "delete", name: from });
    this.changeName(dirname(to), { kind: "set", name: to, inode });
  }

  async unlink(path: string): Promise<void> {
    await this.step("unlink");
    if (!this.names.has(path)) throw fsError("ENOENT", path);
    this.changeName(dirname(path), { kind: "delete", name: path });
  }

  async syncDir(path: string): Promise<void> {
    await this.step("syncDir");
    if (!this.dirs.has(path)) throw fsError("ENOENT", path);
    const [mine, others] = partition(this.pendingNameOps, (p) => p.dir === path);
    for (const { op } of mine) applyNameOp(this.durableNames, op);
    this.pendingNameOps = others;
  }

  private handle(inode: Inode, path: string): FileHandle {
    let closed = false;
    const open = (): void => {
      if (closed) throw fsError("EBADF", path);
    };
    return {
      size: async () => {
        await this.step("readFile");
        open();
        return inode.data.byteLength;
      },
      read: async (into, position) => {
        await this.step("readFile");
        open();
        const bytes = inode.data.subarray(position, position + into.byteLength);
        into.set(bytes);
        return bytes.byteLength;
      },
      write: async (data, position) => {
        // A write that fails or is cut short by the crash may still have written part of its data, like a
        // short write before ENOSPC; it is unsynced, so a crash keeps it only as a torn tail.
        await this.step("write", () => inode.write(data.subarray(0, Math.floor(data.byteLength / 2)), position));
        open();
        inode.write(data, position);
      },
      datasync: async () => {
        await this.step("datasync");
        open();
        inode.sync();
      },
      sync: async () => {
        await this.step("sync");
        open();
        inode.sync();
      },
      close: async () => {
        await this.step("close");
        closed = true;
      },
    };
  }

  private changeName(dir: string, op: NameOp): void {
    applyNameOp(this.names, op);
    this.pendingNameOps.push({ dir, op });
  }

  /**
   * Every operation passes here: it may hang (frozen) or fail (fault), then it yields once. `partial` is
   * what an interrupted operation leaves behind.
   */
  private async step(op: FsOp, partial?: () => void): Promise<void> {
    if (this.dead) return hang();
    if (this.opsUntilFreeze !== undefined && this.opsUntilFreeze-- <= 0 && (this.freezeKinds?.has(op) ?? true)) {
      partial?.();
      this.freeze();
      return hang();
    }
    if (this.fault !== undefined && this.fault.opsUntil-- <= 0 && this.fault.ops.has(op)) {
      partial?.();
      throw fsError(this.fault.code, op);
    }
    if (this.held?.kinds.has(op)) await this.held.gate;
    await Promise.resolve();
    if (this.dead) return hang();
    this.counts[op]++;
  }

  private freeze(): void {
    this.dead = true;
    this.onFreeze?.();
  }
}

function surviving(inode: Inode, prng: Prng, options: CrashOptions): Uint8Array {
  let data: Uint8Array = inode.durable.slice();
  const put = (bytes: Uint8Array, position: number): void => {
    if (position + bytes.byteLength > data.byteLength) {
      const grown = new Uint8Array(position + bytes.byteLength);
      grown.set(data);
      data = grown;
    }
    data.set(bytes, position);
  };
  if (options.loseAllUnsynced || inode.pending.length === 0) return data;
  if (options.reorderSectors) {
    const sector = 512;
    for (const write of inode.pending) {
      for (let at = 0; at < write.bytes.byteLength; at += sector) {
        if (prng.chance(0.5)) put(write.bytes.subarray(at, at + sector), write.position + at);
      }
    }
    return data;
  }
  const kept = prng.int(0, inode.pending.length);
  for (const write of inode.pending.slice(0, kept)) put(write.bytes, write.position);
  const torn = inode.pending[kept];
  if (torn !== undefined && prng.chance(0.5)) {
    put(torn.bytes.subarray(0, prng.int(0, torn.bytes.byteLength)), torn.position);
  }
  return data;
}

function applyNameOp(names: Map<string, Inode>, op: NameOp): void {
  if (op.kind === "set") names.set(op.name, op.inode);
  else names.delete(op.name);
}

function partition<T>(items: readonly T[], test: (item: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const item of items) (test(item) ? yes : no).push(item);
  return [yes, no];
}

function fsError(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: simulated failure on ${path}`), { code });
}

/** What a frozen disk does: never answer. */
function hang(): Promise<never> {
  return new Promise<never>(() => undefined);
}
