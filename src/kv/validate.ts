import type { Command } from "../../gen/raftkv/v1/command_pb.js";
import { CompareResult, CompareTarget } from "../../gen/raftkv/v1/kv_pb.js";
import type {
  Compare,
  DeleteRequest,
  GetRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
  WatchRequest,
} from "../../gen/raftkv/v1/kv_pb.js";
import { KvError } from "./errors.js";
import type { KvLimit } from "./errors.js";
import { keySpan, spanContains } from "./key-index.js";
import type { KeySpan } from "./key-index.js";
import { keyToString } from "./key-codec.js";
import type { KvOptions } from "./options.js";
import { toSafeNumber } from "./key-record.js";

/**
 * Input checks. Each throws a KvError naming the field (a path such as `txn.success[2].put.key`) and
 * what is wrong. They depend only on the request and the cluster-wide limits, so the rpc layer can run
 * them before proposing and every replica reaches the same verdict when applying.
 */

export type ValidationLimits = Pick<KvOptions, "keyBytesMax" | "valueBytesMax" | "clientIdBytesMax" | "txnOpsMax">;

const utf8 = new TextEncoder();

export function validateCommand(command: Command, limits: ValidationLimits): void {
  const clientIdBytes = utf8.encode(command.clientId).length;
  checkLimit("clientIdBytesMax", "client_id", clientIdBytes, limits.clientIdBytesMax);
  if (command.clientId === "") {
    if (command.sequence !== 0n) invalid("sequence", "a sequence needs a client_id");
  } else if (command.sequence === 0n) {
    invalid("sequence", "must be at least 1 when client_id is set");
  } else if (toSafeNumber(command.sequence) === undefined) {
    invalid("sequence", `must be at most ${Number.MAX_SAFE_INTEGER}`);
  }
  const op = command.op;
  switch (op.case) {
    case "put":
      return validatePut(op.value, limits, "put");
    case "delete":
      return validateDelete(op.value, limits, "delete");
    case "txn":
      return validateTxn(op.value, limits, "txn");
    case undefined:
      throw new KvError({ kind: "malformedCommand", reason: "the command holds no operation (put, delete or txn)" });
  }
}

export function validatePut(request: PutRequest, limits: ValidationLimits, path = "put"): void {
  checkKey(request.key, false, limits, `${path}.key`);
  checkLimit("valueBytesMax", `${path}.value`, request.value.length, limits.valueBytesMax);
}

export function validateDelete(request: DeleteRequest, limits: ValidationLimits, path = "delete"): void {
  checkKey(request.key, request.prefix, limits, `${path}.key`);
}

export function validateGet(request: GetRequest, limits: ValidationLimits, path = "get"): void {
  checkKey(request.key, false, limits, `${path}.key`);
}

export function validateRange(request: RangeRequest, limits: ValidationLimits, path = "range"): void {
  checkKey(request.key, request.prefix, limits, `${path}.key`);
  if (request.continueKey.length > 0) {
    checkLimit("keyBytesMax", `${path}.continue_key`, request.continueKey.length, limits.keyBytesMax);
    const span = keySpan(keyToString(request.key), request.prefix);
    if (!spanContains(span, keyToString(request.continueKey))) {
      invalid(`${path}.continue_key`, "must lie within the selected key or prefix");
    }
  }
  if (request.countOnly && request.keysOnly) invalid(`${path}.keys_only`, "count_only returns no keys; set at most one of them");
}

export function validateWatch(request: WatchRequest, limits: ValidationLimits): void {
  checkKey(request.key, request.prefix, limits, "watch.key");
  if (toSafeNumber(request.startRevision) === undefined) {
    invalid("watch.start_revision", `must be at most ${Number.MAX_SAFE_INTEGER}`);
  }
}

export function validateTxn(request: TxnRequest, limits: ValidationLimits, path = "txn"): void {
  checkLimit("txnOpsMax", `${path}.compare`, request.compare.length, limits.txnOpsMax);
  checkLimit("txnOpsMax", `${path}.success`, request.success.length, limits.txnOpsMax);
  checkLimit("txnOpsMax", `${path}.failure`, request.failure.length, limits.txnOpsMax);
  request.compare.forEach((compare, i) => validateCompare(compare, limits, `${path}.compare[${i}]`));
  validateOps(request.success, limits, `${path}.success`);
  validateOps(request.failure, limits, `${path}.failure`);
}

function validateCompare(compare: Compare, limits: ValidationLimits, path: string): void {
  checkKey(compare.key, false, limits, `${path}.key`);
  if (!knownCompareTargets.has(compare.target)) invalid(`${path}.target`, `unknown or unspecified target ${compare.target}`);
  if (!knownCompareResults.has(compare.result)) invalid(`${path}.result`, `unknown or unspecified result ${compare.result}`);
  checkLimit("valueBytesMax", `${path}.value`, compare.value.length, limits.valueBytesMax);
}

const knownCompareTargets: ReadonlySet<number> = new Set([
  CompareTarget.VALUE,
  CompareTarget.VERSION,
  CompareTarget.MOD_REVISION,
  CompareTarget.CREATE_REVISION,
]);
const knownCompareResults: ReadonlySet<number> = new Set([
  CompareResult.EQUAL,
  CompareResult.NOT_EQUAL,
  CompareResult.GREATER,
  CompareResult.LESS,
]);

/**
 * Checks each operation, then that no two writes touch one key: all writes of a Txn share one
 * revision, so a second write of a key would leave its version and history ambiguous (etcd refuses
 * the same). Two deletes may overlap: the second simply finds fewer keys.
 */
function validateOps(ops: readonly RequestOp[], limits: ValidationLimits, path: string): void {
  const puts: { key: string; bytes: Uint8Array }[] = [];
  const deletes: KeySpan[] = [];
  ops.forEach((op, i) => {
    const at = `${path}[${i}]`;
    const request = op.request;
    switch (request.case) {
      case "put":
        validatePut(request.value, limits, `${at}.put`);
        puts.push({ key: keyToString(request.value.key), bytes: request.value.key });
        break;
      case "delete":
        validateDelete(request.value, limits, `${at}.delete`);
        deletes.push(keySpan(keyToString(request.value.key), request.value.prefix));
        break;
      case "get":
        validateGet(request.value, limits, `${at}.get`);
        break;
      case "range":
        validateRange(request.value, limits, `${at}.range`);
        break;
      case undefined:
        invalid(at, "the operation holds no request (put, get, delete or range)");
    }
  });
  const seen = new Set<string>();
  for (const put of puts) {
    const overlapsDelete = deletes.some((span) => spanContains(span, put.key));
    if (seen.has(put.key) || overlapsDelete) throw new KvError({ kind: "duplicateKeyInTxn", key: put.bytes });
    seen.add(put.key);
  }
}

function checkKey(key: Uint8Array, prefix: boolean, limits: ValidationLimits, field: string): void {
  if (key.length === 0 && !prefix) invalid(field, "must not be empty (set prefix to select every key)");
  checkLimit("keyBytesMax", field, key.length, limits.keyBytesMax);
}

function checkLimit(limit: KvLimit, field: string, actual: number, max: number): void {
  if (actual > max) throw new KvError({ kind: "limitExceeded", limit, field, actual, max });
}

function invalid(field: string, reason: string): never {
  throw new KvError({ kind: "invalidArgument", field, reason });
}
