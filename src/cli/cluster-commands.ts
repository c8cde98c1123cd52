import { toJson } from "@bufbuild/protobuf";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { NodeRole, StatusResponseSchema, TransferLeadershipResponseSchema } from "../../gen/raftkv/v1/cluster_pb.js";
import type { ClientCommand } from "./client-command.js";
import { stringValue, wholeNumber } from "./client-options.js";
import { jsonLine, table } from "./display.js";
import { exitCodes } from "./exit-codes.js";

const roleNames: Readonly<Record<NodeRole, string>> = {
  [NodeRole.UNSPECIFIED]: "?",
  [NodeRole.FOLLOWER]: "follower",
  [NodeRole.PRECANDIDATE]: "precandidate",
  [NodeRole.CANDIDATE]: "candidate",
  [NodeRole.LEADER]: "leader",
};

export const statusCommand: ClientCommand = {
  name: "status",
  summary: "Ask every endpoint for its view (exit code 4 when one does not answer).",
  args: "",
  positionals: { min: 0, max: 0 },
  options: {},
  async run({ io, settings, client }) {
    const statuses = await client.statusAll({ signal: io.signal });
    if (settings.output === "json") {
      for (const s of statuses) {
        const line =
          s.status === undefined
            ? { endpoint: s.endpoint, error: { code: codeToString(s.error?.code ?? 2), message: s.error?.rawMessage ?? "" } }
            : { endpoint: s.endpoint, status: toJson(StatusResponseSchema, s.status) };
        io.stdout(`${JSON.stringify(line)}\n`);
      }
    } else {
      io.stdout(
        table(
          ["ENDPOINT", "ID", "NAME", "ROLE", "TERM", "COMMIT", "APPLIED", "LEADER"],
          statuses.map(({ endpoint, status, error }) => {
            const s = status?.status;
            if (s === undefined) return [endpoint, "-", "-", `unreachable: ${error?.rawMessage ?? "no answer"}`, "-", "-", "-", "-"];
            return [
              endpoint,
              String(s.id),
              s.name,
              roleNames[s.role],
              String(s.term),
              String(s.commitIndex),
              String(s.appliedIndex),
              String(s.leader),
            ];
          }),
        ),
      );
    }
    return statuses.every((s) => s.status !== undefined) ? exitCodes.ok : exitCodes.unavailable;
  },
};

export const leaderTransferCommand: ClientCommand = {
  name: "leader transfer",
  summary: "Hand leadership to another voter (the most caught-up one without --to).",
  args: "",
  positionals: { min: 0, max: 0 },
  options: { to: { type: "string", placeholder: "ID", help: "The member id to hand leadership to." } },
  async run({ io, values, settings, client }) {
    const targetId = wholeNumber("--to", stringValue(values.to)) ?? 0n;
    const response = await client.transferLeadership({ targetId });
    if (settings.output === "json") io.stdout(jsonLine(TransferLeadershipResponseSchema, response));
    else io.stdout(`leader is now node ${response.leader} (term ${response.header?.raftTerm ?? 0n})\n`);
    return exitCodes.ok;
  },
};

/** The older name of `leader transfer`, kept for scripts: the same flags and output. */
export const moveLeaderCommand: ClientCommand = {
  ...leaderTransferCommand,
  name: "move-leader",
  summary: "Same as leader transfer (the older name).",
};
