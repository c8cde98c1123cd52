import { createHash, type Hash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { crc32c } from "@node-rs/crc32";
import type { FileHandle, FileSystem } from "./file-system.js";
import { createNodeFileSystem } from "./node-file-system.js";

/**
 * A backup file (`raftkv snapshot save`), little-endian, a fixed 128-byte header then the data:
 *
 *   offset  size  field
 *        0     8  magic "RAFTKVBK"
 *        8     4  format version (1)
 *       12     4  header length (128)
 *       16     8  revision                      (u64, every number a safe integer)
 *       24     8  applied index
 *       32     8  raft term of the node that answered, when it captured the state
 *       40     8  member id of that node
 *       48     8  key count
 *       56     8  data length N
 *       64     8  created at (ms since the Unix epoch, the saving client's clock)
 *       72     4  KvSnapshot format version of the data
 *       76     4  zero
 *       80    32  SHA-256 of the data
 *      112    12  zero
 *      124     4  CRC-32C of bytes [0, 124)
 *      128     N  the data: the state machine's KvSnapshot message (command.proto), exactly N bytes
 *
 * Two checksums because they guard different things: the header's CRC-32C catches a damaged field
 * (a revision or a length that would mislead `status` and `restore`), the SHA-256 covers the data end
 * to end: the node computes it while it encodes, the saving client checks it against the bytes it
 * received, and every read checks it again. The header is fixed-size so that a saving client can
 * stream the data into the file first and write the header, whose length and digest are known only at
 * the end, last, in place. The data is opaque here: the storage layer neither decodes nor depends on
 * the state machine's format.
 */
const magic = new TextEncoder().encode("RAFTKVBK");
export const backupFormatVersion = 1;
export const backupHeaderBytes = 128;
const sha256Bytes = 32;
const crcOffset = 124;
/** Where bytes are read per call when a file is verified without being held in memory. */
const readChunkBytes = 1 << 20;

/** What a backup holds, as the node that served it described it. */
export interface BackupMeta {
  readonly revision: number;
  readonly appliedIndex: number;
  readonly raftTerm: number;
  readonly memberId: number;
  readonly keyCount: number;
  readonly kvFormatVersion: number;
  readonly createdAtMs: number;
}

/** A verified backup file's header. */
export interface BackupInfo extends BackupMeta {
  readonly dataBytes: number;
  /** The data's SHA-256, lowercase hex. */
  readonly sha256: string;
  readonly fileBytes: number;
}

/** A backup file that is not one, or is damaged: the message names the file and what is wrong. */
export class BackupFileError extends Error {
  override readonly name = "BackupFileError";
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
  }
}

export function encodeBackupHeader(info: Omit<BackupInfo, "fileBytes">): Uint8Array {
  const header = new Uint8Array(backupHeaderBytes);
  const view = new DataView(header.buffer);
  header.set(magic, 0);
  view.setUint32(8, backupFormatVersion, true);
  view.setUint32(12, backupHeaderBytes, true);
  const numbers: readonly [number, number][] = [
    [16, info.revision],
    [24, info.appliedIndex],
    [32, info.raftTerm],
    [40, info.memberId],
    [48, info.keyCount],
    [56, info.dataBytes],
    [64, info.createdAtMs],
  ];
  for (const [offset, value] of numbers) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`backup header: ${value} is not a safe non-negative integer`);
    view.setBigUint64(offset, BigInt(value), true);
  }
  view.setUint32(72, info.kvFormatVersion, true);
  const digest = Buffer.from(info.sha256, "hex");
  if (digest.byteLength !== sha256Bytes) throw new RangeError("backup header: the SHA-256 must be 64 hex digits");
  header.set(digest, 80);
  view.setUint32(crcOffset, crc32c(header.subarray(0, crcOffset)), true);
  return header;
}

/**
 * Decodes and checks a header against the file's size. Throws BackupFileError on any damage; the data's
 * digest is checked by the callers, which read the data.
 */
export function decodeBackupHeader(file: string, header: Uint8Array, fileBytes: number): BackupInfo {
  const fail = (reason: string): never => {
    throw new BackupFileError(file, reason);
  };
  if (fileBytes < magic.byteLength || !magic.every((byte, i) => header[i] === byte)) fail("not a raftkv backup file (bad magic)");
  if (fileBytes < backupHeaderBytes || header.byteLength < backupHeaderBytes)
    fail(`truncated: ${fileBytes} bytes is shorter than the ${backupHeaderBytes}-byte header`);
  const view = new DataView(header.buffer, header.byteOffset, backupHeaderBytes);
  const version = view.getUint32(8, true);
  if (version !== backupFormatVersion)
    fail(`backup format version ${version} is not supported (this build reads version ${backupFormatVersion})`);
  if (crc32c(header.subarray(0, crcOffset)) !== view.getUint32(crcOffset, true))
    fail("the header checksum does not match: the file is damaged");
  if (view.getUint32(12, true) !== backupHeaderBytes) fail(`header length ${view.getUint32(12, true)} is not ${backupHeaderBytes}`);
  const number = (offset: number, field: string): number => {
    const value = view.getBigUint64(offset, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${field} ${value} is out of range`);
    return Number(value);
  };
  const dataBytes = number(56, "data length");
  if (fileBytes !== backupHeaderBytes + dataBytes) {
    fail(
      `the header announces ${dataBytes} bytes of data but the file holds ${fileBytes - backupHeaderBytes}: it is truncated or has bytes appended`,
    );
  }
  return {
    revision: number(16, "revision"),
    appliedIndex: number(24, "applied index"),
    raftTerm: number(32, "raft term"),
    memberId: number(40, "member id"),
    keyCount: number(48, "key count"),
    dataBytes,
    createdAtMs: number(64, "creation time"),
    kvFormatVersion: view.getUint32(72, true),
    sha256: Buffer.from(header.subarray(80, 80 + sha256Bytes)).toString("hex"),
    fileBytes,
  };
}

function checkDigest(file: string, info: BackupInfo, hash: Hash): void {
  const actual = hash.digest("hex");
  if (actual !== info.sha256) {
    throw new BackupFileError(file, `the data's SHA-256 is ${actual}, but the header says ${info.sha256}: the file is damaged`);
  }
}

/**
 * Verifies a backup file (header checksum, length, the data's SHA-256) reading it a megabyte at a time,
 * so that checking a large backup does not need its size in memory.
 */
export async function inspectBackupFile(file: string, fs: FileSystem = createNodeFileSystem()): Promise<BackupInfo> {
  const handle = await fs.open(file, "existing");
  try {
    const fileBytes = await handle.size();
    const header = new Uint8Array(backupHeaderBytes);
    await handle.read(header, 0);
    const info = decodeBackupHeader(file, header, fileBytes);
    const hash = createHash("sha256");
    const buffer = new Uint8Array(Math.min(readChunkBytes, Math.max(1, info.dataBytes)));
    for (let position = backupHeaderBytes; position < fileBytes;) {
      const n = await handle.read(buffer.subarray(0, Math.min(buffer.byteLength, fileBytes - position)), position);
      if (n === 0) throw new BackupFileError(file, `the file ended at byte ${position} while it was being read`);
      hash.update(buffer.subarray(0, n));
      position += n;
    }
    checkDigest(file, info, hash);
    return info;
  } finally {
    await handle.close();
  }
}

/** Reads and verifies a whole backup file; `data` is the KvSnapshot it holds. */
export async function readBackupFile(
  file: string,
  fs: FileSystem = createNodeFileSystem(),
): Promise<{ readonly info: BackupInfo; readonly data: Uint8Array }> {
  const bytes = await fs.readFile(file);
  const info = decodeBackupHeader(file, bytes.subarray(0, backupHeaderBytes), bytes.byteLength);
  const data = bytes.subarray(backupHeaderBytes);
  const hash = createHash("sha256").update(data);
  checkDigest(file, info, hash);
  return { info, data };
}

/**
 * Writes a backup file the crash-safe way: the data is streamed into `<file>.part` after room for the
 * header, the header goes in last (its length and digest are known only then), then fsync, rename to
 * `<file>` and fsync of the directory. A crash or a failed save leaves at most a `.part` file, never a
 * `<file>` that is partial; an existing `<file>` is replaced only by a complete one.
 */
export class BackupFileWriter {
  private readonly hash = createHash("sha256");
  private dataBytes = 0;
  private done = false;

  private constructor(
    private readonly fs: FileSystem,
    private readonly file: string,
    private readonly handle: FileHandle,
    private readonly meta: BackupMeta,
  ) {}

  static async create(file: string, meta: BackupMeta, fs: FileSystem = createNodeFileSystem()): Promise<BackupFileWriter> {
    return new BackupFileWriter(fs, file, await fs.open(partPath(file), "create"), meta);
  }

  /** Appends the next bytes of the data; the caller awaits each call, which bounds what is buffered. */
  async write(chunk: Uint8Array): Promise<void> {
    await this.handle.write(chunk, backupHeaderBytes + this.dataBytes);
    this.hash.update(chunk);
    this.dataBytes += chunk.byteLength;
  }

  /**
   * Completes the file. `expected` is what the sender announced (size and SHA-256 of the data): a
   * mismatch means the bytes were damaged or lost on the way, and nothing is renamed into place.
   */
  async finish(expected: { readonly dataBytes: number; readonly sha256: string }): Promise<BackupInfo> {
    const sha256 = this.hash.digest("hex");
    if (expected.dataBytes !== this.dataBytes || expected.sha256 !== sha256) {
      throw new BackupFileError(
        this.file,
        `received ${this.dataBytes} bytes with SHA-256 ${sha256}, but the node sent ${expected.dataBytes} bytes with SHA-256 ${expected.sha256}`,
      );
    }
    const info: BackupInfo = { ...this.meta, dataBytes: this.dataBytes, sha256, fileBytes: backupHeaderBytes + this.dataBytes };
    await this.handle.write(encodeBackupHeader(info), 0);
    await this.handle.sync();
    await this.handle.close();
    this.done = true;
    await this.fs.rename(partPath(this.file), this.file);
    await this.fs.syncDir(dirname(this.file));
    return info;
  }

  /** Removes the `.part` file of a save that will not finish. */
  async discard(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.handle.close();
    await this.fs.unlink(partPath(this.file));
  }
}

function partPath(file: string): string {
  return join(dirname(file), `${basename(file)}.part`);
}
