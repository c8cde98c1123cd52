import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/lib/logger.js";
import { backupHeaderBytes, encodeBackupHeader } from "../../src/storage/backup-file.js";
import {
  BackupFileError,
  BackupFileWriter,
  inspectBackupFile,
  openStorage,
  readBackupFile,
  seedStorage,
  type BackupMeta,
} from "../../src/storage/index.js";
import { entryData } from "./helpers.js";

const meta: BackupMeta = {
  revision: 42,
  appliedIndex: 117,
  raftTerm: 3,
  memberId: 2,
  keyCount: 9,
  kvFormatVersion: 1,
  createdAtMs: 1_700_000_000_000,
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "raftkv-backup-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `data` as a backup in three pieces, as a save streams it. */
async function writeBackup(file: string, data: Uint8Array): Promise<void> {
  const writer = await BackupFileWriter.create(file, meta);
  for (const [from, to] of [
    [0, 1],
    [1, 700],
    [700, data.byteLength],
  ] as const)
    await writer.write(data.subarray(from, to));
  await writer.finish({ dataBytes: data.byteLength, sha256: sha256(data) });
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

describe("backup file", () => {
  it("round-trips the metadata and the data, and leaves no .part file", async () => {
    const file = join(dir, "backup.db");
    const data = entryData(1, 1, 3000);
    await writeBackup(file, data);
    expect(readdirSync(dir)).toEqual(["backup.db"]);
    const info = await inspectBackupFile(file);
    expect(info).toEqual({ ...meta, dataBytes: 3000, sha256: sha256(data), fileBytes: backupHeaderBytes + 3000 });
    const read = await readBackupFile(file);
    expect(read.info).toEqual(info);
    expect(Buffer.from(read.data).equals(Buffer.from(data))).toBe(true);
  });

  it("starts with the magic and a fixed 128-byte header", async () => {
    const file = join(dir, "backup.db");
    await writeBackup(file, entryData(2, 1, 1000));
    const bytes = readFileSync(file);
    expect(bytes.subarray(0, 8).toString("latin1")).toBe("RAFTKVBK");
    expect(bytes.readUInt32LE(8)).toBe(1);
    expect(bytes.readUInt32LE(12)).toBe(backupHeaderBytes);
    expect(bytes.readBigUInt64LE(16)).toBe(42n);
    expect(bytes.byteLength).toBe(backupHeaderBytes + 1000);
  });

  it("refuses a file with any single byte flipped, in the header or the data, both when inspecting and reading", async () => {
    const file = join(dir, "backup.db");
    const data = entryData(3, 1, 200);
    await writeBackup(file, data);
    const good = readFileSync(file);
    const damaged = join(dir, "damaged.db");
    for (let offset = 0; offset < good.byteLength; offset++) {
      const bytes = Buffer.from(good);
      bytes[offset] = (bytes[offset] ?? 0) ^ 0x10;
      writeFileSync(damaged, bytes);
      await expect(inspectBackupFile(damaged), `byte ${offset}`).rejects.toBeInstanceOf(BackupFileError);
      await expect(readBackupFile(damaged), `byte ${offset}`).rejects.toBeInstanceOf(BackupFileError);
    }
  });

  it("says what is wrong: data damage, header damage, truncation, appended bytes, not a backup, another version", async () => {
    const file = join(dir, "backup.db");
    await writeBackup(file, entryData(4, 1, 1000));
    const good = readFileSync(file);
    const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
      ["data", (b) => flip(b, backupHeaderBytes + 500), /SHA-256 is [0-9a-f]{64}, but the header says [0-9a-f]{64}: the file is damaged/],
      ["header", (b) => flip(b, 20), /the header checksum does not match: the file is damaged/],
      ["truncated", (b) => b.subarray(0, b.byteLength - 1), /announces 1000 bytes of data but the file holds 999: it is truncated/],
      ["appended", (b) => Buffer.concat([b, Buffer.from([0])]), /holds 1001: it is truncated or has bytes appended/],
      ["short", (b) => b.subarray(0, 40), /shorter than the 128-byte header/],
      [
        "magic",
        () => Buffer.from("hello, this is not a backup at all, but it is long enough to have a header".repeat(3)),
        /not a raftkv backup file \(bad magic\)/,
      ],
      ["version", (b) => flip(b, 8, 0x02), /backup format version 3 is not supported/],
    ];
    for (const [name, damage, message] of cases) {
      const path = join(dir, `${name}.db`);
      writeFileSync(path, damage(Buffer.from(good)));
      await expect(inspectBackupFile(path), name).rejects.toThrow(message);
      await expect(readBackupFile(path), name).rejects.toThrow(message);
      await expect(inspectBackupFile(path), name).rejects.toThrow(path);
    }
  });

  it("does not rename into place when the bytes differ from what the sender announced; discard removes the .part", async () => {
    const file = join(dir, "backup.db");
    const data = entryData(5, 1, 100);
    const writer = await BackupFileWriter.create(file, meta);
    await writer.write(data);
    await expect(writer.finish({ dataBytes: 100, sha256: sha256(entryData(6, 1, 100)) })).rejects.toThrow(/but the node sent 100 bytes/);
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(dir)).toEqual(["backup.db.part"]);
    await writer.discard();
    expect(readdirSync(dir)).toEqual([]);
    const short = await BackupFileWriter.create(file, meta);
    await short.write(data);
    await expect(short.finish({ dataBytes: 101, sha256: sha256(data) })).rejects.toBeInstanceOf(BackupFileError);
    await short.discard();
    expect(readdirSync(dir)).toEqual([]);
  });

  it("replaces an existing file only with a complete one", async () => {
    const file = join(dir, "backup.db");
    await writeBackup(file, entryData(7, 1, 100));
    const before = readFileSync(file);
    const writer = await BackupFileWriter.create(file, meta);
    await writer.write(entryData(8, 1, 50));
    expect(readFileSync(file).equals(before)).toBe(true);
    await writer.discard();
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it("refuses to encode numbers it could not read back", () => {
    expect(() => encodeBackupHeader({ ...meta, revision: 2 ** 53, dataBytes: 0, sha256: sha256(new Uint8Array(0)) })).toThrow(RangeError);
    expect(() => encodeBackupHeader({ ...meta, dataBytes: 0, sha256: "00" })).toThrow(RangeError);
  });
});

describe("seedStorage", () => {
  it("writes storage that opens at the snapshot, with its term, membership and commit", async () => {
    const raftDir = join(dir, "member", "raft");
    const data = entryData(9, 1, 500);
    await seedStorage(raftDir, { meta: { index: 117, term: 1, conf: { voters: [1, 2, 3], learners: [] } }, data }, silentLogger);
    expect(readdirSync(join(dir, "member"))).toEqual(["raft"]);
    const log = await openStorage({ dir: raftDir, logger: silentLogger });
    try {
      const snapshot = log.snapshot();
      expect(snapshot.meta).toEqual({ index: 117, term: 1, conf: { voters: [1, 2, 3], learners: [] } });
      expect(Buffer.from(snapshot.data).equals(Buffer.from(data))).toBe(true);
      expect(log.initialState().hardState).toEqual({ term: 1, vote: 0, commit: 117 });
      expect([log.firstIndex(), log.lastIndex(), log.term(117)]).toEqual([118, 117, 1]);
      // The log goes on after the snapshot like any other.
      await log.save(undefined, [{ index: 118, term: 2, type: "normal", data: new Uint8Array([1]) }]);
    } finally {
      await log.close();
    }
  });

  it("refuses a directory that exists, and an index or term of 0", async () => {
    const snapshot = { meta: { index: 5, term: 1, conf: { voters: [1], learners: [] } }, data: new Uint8Array(1) };
    await seedStorage(join(dir, "raft"), snapshot, silentLogger);
    await expect(seedStorage(join(dir, "raft"), snapshot, silentLogger)).rejects.toThrow(/already exists/);
    await expect(seedStorage(join(dir, "other"), { ...snapshot, meta: { ...snapshot.meta, term: 0 } }, silentLogger)).rejects.toThrow(
      RangeError,
    );
  });
});

function flip(bytes: Buffer, offset: number, mask = 0x01): Buffer {
  bytes[offset] = (bytes[offset] ?? 0) ^ mask;
  return bytes;
}
