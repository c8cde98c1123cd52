import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import type { FileHandle, FileSystem } from "./file-system.js";

/**
 * Writes up to this size are done with writeSync on the event loop: the bytes only go to the page cache,
 * which takes microseconds, while a trip through libuv's thread pool costs 20-40 µs each way. That
 * round trip is as long as an fdatasync on a fast SSD, so paying it twice per group commit would halve
 * the WAL's single-writer rate (measured with `npm run bench:wal`). Larger writes (segment zero-fill,
 * snapshots) go through the thread pool so they never stall the loop.
 */
const syncWriteBytesMax = 256 * 1024;

/** The real file system, through node:fs. */
export function createNodeFileSystem(): FileSystem {
  return {
    async mkdirp(path) {
      await fsp.mkdir(path, { recursive: true });
    },
    async readdir(path) {
      return fsp.readdir(path);
    },
    async readFile(path) {
      return fsp.readFile(path);
    },
    async open(path, mode) {
      const fd = await openFd(path, mode === "create" ? "w+" : "r+");
      return createNodeFileHandle(fd);
    },
    async rename(from, to) {
      await fsp.rename(from, to);
    },
    async unlink(path) {
      await fsp.unlink(path);
    },
    async syncDir(path) {
      // Linux lets a directory be opened read-only and fsynced; that is what persists its entries.
      const fd = await openFd(path, "r");
      try {
        await callback<void>((cb) => fs.fsync(fd, cb));
      } finally {
        await callback<void>((cb) => fs.close(fd, cb));
      }
    },
  };
}

function createNodeFileHandle(fd: number): FileHandle {
  let closed = false;
  return {
    async size() {
      return (await callback<fs.Stats>((cb) => fs.fstat(fd, cb))).size;
    },
    async read(into, position) {
      let done = 0;
      while (done < into.byteLength) {
        const n = await callback<number>((cb) => fs.read(fd, into, done, into.byteLength - done, position + done, cb));
        if (n === 0) break;
        done += n;
      }
      return done;
    },
    async write(data, position) {
      if (data.byteLength <= syncWriteBytesMax) {
        let done = 0;
        while (done < data.byteLength) {
          done += fs.writeSync(fd, data, done, data.byteLength - done, position + done);
        }
        return;
      }
      let done = 0;
      while (done < data.byteLength) {
        done += await callback<number>((cb) => fs.write(fd, data, done, data.byteLength - done, position + done, cb));
      }
    },
    async datasync() {
      await callback<void>((cb) => fs.fdatasync(fd, cb));
    },
    async sync() {
      await callback<void>((cb) => fs.fsync(fd, cb));
    },
    async close() {
      if (closed) return;
      closed = true;
      await callback<void>((cb) => fs.close(fd, cb));
    },
  };
}

function openFd(path: string, flags: string): Promise<number> {
  return callback<number>((cb) => fs.open(path, flags, 0o644, cb));
}

/**
 * Adapts node's callback API to a promise. The callback API is used instead of fs/promises FileHandle
 * because it is measurably cheaper per call, and fdatasync is on the WAL's hot path.
 */
function callback<T>(start: (cb: (error: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    start((error, value) => {
      if (error) reject(error);
      else resolve(value as T);
    });
  });
}
