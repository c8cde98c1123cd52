import type { RaftkvClient } from "../rpc/client/index.js";
import type { CliIo } from "./cli-io.js";
import type { ClientSettings, OptionSpec, ParsedCommandLine } from "./client-options.js";
import type { ExitCode } from "./exit-codes.js";

export interface ClientCommandContext {
  readonly io: CliIo;
  readonly positionals: readonly string[];
  readonly values: ParsedCommandLine["values"];
  readonly settings: ClientSettings;
  readonly client: RaftkvClient;
}

/** One client verb of `raftkv`: its flags, its arguments and what it does. */
export interface ClientCommand {
  /** The verb: one word ("put"), or a group and a word ("member add"; see main.ts). */
  readonly name: string;
  readonly summary: string;
  /** The arguments after the verb, for the usage line (for example "KEY VALUE"). */
  readonly args: string;
  readonly positionals: { readonly min: number; readonly max: number };
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Extra help text after the flags. */
  readonly details?: string;
  /** What to say instead of "the write may or may not have been applied" when the outcome stayed unknown. */
  readonly unknownOutcome?: string;
  run(context: ClientCommandContext): Promise<ExitCode>;
}
