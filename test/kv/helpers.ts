import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { CompareResult, CompareTarget, GetRequestSchema, RangeRequestSchema, WatchRequestSchema } from "../../gen/raftkv/v1/kv_pb.js";
import type { CompareSchema, DeleteResponse, KeyValue, PutResponse, RequestOpSchema, TxnResponse } from "../../gen/raftkv/v1/kv_pb.js";
import { encodeCommand } from "../../src/kv/index.js";
import type { ApplyResult, KvStore } from "../../src/kv/index.js";

const utf8 = new TextEncoder();
const text = new TextDecoder();

export const b = (s: string): Uint8Array => utf8.encode(s);
export const s = (bytes: Uint8Array): string => text.decode(bytes);

export interface Session {
  readonly clientId: string;
  readonly sequence: number;
}

export const sessionFields = (id?: Session): { clientId?: string; sequence?: bigint } =>
  id === undefined ? {} : { clientId: id.clientId, sequence: BigInt(id.sequence) };

const keyBytes = (key: string | Uint8Array): Uint8Array => (typeof key === "string" ? b(key) : key);

export const putCmd = (key: string | Uint8Array, value: string, opts: { prevKv?: boolean; id?: Session } = {}): Uint8Array =>
  encodeCommand({
    ...sessionFields(opts.id),
    op: { case: "put", value: { key: keyBytes(key), value: b(value), prevKv: opts.prevKv ?? false } },
  });

export const deleteCmd = (key: string, opts: { prefix?: boolean; prevKv?: boolean; id?: Session } = {}): Uint8Array =>
  encodeCommand({
    ...sessionFields(opts.id),
    op: { case: "delete", value: { key: b(key), prefix: opts.prefix ?? false, prevKv: opts.prevKv ?? false } },
  });

export type OpInit = MessageInitShape<typeof RequestOpSchema>;
export type CompareInit = MessageInitShape<typeof CompareSchema>;

export const txnCmd = (compare: CompareInit[], success: OpInit[], failure: OpInit[] = [], id?: Session): Uint8Array =>
  encodeCommand({ ...sessionFields(id), op: { case: "txn", value: { compare, success, failure } } });

export const opPut = (key: string, value: string, prevKv = false): OpInit => ({
  request: { case: "put", value: { key: b(key), value: b(value), prevKv } },
});
export const opGet = (key: string): OpInit => ({ request: { case: "get", value: { key: b(key) } } });
export const opDelete = (key: string, prefix = false, prevKv = false): OpInit => ({
  request: { case: "delete", value: { key: b(key), prefix, prevKv } },
});
export const opRange = (key: string, prefix = true, limit = 0): OpInit => ({
  request: { case: "range", value: { key: b(key), prefix, limit: BigInt(limit) } },
});

export const cmpValue = (key: string, result: CompareResult, value: string): CompareInit => ({
  key: b(key),
  target: CompareTarget.VALUE,
  result,
  value: b(value),
});
export const cmpNumber = (key: string, target: CompareTarget, result: CompareResult, n: number): CompareInit => ({
  key: b(key),
  target,
  result,
  number: BigInt(n),
});
export { CompareResult, CompareTarget };

export const getReq = (key: string) => create(GetRequestSchema, { key: b(key) });
export const rangeReq = (init: MessageInitShape<typeof RangeRequestSchema>) => create(RangeRequestSchema, init);
export const watchReq = (key: string, startRevision: number, opts: { prefix?: boolean; prevKv?: boolean } = {}) =>
  create(WatchRequestSchema, {
    key: b(key),
    prefix: opts.prefix ?? false,
    startRevision: BigInt(startRevision),
    prevKv: opts.prevKv ?? false,
  });

/** A KeyValue as plain numbers and strings, for readable expectations. */
export const plain = (kv: KeyValue | undefined) =>
  kv === undefined
    ? undefined
    : {
        key: s(kv.key),
        value: s(kv.value),
        create: Number(kv.createRevision),
        mod: Number(kv.modRevision),
        version: Number(kv.version),
      };

/** Applies commands at consecutive indexes after the store's applied index. */
export function applyAll(store: KvStore, ...commands: Uint8Array[]): ApplyResult[] {
  return commands.map((command) => store.apply(store.appliedIndex + 1, command));
}

/** The response a mutation answered, of the kind the test expects, with whether it was a replay. */
type Applied = { readonly put: PutResponse; readonly delete: DeleteResponse; readonly txn: TxnResponse };

export function expectKind<K extends keyof Applied>(
  outcome: ApplyResult,
  kind: K,
): { readonly response: Applied[K]; readonly replayed: boolean } {
  if (outcome.kind === "error") throw new Error(`expected a ${kind} result, got error: ${outcome.error.message}`);
  const { result } = outcome.result;
  if (result.case !== kind) throw new Error(`expected a ${kind} result, got ${result.case ?? "none"}`);
  return { response: result.value as Applied[K], replayed: outcome.replayed };
}

/** Every key of the store as "key=value@mod/version". */
export function dump(store: KvStore): string[] {
  const response = store.range(rangeReq({ key: new Uint8Array(0), prefix: true }));
  return response.kvs.map((kv) => `${s(kv.key)}=${s(kv.value)}@${kv.modRevision}/${kv.version}`);
}
