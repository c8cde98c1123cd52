import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { CommandSchema } from "../../gen/raftkv/v1/command_pb.js";
import type { Command } from "../../gen/raftkv/v1/command_pb.js";
import { KvError } from "./errors.js";

/**
 * The bytes of a NORMAL log entry. The rpc layer builds the Command from the client's request (moving
 * client_id and sequence to the top level, where the state machine reads them).
 */
export function encodeCommand(command: MessageInitShape<typeof CommandSchema>): Uint8Array {
  return toBinary(CommandSchema, create(CommandSchema, command));
}

/**
 * Decodes entry bytes; anything that is not a Command with an operation is a typed "malformedCommand"
 * error. Unknown fields are dropped: a command is applied as this version understands it.
 */
export function decodeCommand(bytes: Uint8Array): Command {
  let command: Command;
  try {
    command = fromBinary(CommandSchema, bytes, { readUnknownFields: false });
  } catch (error) {
    throw new KvError({ kind: "malformedCommand", reason: error instanceof Error ? error.message : String(error) });
  }
  if (command.op.case === undefined) {
    throw new KvError({ kind: "malformedCommand", reason: "the command holds no operation (put, delete or txn)" });
  }
  return command;
}
