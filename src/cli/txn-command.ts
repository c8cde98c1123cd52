import { TxnResponseSchema, type ResponseOp } from "../../gen/raftkv/v1/kv_pb.js";
import type { ClientCommand } from "./client-command.js";
import { stringValues } from "./client-options.js";
import { displayBytes, jsonLine } from "./display.js";
import { exitCodes } from "./exit-codes.js";
import { parseTxn, txnSyntaxHelp } from "./txn-syntax.js";

export const txnCommand: ClientCommand = {
  name: "txn",
  summary: "Compare, then run one list of operations atomically (exit code 3 when the conditions did not hold).",
  args: "",
  positionals: { min: 0, max: 0 },
  options: {
    if: { type: "string", multiple: true, placeholder: "CONDITION", help: "A condition; repeat for more (all must hold)." },
    then: {
      type: "string",
      multiple: true,
      placeholder: "OPERATION",
      help: "An operation run when every condition holds; repeat for more.",
    },
    else: { type: "string", multiple: true, placeholder: "OPERATION", help: "An operation run otherwise; repeat for more." },
  },
  details: `${txnSyntaxHelp}\n\nExample (compare-and-swap):\n  raftkv txn --if 'config == v1' --then 'put config v2' --else 'get config'`,
  async run({ io, values, settings, client }) {
    const request = parseTxn(stringValues(values.if), stringValues(values.then), stringValues(values.else));
    const response = await client.txn(request);
    if (settings.output === "json") io.stdout(jsonLine(TxnResponseSchema, response));
    else {
      io.stdout(`${response.succeeded ? "SUCCEEDED (--then ran)" : "FAILED (--else ran)"} revision ${response.header?.revision ?? 0n}\n`);
      for (const op of response.responses) io.stdout(`${describe(op)}\n`);
    }
    return response.succeeded ? exitCodes.ok : exitCodes.negative;
  },
};

function describe(op: ResponseOp): string {
  const response = op.response;
  switch (response.case) {
    case "put":
      return "put: OK";
    case "get":
      return response.value.kv === undefined
        ? "get: (no such key)"
        : `get: ${displayBytes(response.value.kv.key)} = ${displayBytes(response.value.kv.value)}`;
    case "delete":
      return `del: deleted ${response.value.deleted}`;
    case "range":
      return `range: ${response.value.kvs.map((kv) => `${displayBytes(kv.key)}=${displayBytes(kv.value)}`).join(" ")}${response.value.more ? " ..." : ""}`;
    case undefined:
      return "(empty response)";
  }
}
