import { describe, expect, it } from "vitest";
import { decodeCommand, encodeCommand, KvDecodeError, KvStateMachine } from "./kv-model.js";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe("simulated key-value state machine", () => {
  it("round-trips commands", () => {
    const put = { opId: 3, write: { kind: "put", key: "k", value: "v" } } as const;
    const cas = { opId: 4, write: { kind: "cas", key: "k", expected: null, value: "w" } } as const;
    expect(decodeCommand(encodeCommand(put))).toEqual(put);
    expect(decodeCommand(encodeCommand(cas))).toEqual(cas);
  });

  it("rejects malformed commands with a message naming the problem", () => {
    expect(() => decodeCommand(new Uint8Array([0xff, 0xfe]))).toThrow(KvDecodeError);
    expect(() => decodeCommand(bytes("{"))).toThrow(/not JSON/);
    expect(() => decodeCommand(bytes('["put", 1, "k"]'))).toThrow(/neither a put nor a cas/);
    expect(() => decodeCommand(bytes('["put", "x", "k", "v"]'))).toThrow(/bad op id/);
  });

  it("applies put and compare-and-swap in index order", () => {
    const sm = KvStateMachine.empty();
    expect(sm.apply(1, { opId: 1, write: { kind: "cas", key: "k", expected: "x", value: "a" } })).toEqual({ kind: "cas", swapped: false });
    expect(sm.apply(2, { opId: 2, write: { kind: "cas", key: "k", expected: null, value: "a" } })).toEqual({ kind: "cas", swapped: true });
    sm.skip(3);
    expect(sm.apply(4, { opId: 3, write: { kind: "put", key: "k", value: "b" } })).toEqual({ kind: "put" });
    expect(sm.get("k")).toBe("b");
    expect(sm.index).toBe(4);
    expect(() => sm.skip(6)).toThrow(/applying index 6 after 4/);
  });

  it("encodes deterministically and restores exactly", () => {
    const a = KvStateMachine.empty();
    a.apply(1, { opId: 1, write: { kind: "put", key: "y", value: "1" } });
    a.apply(2, { opId: 2, write: { kind: "put", key: "x", value: "2" } });
    const b = KvStateMachine.empty();
    b.apply(1, { opId: 3, write: { kind: "put", key: "x", value: "2" } });
    b.apply(2, { opId: 4, write: { kind: "put", key: "y", value: "1" } });
    expect(a.encode()).toEqual(b.encode());
    const restored = KvStateMachine.restore(a.encode());
    expect(restored.index).toBe(2);
    expect(restored.get("x")).toBe("2");
    expect(KvStateMachine.restore(new Uint8Array(0)).index).toBe(0);
    expect(() => KvStateMachine.restore(bytes('{"index": 1, "values": [["k"]]}'))).toThrow(/bad key\/value pair/);
  });
});
