import { Code } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { RaftkvCallError, type RaftkvClient } from "../rpc/client/index.js";
import type { CliIo } from "./cli-io.js";
import type { ClientCommand } from "./client-command.js";
import { clientOptionSpecs, clientSettings, createClientFrom, parseCommandLine, type OptionSpec } from "./client-options.js";
import { leaderTransferCommand, moveLeaderCommand, statusCommand } from "./cluster-commands.js";
import { exitCodes, type ExitCode } from "./exit-codes.js";
import { delCommand, getCommand, putCommand, rangeCommand } from "./kv-commands.js";
import {
  memberAddCommand,
  memberListCommand,
  memberPromoteCommand,
  memberRemoveCommand,
  membersCommand,
  memberUpdateCommand,
} from "./member-commands.js";
import { runServe } from "./serve-command.js";
import { runSnapshot, snapshotUsage } from "./snapshot-command.js";
import { txnCommand } from "./txn-command.js";
import { UsageError } from "./usage-error.js";
import { watchCommand } from "./watch-command.js";

const clientCommands: readonly ClientCommand[] = [
  putCommand,
  getCommand,
  delCommand,
  rangeCommand,
  txnCommand,
  watchCommand,
  statusCommand,
  memberListCommand,
  memberAddCommand,
  memberPromoteCommand,
  memberRemoveCommand,
  memberUpdateCommand,
  membersCommand,
  leaderTransferCommand,
  moveLeaderCommand,
];

/**
 * Verbs of two words ("member add") form groups: `raftkv member` alone, or with --help, lists the
 * group's verbs. The second word must follow the first directly.
 */
const commandGroups: Readonly<Record<string, string>> = {
  member: "List and change the cluster's members (one change at a time; add learners, promote them once caught up).",
  leader: "Hand leadership to another voter.",
};

function groupUsage(group: string): string {
  const commands = clientCommands.filter((c) => c.name.startsWith(`${group} `));
  const width = Math.max(...commands.map((c) => `${c.name} ${c.args}`.trimEnd().length));
  return [
    `Usage: raftkv ${group} <command> [arguments] [flags]`,
    "",
    commandGroups[group] ?? "",
    "",
    "Commands:",
    ...commands.map((c) => `  ${`${c.name} ${c.args}`.trimEnd().padEnd(width)}  ${c.summary}`),
    "",
    `Run raftkv ${group} <command> --help for a command's flags; raftkv --help lists the client flags.`,
    "",
  ].join("\n");
}

export function usage(): string {
  const width = Math.max(
    ...clientCommands.map((c) => `${c.name} ${c.args}`.length),
    "serve [flags]".length,
    `snapshot ${snapshotUsage.args}`.length,
  );
  return [
    "Usage: raftkv <command> [arguments] [flags]",
    "",
    "Commands:",
    `  ${"serve [flags]".padEnd(width)}  Run a node (raftkv serve --help lists its settings).`,
    ...clientCommands.map((c) => `  ${`${c.name} ${c.args}`.trimEnd().padEnd(width)}  ${c.summary}`),
    `  ${`snapshot ${snapshotUsage.args}`.padEnd(width)}  ${snapshotUsage.summary}`,
    "",
    "Client flags (every command but serve, snapshot status and snapshot restore):",
    ...describeOptions(clientOptionSpecs),
    "",
    "Exit codes: 0 ok, 1 failed (not applied), 2 usage, 3 not found / txn conditions false,",
    "            4 unavailable (not applied), 5 write outcome unknown.",
    "",
  ].join("\n");
}

function commandHelp(command: ClientCommand): string {
  const lines = [`Usage: raftkv ${command.name} ${command.args}`.trimEnd() + " [flags]", "", command.summary, ""];
  if (Object.keys(command.options).length > 0) lines.push("Flags:", ...describeOptions(command.options), "");
  lines.push("Client flags:", ...describeOptions(clientOptionSpecs), "");
  if (command.details !== undefined) lines.push(command.details, "");
  return lines.join("\n");
}

function describeOptions(options: Readonly<Record<string, OptionSpec>>): string[] {
  return Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short === undefined ? "" : `-${spec.short}, `}--${name}${spec.placeholder === undefined ? "" : ` ${spec.placeholder}`}`;
    return `  ${flag.padEnd(34)} ${spec.help}${spec.multiple === true ? " (repeatable)" : ""}`;
  });
}

/** Runs the `raftkv` command line; resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === "help" || verb === "--help" || verb === "-h") {
    io.stdout(usage());
    return verb === undefined ? exitCodes.usage : exitCodes.ok;
  }
  if (verb === "serve") return runServe(rest, io);
  if (verb === "snapshot") return runSnapshot(rest, io);
  let command: ClientCommand | undefined;
  let args = rest;
  if (Object.hasOwn(commandGroups, verb)) {
    const [word, ...afterWord] = rest;
    if (word === undefined || word === "help" || word === "--help" || word === "-h") {
      io.stdout(groupUsage(verb));
      return word === undefined ? exitCodes.usage : exitCodes.ok;
    }
    command = clientCommands.find((c) => c.name === `${verb} ${word}`);
    if (command === undefined) {
      io.stderr(`raftkv ${verb}: unknown command ${JSON.stringify(word)}\n\n${groupUsage(verb)}`);
      return exitCodes.usage;
    }
    args = afterWord;
  } else {
    command = clientCommands.find((c) => c.name === verb);
  }
  if (command === undefined) {
    io.stderr(`raftkv: unknown command ${JSON.stringify(verb)}\n\n${usage()}`);
    return exitCodes.usage;
  }
  let client: RaftkvClient | undefined;
  try {
    const { positionals, values } = parseCommandLine(args, { ...clientOptionSpecs, ...command.options });
    if (values.help === true) {
      io.stdout(commandHelp(command));
      return exitCodes.ok;
    }
    if (positionals.length < command.positionals.min || positionals.length > command.positionals.max) {
      throw new UsageError(`expected ${command.args === "" ? "no arguments" : command.args}, got ${positionals.length} argument(s)`);
    }
    const settings = clientSettings(values, io);
    client = createClientFrom(settings);
    return await command.run({ io, positionals, values, settings, client });
  } catch (error) {
    return report(error, command, io);
  } finally {
    client?.close();
  }
}

function report(error: unknown, command: ClientCommand, io: CliIo): ExitCode {
  if (error instanceof UsageError) {
    io.stderr(`raftkv ${command.name}: ${error.message}\nRun raftkv ${command.name} --help for usage.\n`);
    return exitCodes.usage;
  }
  if (!(error instanceof RaftkvCallError)) {
    io.stderr(`raftkv ${command.name}: ${error instanceof Error ? error.message : String(error)}\n`);
    return exitCodes.failed;
  }
  const detail = `[${codeToString(error.code)}${error.reason === undefined ? "" : `, ${error.reason}`}]`;
  if (error.outcomeUnknown) {
    const what = command.unknownOutcome ?? "the write may or may not have been applied";
    io.stderr(`raftkv ${command.name}: ${what}: ${error.message} ${detail}\n`);
    return exitCodes.unknownOutcome;
  }
  io.stderr(`raftkv ${command.name}: ${error.message} ${detail}\n`);
  const unavailable =
    error.code === Code.Unavailable ||
    error.code === Code.DeadlineExceeded ||
    (error.code === Code.ResourceExhausted && error.reason === "overloaded");
  return unavailable ? exitCodes.unavailable : exitCodes.failed;
}

/** The process entry point of bin/raftkv.js: wires signals and the real stdout/stderr. */
export async function main(argv: readonly string[]): Promise<ExitCode> {
  const controller = new AbortController();
  const onSignal = (): void => {
    // A second Ctrl-C means "now".
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await runCli(argv, {
      stdout: (text) => process.stdout.write(text),
      stderr: (text) => process.stderr.write(text),
      env: process.env,
      signal: controller.signal,
    });
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
