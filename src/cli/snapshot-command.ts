import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { ConfigError, formatInitialCluster, resolveServeArgs, type ServerConfig } from "../config/index.js";
import { lockDataDir, newIncarnation, writeIdentity } from "../driver/index.js";
import { createKvStore, isKvError } from "../kv/index.js";
import type { Logger } from "../lib/logger.js";
import { createMaintenanceClient } from "../rpc/client/maintenance-client.js";
import { errorReason } from "../rpc/wire-contract.js";
import { BackupFileError, BackupFileWriter, inspectBackupFile, readBackupFile, seedStorage, type BackupInfo } from "../storage/index.js";
import type { CliIo } from "./cli-io.js";
import {
  clientOptionSpecs,
  clientSettings,
  parseCommandLine,
  stringValue,
  type OptionSpec,
  type OutputFormat,
  type ParsedCommandLine,
} from "./client-options.js";
import { table } from "./display.js";
import { exitCodes, type ExitCode } from "./exit-codes.js";
import { UsageError } from "./usage-error.js";

/** The raft term every member restored from a backup starts at (see `restore` below). */
const restoredTerm = 1;
/** How long `snapshot save` may take in all when --timeout is not given: a large state takes a while. */
const saveTimeoutMsDefault = 10 * 60_000;

const outputOption: OptionSpec = {
  type: "string",
  short: "o",
  placeholder: "table|json",
  help: "table for people (default), json for scripts (one JSON object per line, 64-bit numbers as strings).",
};
const helpOption: OptionSpec = { type: "boolean", short: "h", help: "Show this help." };

interface Subcommand {
  readonly name: "save" | "status" | "restore";
  readonly summary: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly details: string;
  run(file: string, values: ParsedCommandLine["values"], io: CliIo): Promise<ExitCode>;
}

const save: Subcommand = {
  name: "save",
  summary: "Stream a consistent snapshot of a running cluster into FILE (written as FILE.part, fsynced, then renamed).",
  options: clientOptionSpecs,
  details: [
    "Any member answers; the snapshot holds every write acknowledged before the call (a linearizable read",
    "barrier comes first). The endpoints are tried in order until one streams a whole snapshot. --timeout",
    "bounds the whole save (default 10m here). Exit code 4 when no endpoint could serve it.",
  ].join("\n"),
  async run(file, values, io) {
    const settings = clientSettings(values, io);
    const deadline = Date.now() + (stringValue(values.timeout) === undefined ? saveTimeoutMsDefault : settings.timeoutMs);
    const client = createMaintenanceClient({ endpoints: settings.endpoints, protocol: settings.protocol });
    let last: ConnectError | undefined;
    try {
      for (const endpoint of client.endpoints) {
        const remaining = deadline - Date.now();
        if (remaining <= 0 || io.signal.aborted) break;
        let writer: BackupFileWriter | undefined;
        try {
          let info: BackupInfo | undefined;
          for await (const part of client.snapshot(endpoint, { signal: io.signal, timeoutMs: remaining })) {
            if (part.kind === "header") {
              const h = part.header;
              writer = await BackupFileWriter.create(file, {
                revision: Number(h.revision),
                appliedIndex: Number(h.appliedIndex),
                raftTerm: Number(h.raftTerm),
                memberId: Number(h.memberId),
                keyCount: Number(h.keyCount),
                kvFormatVersion: h.kvFormatVersion,
                createdAtMs: Date.now(),
              });
            } else if (part.kind === "chunk") {
              await writer?.write(part.bytes);
            } else {
              info = await writer?.finish({ dataBytes: part.totalBytes, sha256: part.sha256 });
            }
          }
          if (info === undefined) throw new ConnectError(`${endpoint} sent no snapshot`, Code.DataLoss);
          if (settings.output === "json") io.stdout(`${JSON.stringify({ file, endpoint, ...infoJson(info) })}\n`);
          else
            io.stdout(
              `saved ${file} from ${endpoint} (member ${info.memberId}): revision ${info.revision}, applied index ${info.appliedIndex}, ${info.keyCount} keys, ${info.dataBytes} bytes, sha256 ${info.sha256}\n`,
            );
          return exitCodes.ok;
        } catch (error) {
          await writer?.discard();
          // A local failure (the disk, a damaged transfer) would fail the same way from any member.
          if (!(error instanceof ConnectError)) throw error;
          last = error;
          io.stderr(
            `raftkv snapshot save: ${endpoint}: ${describeCallError(error)}${client.endpoints.length > 1 ? "; trying the next endpoint" : ""}\n`,
          );
        }
      }
    } finally {
      client.close();
    }
    if (io.signal.aborted) {
      io.stderr("raftkv snapshot save: cancelled; nothing was saved\n");
      return exitCodes.failed;
    }
    io.stderr(
      `raftkv snapshot save: no endpoint served a whole snapshot${last === undefined ? " before the deadline" : `; the last said: ${describeCallError(last)}`}\n`,
    );
    return last === undefined ||
      [Code.Unavailable, Code.DeadlineExceeded, Code.Aborted, Code.Canceled, Code.Unknown, Code.DataLoss].includes(last.code) ||
      errorReason(last) === "overloaded"
      ? exitCodes.unavailable
      : exitCodes.failed;
  },
};

const status: Subcommand = {
  name: "status",
  summary: "Verify FILE's checksums and print what it holds: revision, applied index, keys, size, SHA-256.",
  options: { output: outputOption, help: helpOption },
  details: "Exit code 1 when FILE is not a raftkv backup or is damaged (the message says what is wrong).",
  async run(file, values, io) {
    const output = outputFormat(values);
    const info = await inspectBackupFile(file);
    if (output === "json") io.stdout(`${JSON.stringify({ file, ...infoJson(info) })}\n`);
    else {
      io.stdout(
        table(
          ["REVISION", "APPLIED_INDEX", "RAFT_TERM", "MEMBER", "KEYS", "BYTES", "SHA256", "CREATED"],
          [
            [
              String(info.revision),
              String(info.appliedIndex),
              String(info.raftTerm),
              String(info.memberId),
              String(info.keyCount),
              String(info.fileBytes),
              info.sha256,
              new Date(info.createdAtMs).toISOString(),
            ],
          ],
        ),
      );
    }
    return exitCodes.ok;
  },
};

const restore: Subcommand = {
  name: "restore",
  summary: "Seed one member's new data directory from FILE, for a NEW cluster that starts from its state.",
  options: {
    "data-dir": { type: "string", placeholder: "DIR", help: "The member's data directory: missing or empty (anything else is refused)." },
    "initial-cluster": {
      type: "string",
      placeholder: "ID[:NAME]=PEER_URL|CLIENT_URL,...",
      help: "The new cluster's members, exactly as every member's raftkv serve will get it.",
    },
    "name": {
      type: "string",
      placeholder: "NAME",
      help: "This member's name, which picks its id as raftkv serve does (a StatefulSet name like raftkv-2 gives id 3).",
    },
    "id": { type: "string", placeholder: "N", help: "This member's id, when --name does not say it." },
    "cluster-id": {
      type: "string",
      placeholder: "TEXT",
      help: "The new cluster's id; default derived from FILE's SHA-256 and --initial-cluster, so members restored apart agree.",
    },
    "output": outputOption,
    "help": helpOption,
  },
  details: [
    "Restore EVERY member of the new cluster from the same FILE with the same --initial-cluster (and",
    "--cluster-id, if given) before starting any, then start each with raftkv serve and the printed",
    '--cluster-id. Never restore one member into a running cluster. docs/operations.md, "Backup and',
    'disaster recovery", has the whole procedure and why it is safe.',
  ].join("\n"),
  async run(file, values, io) {
    const output = outputFormat(values);
    const dataDir = stringValue(values["data-dir"]);
    const initialCluster = stringValue(values["initial-cluster"]);
    if (dataDir === undefined) throw new UsageError("--data-dir is required");
    if (initialCluster === undefined) throw new UsageError("--initial-cluster is required");
    const member = resolveMember(dataDir, initialCluster, values);
    await refuseNonEmpty(dataDir, []);

    const { info, data } = await readBackupFile(file);
    checkStateMachine(file, info, data);
    const clusterId = stringValue(values["cluster-id"]) ?? deriveClusterId(info, member);
    checkClusterId(clusterId);
    const voters = member.initialCluster.map((m) => m.id);
    // Index = the state's applied index: the restored log goes on from where the saved one was, so the
    // state machine's sessions, which expire by log index, keep their meaning. Term 1 for every member:
    // no member has voted in it, and all restored members agree on it without talking to each other.
    const index = Math.max(1, info.appliedIndex);

    const unlock = await lockDataDir(dataDir);
    try {
      await refuseNonEmpty(dataDir, ["LOCK"]);
      await seedStorage(
        join(dataDir, "raft"),
        { meta: { index, term: restoredTerm, conf: { voters, learners: [] } }, data },
        stderrLogger(io),
      );
      // The identity comes last: without it a crash half-way leaves a directory `raftkv serve` reads as
      // empty, or as one with state but no identity, never one that looks restored but is not.
      await writeIdentity(dataDir, { clusterId, memberId: member.id, incarnation: newIncarnation() });
    } finally {
      await unlock();
    }

    if (output === "json") {
      io.stdout(
        `${JSON.stringify({ dataDir, clusterId, memberId: String(member.id), name: member.name, snapshotIndex: String(index), snapshotTerm: String(restoredTerm), voters: voters.map(String), backup: { file, ...infoJson(info) } })}\n`,
      );
    } else {
      io.stdout(
        [
          `restored member ${member.id} (${member.name}) of cluster ${clusterId} into ${dataDir}`,
          `  state: revision ${info.revision}, ${info.keyCount} keys, applied index ${info.appliedIndex}, sha256 ${info.sha256}`,
          `  raft:  snapshot at index ${index}, term ${restoredTerm}, voters ${voters.join(",")}`,
          `start it, once every member is restored, with:`,
          `  raftkv serve --data-dir ${dataDir} --id ${member.id} --name ${member.name} --cluster-id ${clusterId} --initial-cluster '${formatInitialCluster(member.initialCluster)}'`,
          "",
        ].join("\n"),
      );
    }
    return exitCodes.ok;
  },
};

const subcommands: readonly Subcommand[] = [save, status, restore];

/** The line `raftkv --help` shows for this verb. */
export const snapshotUsage = {
  args: "save|status|restore FILE",
  summary: "Back up a running cluster, check a backup, seed a new cluster from one.",
};

function snapshotHelp(): string {
  return [
    "Usage: raftkv snapshot <save|status|restore> FILE [flags]",
    "",
    ...subcommands.map((s) => `  ${s.name.padEnd(8)} ${s.summary}`),
    "",
    "raftkv snapshot <subcommand> --help lists its flags.",
    "",
  ].join("\n");
}

function subcommandHelp(sub: Subcommand): string {
  return [
    `Usage: raftkv snapshot ${sub.name} FILE [flags]`,
    "",
    sub.summary,
    "",
    "Flags:",
    ...Object.entries(sub.options).map(([name, spec]) => {
      const flag = `${spec.short === undefined ? "" : `-${spec.short}, `}--${name}${spec.placeholder === undefined ? "" : ` ${spec.placeholder}`}`;
      return `  ${flag.padEnd(34)} ${spec.help}`;
    }),
    "",
    sub.details,
    "",
  ].join("\n");
}

/** Runs `raftkv snapshot ...`; resolves with the exit code. */
export async function runSnapshot(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const [name, ...rest] = args;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    io.stdout(snapshotHelp());
    return name === undefined ? exitCodes.usage : exitCodes.ok;
  }
  const sub = subcommands.find((s) => s.name === name);
  if (sub === undefined) {
    io.stderr(`raftkv snapshot: unknown subcommand ${JSON.stringify(name)}\n\n${snapshotHelp()}`);
    return exitCodes.usage;
  }
  const label = `raftkv snapshot ${sub.name}`;
  try {
    const { positionals, values } = parseCommandLine(rest, sub.options);
    if (values.help === true) {
      io.stdout(subcommandHelp(sub));
      return exitCodes.ok;
    }
    const [file] = positionals;
    if (file === undefined || positionals.length !== 1) throw new UsageError(`expected FILE, got ${positionals.length} argument(s)`);
    return await sub.run(file, values, io);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      io.stderr(`${label}: ${error.message}\nRun ${label} --help for usage.\n`);
      return exitCodes.usage;
    }
    io.stderr(`${label}: ${error instanceof Error ? error.message : String(error)}\n`);
    return exitCodes.failed;
  }
}

function outputFormat(values: ParsedCommandLine["values"]): OutputFormat {
  const output = stringValue(values.output) ?? "table";
  if (output !== "table" && output !== "json") throw new UsageError(`--output must be table or json, got ${JSON.stringify(output)}`);
  return output;
}

function infoJson(info: BackupInfo): Record<string, string> {
  return {
    revision: String(info.revision),
    appliedIndex: String(info.appliedIndex),
    raftTerm: String(info.raftTerm),
    memberId: String(info.memberId),
    keyCount: String(info.keyCount),
    dataBytes: String(info.dataBytes),
    fileBytes: String(info.fileBytes),
    sha256: info.sha256,
    createdAt: new Date(info.createdAtMs).toISOString(),
  };
}

function describeCallError(error: ConnectError): string {
  const reason = errorReason(error);
  return `${error.rawMessage} [${codeToString(error.code)}${reason === undefined ? "" : `, ${reason}`}]`;
}

/**
 * This member's id, name and the new cluster's members, resolved by the very code `raftkv serve` uses
 * (flags only, no environment), so the id written into member.json is the one serve will start as.
 */
function resolveMember(dataDir: string, initialCluster: string, values: ParsedCommandLine["values"]): ServerConfig {
  const args = ["--data-dir", dataDir, "--initial-cluster", initialCluster];
  for (const flag of ["name", "id"] as const) {
    const value = stringValue(values[flag]);
    if (value !== undefined) args.push(`--${flag}`, value);
  }
  const resolved = resolveServeArgs(args, {});
  if (resolved.kind !== "config") throw new UsageError("unexpected --help");
  return resolved.config;
}

/** Restore never mixes a backup with a member's own data: the directory must hold nothing but `allowed`. */
async function refuseNonEmpty(dataDir: string, allowed: readonly string[]): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dataDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  const found = names.filter((n) => !allowed.includes(n));
  if (found.length > 0) {
    throw new Error(
      `refusing to restore into ${resolve(dataDir)}: it is not empty (it holds ${found.slice(0, 5).join(", ")}${found.length > 5 ? ", ..." : ""}). ` +
        `Restore writes only into a missing or empty directory, so that it never overwrites or mixes with a member's own data`,
    );
  }
}

/**
 * Decodes the state completely, as a node would at start, so that a file whose checksums hold but whose
 * content is not a state this build can load (another format version, a bug) is refused now rather than
 * by every restored member at start-up; and checks that the header describes it.
 */
function checkStateMachine(file: string, info: BackupInfo, data: Uint8Array): void {
  const store = createKvStore();
  try {
    store.restore(data);
  } catch (error) {
    if (!isKvError(error)) throw error;
    throw new BackupFileError(file, `the state it holds cannot be loaded: ${error.message}`);
  }
  if (store.revision !== info.revision || store.appliedIndex !== info.appliedIndex || store.keyCount !== info.keyCount) {
    throw new BackupFileError(
      file,
      `the header says revision ${info.revision}, applied index ${info.appliedIndex}, ${info.keyCount} keys, but the state holds revision ${store.revision}, applied index ${store.appliedIndex}, ${store.keyCount} keys`,
    );
  }
}

/**
 * The default cluster id: the same for every member restored from one file into one set of members, so
 * members restored on different machines, one at a time, agree without being told; and different for
 * another backup or another set of peer URLs, so two clusters restored from different files (or the
 * same file twice, at other addresses) refuse each other's messages.
 */
function deriveClusterId(info: BackupInfo, config: ServerConfig): string {
  const members = config.initialCluster.map((m) => `${m.id}=${m.peerUrl}`).join(",");
  const digest = createHash("sha256").update(`raftkv restore\n${info.sha256}\n${members}`).digest("hex");
  return `restored-${digest.slice(0, 16)}`;
}

/** --cluster-id must be one `raftkv serve` accepts; checked by serve's own rules. */
function checkClusterId(clusterId: string): void {
  resolveServeArgs(["--cluster-id", clusterId], {});
}

function stderrLogger(io: CliIo): Logger {
  const line = (msg: string, fields?: object): void => io.stderr(`${msg}${fields === undefined ? "" : ` ${JSON.stringify(fields)}`}\n`);
  return { info: () => undefined, warn: line, error: line };
}
