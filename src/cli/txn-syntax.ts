import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  CompareResult,
  CompareSchema,
  CompareTarget,
  RequestOpSchema,
  type Compare,
  type RequestOp,
  type TxnRequestSchema,
} from "../../gen/raftkv/v1/kv_pb.js";
import { UsageError } from "./usage-error.js";

/**
 * The readable transaction form of `raftkv txn`:
 *
 *   --if 'KEY == VALUE'            the key's value equals VALUE (also !=, >, <; a missing key never matches)
 *   --if 'version(KEY) == 0'       the key does not exist (also mod(KEY), create(KEY), value(KEY))
 *   --then 'put KEY VALUE' | 'get KEY' | 'del KEY' | 'del-prefix PREFIX' | 'range PREFIX'
 *   --else ...                     the same operations, run when a condition does not hold
 *
 * Every flag may repeat; all --if conditions must hold. Words are separated by spaces; quote a word
 * with '...' or "..." (where \" and \\ escape) to include spaces or to give an empty value ("").
 */
export const txnSyntaxHelp = [
  "Conditions (--if, all must hold):",
  "  'KEY == VALUE'  'KEY != VALUE'  'KEY > VALUE'  'KEY < VALUE'   compare the value (bytes); a missing key never holds",
  "  'version(KEY) == N'  'mod(KEY) > N'  'create(KEY) == 0'         compare a counter (0 for a missing key)",
  "Operations (--then when all hold, --else otherwise):",
  "  'put KEY VALUE'  'get KEY'  'del KEY'  'del-prefix PREFIX'  'range PREFIX'",
  "Quote words with '...' or \"...\" to include spaces.",
].join("\n");

const utf8 = new TextEncoder();

export function parseTxn(
  conditions: readonly string[],
  then: readonly string[],
  otherwise: readonly string[],
): MessageInitShape<typeof TxnRequestSchema> {
  if (then.length === 0 && otherwise.length === 0) throw new UsageError("a txn needs at least one --then or --else operation");
  return {
    compare: conditions.map((text, i) => parseCondition(text, `--if #${i + 1}`)),
    success: then.map((text, i) => parseOperation(text, `--then #${i + 1}`)),
    failure: otherwise.map((text, i) => parseOperation(text, `--else #${i + 1}`)),
  };
}

const operators: Readonly<Record<string, CompareResult>> = {
  "==": CompareResult.EQUAL,
  "!=": CompareResult.NOT_EQUAL,
  ">": CompareResult.GREATER,
  "<": CompareResult.LESS,
};

const counterTargets: Readonly<Record<string, CompareTarget>> = {
  version: CompareTarget.VERSION,
  mod: CompareTarget.MOD_REVISION,
  create: CompareTarget.CREATE_REVISION,
};

export function parseCondition(text: string, where: string): Compare {
  const words = tokenize(text, where);
  const [left, op, right] = words;
  if (words.length !== 3 || left === undefined || op === undefined || right === undefined) {
    throw new UsageError(`${where}: expected 'KEY OP VALUE' (for example 'k == v1' or 'version(k) == 0'), got ${JSON.stringify(text)}`);
  }
  const result = operators[op];
  if (result === undefined) throw new UsageError(`${where}: unknown operator ${JSON.stringify(op)}; use ==, !=, > or <`);
  const call = /^(value|version|mod|create)\((.+)\)$/.exec(left);
  const target = call?.[1] ?? "value";
  const key = call?.[2] ?? left;
  if (target === "value") {
    return create(CompareSchema, { key: utf8.encode(key), target: CompareTarget.VALUE, result, value: utf8.encode(right) });
  }
  if (!/^\d{1,15}$/.test(right))
    throw new UsageError(`${where}: ${target}(${key}) compares with a whole number, got ${JSON.stringify(right)}`);
  return create(CompareSchema, {
    key: utf8.encode(key),
    target: counterTargets[target] ?? CompareTarget.UNSPECIFIED,
    result,
    number: BigInt(right),
  });
}

export function parseOperation(text: string, where: string): RequestOp {
  const [verb, ...args] = tokenize(text, where);
  const arity = (n: number, form: string): string[] => {
    if (args.length !== n) throw new UsageError(`${where}: expected '${form}', got ${JSON.stringify(text)}`);
    return args;
  };
  switch (verb) {
    case "put": {
      const [key = "", value = ""] = arity(2, "put KEY VALUE");
      return create(RequestOpSchema, { request: { case: "put", value: { key: utf8.encode(key), value: utf8.encode(value) } } });
    }
    case "get": {
      const [key = ""] = arity(1, "get KEY");
      return create(RequestOpSchema, { request: { case: "get", value: { key: utf8.encode(key) } } });
    }
    case "del": {
      const [key = ""] = arity(1, "del KEY");
      return create(RequestOpSchema, { request: { case: "delete", value: { key: utf8.encode(key) } } });
    }
    case "del-prefix": {
      const [prefix = ""] = arity(1, "del-prefix PREFIX");
      return create(RequestOpSchema, { request: { case: "delete", value: { key: utf8.encode(prefix), prefix: true } } });
    }
    case "range": {
      const [prefix = ""] = arity(1, "range PREFIX");
      return create(RequestOpSchema, { request: { case: "range", value: { key: utf8.encode(prefix), prefix: true } } });
    }
    default:
      throw new UsageError(`${where}: unknown operation ${JSON.stringify(verb ?? "")}; use put, get, del, del-prefix or range`);
  }
}

/** Splits on spaces; '...' is literal, "..." takes \" and \\ escapes. */
export function tokenize(text: string, where: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? "";
    if (c === " " || c === "\t") {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "'" || c === '"') {
      const end = closingQuote(text, i, c);
      if (end < 0) throw new UsageError(`${where}: unterminated ${c} in ${JSON.stringify(text)}`);
      const inner = text.slice(i + 1, end);
      word = (word ?? "") + (c === '"' ? inner.replace(/\\(["\\])/g, "$1") : inner);
      i = end;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

function closingQuote(text: string, open: number, quote: string): number {
  for (let i = open + 1; i < text.length; i++) {
    if (quote === '"' && text[i] === "\\") i++;
    else if (text[i] === quote) return i;
  }
  return -1;
}
