import { describe, expect, it } from "vitest";
import { CorruptLogError } from "../../src/storage/errors.js";
import { recordHeaderBytes, writeRecord } from "../../src/storage/record.js";
import { forEachRecord } from "../../src/storage/segment-scan.js";
import { entryFixedBytes, encodeBatch } from "../../src/storage/wal-codec.js";

/** One checksummed entry record (index 1, term 1, no data) whose type byte is `code`. */
function entryRecordWithCode(code: number): Uint8Array {
  const buf = new Uint8Array(recordHeaderBytes + entryFixedBytes);
  const view = new DataView(buf.buffer);
  writeRecord(buf, view, 0, "entry", 0, true, entryFixedBytes, (at) => {
    view.setFloat64(at, 1, true);
    view.setFloat64(at + 8, 1, true);
    view.setUint8(at + 16, code);
  });
  return buf;
}

function decodeEntryTypes(data: Uint8Array): string[] {
  const types: string[] = [];
  forEachRecord("segment-0001", data, (record) => {
    if (record.type === "entry") types.push(record.entry.type);
  });
  return types;
}

describe("entry type codes in the WAL", () => {
  it("keeps the codes of the on-disk format: 0 normal, 1 noop", () => {
    expect(decodeEntryTypes(entryRecordWithCode(0))).toEqual(["normal"]);
    expect(decodeEntryTypes(entryRecordWithCode(1))).toEqual(["noop"]);
    const encoded = encodeBatch(0, [{ type: "entry", entry: { index: 1, term: 1, type: "noop", data: new Uint8Array(0) } }]);
    expect(encoded[recordHeaderBytes + 16]).toBe(1);
  });

  it("refuses a config entry (code 2, membership changes) by name, with the file and offset", () => {
    expect(() => decodeEntryTypes(entryRecordWithCode(2))).toThrow(CorruptLogError);
    expect(() => decodeEntryTypes(entryRecordWithCode(2))).toThrow(/segment-0001.*config entry \(a membership change\)/);
  });

  it("refuses codes no version defines", () => {
    expect(() => decodeEntryTypes(entryRecordWithCode(9))).toThrow(/unknown entry type 9/);
  });
});
