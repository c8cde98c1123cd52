import { Code, type ConnectError } from "@connectrpc/connect";
import { toConnectError, type ErrorContext } from "./errors.js";
import type { Logger } from "../lib/logger.js";

/**
 * Maps a handler's failure for the wire and logs the ones that are our fault. An Internal error means
 * a bug or a broken node, so its cause (hidden from the client) is what an operator needs to see.
 */
export function failRequest(error: unknown, method: string, context: ErrorContext, logger: Logger): ConnectError {
  const wire = toConnectError(error, context);
  if (wire.code === Code.Internal) logger.error("request failed with an internal error", { err: error, method });
  return wire;
}
