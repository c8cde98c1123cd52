import { describe, expect, it } from "vitest";
import { CompareResult, CompareTarget } from "../../gen/raftkv/v1/kv_pb.js";
import { parseCondition, parseOperation, parseTxn, tokenize } from "../../src/cli/index.js";
import { text } from "../rpc/harness.js";

describe("txn syntax", () => {
  it("splits words on spaces and honours both quote styles", () => {
    expect(tokenize(`put "my key" 'a b'`, "t")).toEqual(["put", "my key", "a b"]);
    expect(tokenize(`put k ""`, "t")).toEqual(["put", "k", ""]);
    expect(tokenize(`put k "say \\"hi\\""`, "t")).toEqual(["put", "k", 'say "hi"']);
  });

  it("reads value and counter conditions", () => {
    const value = parseCondition("config == v1", "c");
    expect([text(value.key), value.target, value.result, text(value.value)]).toEqual([
      "config",
      CompareTarget.VALUE,
      CompareResult.EQUAL,
      "v1",
    ]);
    const missing = parseCondition("version(config) == 0", "c");
    expect([text(missing.key), missing.target, missing.number]).toEqual(["config", CompareTarget.VERSION, 0n]);
    expect(parseCondition("mod(k) > 5", "c")).toMatchObject({
      target: CompareTarget.MOD_REVISION,
      result: CompareResult.GREATER,
      number: 5n,
    });
    expect(parseCondition("create(k) < 9", "c")).toMatchObject({ target: CompareTarget.CREATE_REVISION, result: CompareResult.LESS });
    expect(parseCondition("value(k) != x", "c")).toMatchObject({ target: CompareTarget.VALUE, result: CompareResult.NOT_EQUAL });
    expect(text(parseCondition("'version(k)' == 3", "c").key)).toBe("k");
  });

  it("reads every operation", () => {
    expect(parseOperation("put k v", "o").request).toMatchObject({ case: "put" });
    expect(parseOperation("get k", "o").request).toMatchObject({ case: "get" });
    expect(parseOperation("del k", "o").request).toMatchObject({ case: "delete", value: { prefix: false } });
    expect(parseOperation("del-prefix p/", "o").request).toMatchObject({ case: "delete", value: { prefix: true } });
    expect(parseOperation("range p/", "o").request).toMatchObject({ case: "range", value: { prefix: true } });
  });

  it.each([
    [() => parseCondition("k = v", "--if #1"), '--if #1: unknown operator "="'],
    [() => parseCondition("k ==", "--if #1"), "expected 'KEY OP VALUE'"],
    [() => parseCondition("version(k) == zero", "--if #1"), "compares with a whole number"],
    [() => parseOperation("put k", "--then #2"), "--then #2: expected 'put KEY VALUE'"],
    [() => parseOperation("upsert k v", "--then #1"), 'unknown operation "upsert"'],
    [() => tokenize("put 'k v", "--then #1"), "unterminated '"],
    [() => parseTxn(["k == v"], [], []), "at least one --then or --else"],
  ])("explains a mistake: %#", (parse, message) => {
    expect(parse).toThrow(message);
  });
});
