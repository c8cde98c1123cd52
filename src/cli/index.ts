export { main, runCli, usage } from "./main.js";
export { exitCodes, type ExitCode } from "./exit-codes.js";
export type { CliIo } from "./cli-io.js";
export { defaultEndpoints } from "./client-options.js";
export { parseTxn, parseCondition, parseOperation, tokenize } from "./txn-syntax.js";
export { peerMessageBytes, runServe } from "./serve-command.js";
