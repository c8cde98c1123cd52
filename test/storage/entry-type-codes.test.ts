import { describe, expect, it } from "vitest";
import { decodeConfEntry, encodeConfEntry, type Entry } from "../../src/core/index.js";
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

  it("reads a membership change (code 2) back as it was written, and refuses one whose data does not decode", () => {
    const data = encodeConfEntry({
      change: { op: "addLearner", nodeId: 4, context: new Uint8Array([7]) },
      conf: { voters: [1, 2, 3], learners: [4] },
    });
    const encoded = encodeBatch(0, [{ type: "entry", entry: { index: 1, term: 1, type: "conf", data } }]);
    expect(encoded[recordHeaderBytes + 16]).toBe(2);
    const entries: Entry[] = [];
    forEachRecord("segment-0001", encoded, (record) => {
      if (record.type === "entry") entries.push(record.entry);
    });
    expect(entries.map((e) => [e.type, decodeConfEntry(e.data)?.conf])).toEqual([["conf", { voters: [1, 2, 3], learners: [4] }]]);
    expect(() => decodeEntryTypes(entryRecordWithCode(2))).toThrow(CorruptLogError);
    expect(() => decodeEntryTypes(entryRecordWithCode(2))).toThrow(/segment-0001.*membership change that does not decode/);
  });

  it("refuses codes no version defines", () => {
    expect(() => decodeEntryTypes(entryRecordWithCode(9))).toThrow(/unknown entry type 9/);
  });
});
