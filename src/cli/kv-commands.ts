import {
  DeleteResponseSchema,
  GetResponseSchema,
  PutResponseSchema,
  RangeResponseSchema,
  type KeyValue,
} from "../../gen/raftkv/v1/kv_pb.js";
import { create } from "@bufbuild/protobuf";
import type { ClientCommand } from "./client-command.js";
import { stringValue, wholeNumber } from "./client-options.js";
import { displayBytes, jsonLine, table } from "./display.js";
import { exitCodes } from "./exit-codes.js";
import { UsageError } from "./usage-error.js";

const utf8 = new TextEncoder();

/** Keys fetched by `range` unless --limit says otherwise: bounded, so a huge store cannot flood a terminal. */
const rangeDefaultLimit = 1_000;

function kvRows(kvs: readonly KeyValue[], keysOnly = false): string {
  return table(
    keysOnly ? ["KEY", "MOD_REVISION"] : ["KEY", "VALUE", "CREATE_REVISION", "MOD_REVISION", "VERSION"],
    kvs.map((kv) =>
      keysOnly
        ? [displayBytes(kv.key), String(kv.modRevision)]
        : [displayBytes(kv.key), displayBytes(kv.value), String(kv.createRevision), String(kv.modRevision), String(kv.version)],
    ),
  );
}

export const putCommand: ClientCommand = {
  name: "put",
  summary: "Set a key's value.",
  args: "KEY VALUE",
  positionals: { min: 2, max: 2 },
  options: { "prev-kv": { type: "boolean", help: "Also print the previous value." } },
  async run({ io, positionals, values, settings, client }) {
    const [key = "", value = ""] = positionals;
    const response = await client.put({ key: utf8.encode(key), value: utf8.encode(value), prevKv: values["prev-kv"] === true });
    if (settings.output === "json") io.stdout(jsonLine(PutResponseSchema, response));
    else {
      io.stdout(`OK revision ${response.header?.revision ?? 0n}\n`);
      if (response.prevKv !== undefined) io.stdout(`previous: ${displayBytes(response.prevKv.value)}\n`);
    }
    return exitCodes.ok;
  },
};

export const getCommand: ClientCommand = {
  name: "get",
  summary: "Read one key (exit code 3 when it does not exist).",
  args: "KEY",
  positionals: { min: 1, max: 1 },
  options: {
    "serializable": { type: "boolean", help: "Read the answering node's local state: faster, possibly stale." },
    "value-only": { type: "boolean", help: "Print only the value (for $(raftkv get KEY --value-only))." },
  },
  async run({ io, positionals, values, settings, client }) {
    const [key = ""] = positionals;
    const response = await client.get({ key: utf8.encode(key), serializable: values.serializable === true });
    if (settings.output === "json") io.stdout(jsonLine(GetResponseSchema, response));
    else if (response.kv !== undefined)
      io.stdout(values["value-only"] === true ? `${displayBytes(response.kv.value)}\n` : kvRows([response.kv]));
    return response.kv === undefined ? exitCodes.negative : exitCodes.ok;
  },
};

export const delCommand: ClientCommand = {
  name: "del",
  summary: "Delete a key, or every key with a prefix.",
  args: "KEY",
  positionals: { min: 1, max: 1 },
  options: {
    "prefix": { type: "boolean", help: "Treat KEY as a prefix (an empty prefix deletes every key)." },
    "prev-kv": { type: "boolean", help: "Also print the deleted keys and values." },
  },
  async run({ io, positionals, values, settings, client }) {
    const [key = ""] = positionals;
    const response = await client.delete({ key: utf8.encode(key), prefix: values.prefix === true, prevKv: values["prev-kv"] === true });
    if (settings.output === "json") io.stdout(jsonLine(DeleteResponseSchema, response));
    else {
      io.stdout(`deleted ${response.deleted} revision ${response.header?.revision ?? 0n}\n`);
      if (response.prevKvs.length > 0) io.stdout(kvRows(response.prevKvs));
    }
    return exitCodes.ok;
  },
};

export const rangeCommand: ClientCommand = {
  name: "range",
  summary: 'List the keys that start with PREFIX, in key order (all keys: "").',
  args: "PREFIX",
  positionals: { min: 1, max: 1 },
  options: {
    "limit": { type: "string", placeholder: "N", help: `The most keys to list (default ${rangeDefaultLimit}; 0 for all).` },
    "keys-only": { type: "boolean", help: "List keys without values." },
    "count-only": { type: "boolean", help: "Print only how many keys match." },
    "serializable": { type: "boolean", help: "Read the answering node's local state: faster, possibly stale." },
  },
  async run({ io, positionals, values, settings, client }) {
    const [prefix = ""] = positionals;
    const limit = wholeNumber("--limit", stringValue(values.limit)) ?? BigInt(rangeDefaultLimit);
    const keysOnly = values["keys-only"] === true;
    const countOnly = values["count-only"] === true;
    if (keysOnly && countOnly) throw new UsageError("--keys-only and --count-only exclude each other");
    const request = { key: utf8.encode(prefix), prefix: true, keysOnly, countOnly, serializable: values.serializable === true };
    // Pages until the limit: the server caps each page by its own key and byte limits.
    const merged = create(RangeResponseSchema);
    let continueKey: Uint8Array = new Uint8Array();
    for (;;) {
      const remaining = limit === 0n ? 0n : limit - BigInt(merged.kvs.length);
      const page = await client.range({ ...request, limit: remaining, continueKey });
      if (merged.header === undefined) {
        merged.header = page.header;
        merged.count = page.count;
      }
      merged.kvs.push(...page.kvs);
      merged.more = page.more;
      merged.nextKey = page.nextKey;
      if (countOnly || !page.more || (limit !== 0n && BigInt(merged.kvs.length) >= limit) || page.kvs.length === 0) break;
      continueKey = page.nextKey;
    }
    if (settings.output === "json") io.stdout(jsonLine(RangeResponseSchema, merged));
    else if (countOnly) io.stdout(`${merged.count}\n`);
    else {
      io.stdout(kvRows(merged.kvs, keysOnly));
      if (merged.more) io.stderr(`(${merged.count - BigInt(merged.kvs.length)} more keys; raise --limit to list them)\n`);
    }
    return exitCodes.ok;
  },
};
