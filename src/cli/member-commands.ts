import {
  MemberAddResponseSchema,
  MemberListResponseSchema,
  MemberPromoteResponseSchema,
  MemberRemoveResponseSchema,
  MemberUpdateResponseSchema,
  type Member,
} from "../../gen/raftkv/v1/cluster_pb.js";
import type { ClientCommand } from "./client-command.js";
import { stringValue, wholeNumber } from "./client-options.js";
import { jsonLine, table } from "./display.js";
import { exitCodes } from "./exit-codes.js";
import { UsageError } from "./usage-error.js";

/**
 * What a membership change whose outcome stayed unknown tells the user: changes are not exactly-once,
 * so the member list is the way to find out (a retry may be refused as already made).
 */
const changeOutcomeUnknown = "the change may or may not have been made (raftkv member list shows whether it was)";

const changeDetails = [
  "One membership change at a time: while an earlier one is not committed yet the command retries",
  "until --timeout (exit code 4 if it is still waiting). A change the cluster refuses (for example the",
  "last voter, a learner too far behind to promote, an id used before) exits 1 with the reason; nothing",
  "was changed.",
].join("\n");

/** The members as `member list` shows them (etcdctl member list's columns); "-" for URLs not known. */
export function memberTable(members: readonly Member[]): string {
  const urls = (list: readonly string[]): string => list.filter((u) => u !== "").join(",") || "-";
  return table(
    ["ID", "NAME", "PEER_URLS", "CLIENT_URLS", "LEARNER"],
    members.map((m) => [String(m.id), m.name, urls(m.peerUrls), urls(m.clientUrls), m.learner ? "yes" : "no"]),
  );
}

/** A member id given as an argument or flag: a positive whole number. */
export function memberId(what: string, text: string): bigint {
  if (!/^\d{1,15}$/.test(text) || BigInt(text) === 0n) {
    throw new UsageError(`${what} must be a member id (a positive whole number), got ${JSON.stringify(text)}`);
  }
  return BigInt(text);
}

/** A peer or client URL, checked as the server checks it: http or https, with a host. */
export function memberUrl(flag: string, text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
    throw new UsageError(`${flag} must be an http(s) URL with a host like http://10.0.0.4:2380, got ${JSON.stringify(text)}`);
  }
  return text;
}

function named(members: readonly Member[], id: bigint): string {
  const member = members.find((m) => m.id === id);
  return member === undefined || member.name === "" ? `member ${id}` : `member ${id} (${member.name})`;
}

export const memberListCommand: ClientCommand = {
  name: "member list",
  summary: "List the cluster's members, voters and learners.",
  args: "",
  positionals: { min: 0, max: 0 },
  options: { serializable: { type: "boolean", help: "Answer from one node's local view, without asking the leader." } },
  async run({ io, values, settings, client }) {
    const response = await client.memberList({ serializable: values.serializable === true });
    io.stdout(settings.output === "json" ? jsonLine(MemberListResponseSchema, response) : memberTable(response.members));
    return exitCodes.ok;
  },
};

/** The older name of `member list`, kept for scripts: the same flags and output. */
export const membersCommand: ClientCommand = {
  ...memberListCommand,
  name: "members",
  summary: "Same as member list (the older name).",
};

export const memberAddCommand: ClientCommand = {
  name: "member add",
  summary: "Add a member: a learner (promote it once caught up), or a voter with --voter.",
  args: "NAME --peer-url URL",
  positionals: { min: 1, max: 1 },
  options: {
    "peer-url": { type: "string", placeholder: "URL", help: "Required: the URL of the new member's peer port, like http://10.0.0.4:2380." },
    "client-url": { type: "string", placeholder: "URL", help: "The URL of the new member's client port, like http://10.0.0.4:2379." },
    "id": {
      type: "string",
      placeholder: "N",
      help: "The new member's id, above every id the cluster ever had (default: the next free one).",
    },
    "voter": { type: "boolean", help: "Add a voter at once instead of a learner (it counts in the quorum before it has the log)." },
  },
  details: [
    "A learner receives the log but does not vote, so adding one never puts the quorum at risk. Start",
    "the new node with raftkv serve --join URL,... and this peer URL: it finds itself as this learner,",
    "catches up and asks to be promoted. Or promote it yourself once it has caught up: raftkv member",
    "promote ID. Ids are never reused.",
    "",
    changeDetails,
  ].join("\n"),
  unknownOutcome: changeOutcomeUnknown,
  async run({ io, positionals, values, settings, client }) {
    const name = positionals[0] ?? "";
    if (name.trim() === "") throw new UsageError("NAME must not be empty");
    const peerUrlText = stringValue(values["peer-url"]);
    if (peerUrlText === undefined) throw new UsageError("--peer-url URL is required (the new member's peer port)");
    const peerUrl = memberUrl("--peer-url", peerUrlText);
    const clientUrlText = stringValue(values["client-url"]);
    const clientUrls = clientUrlText === undefined ? [] : [memberUrl("--client-url", clientUrlText)];
    const id = wholeNumber("--id", stringValue(values.id)) ?? 0n;
    const learner = values.voter !== true;
    const response = await client.memberAdd({ id, name, peerUrls: [peerUrl], clientUrls, learner });
    if (settings.output === "json") {
      io.stdout(jsonLine(MemberAddResponseSchema, response));
      return exitCodes.ok;
    }
    const added = response.member;
    const what = added === undefined ? `member ${name}` : named([added], added.id);
    io.stdout(
      learner
        ? `added ${what} as a learner; promote it once caught up: raftkv member promote ${added?.id ?? "ID"}\n`
        : `added ${what} as a voter\n`,
    );
    io.stdout(memberTable(response.members));
    return exitCodes.ok;
  },
};

export const memberPromoteCommand: ClientCommand = {
  name: "member promote",
  summary: "Turn a learner into a voter (refused while it lags the leader).",
  args: "ID",
  positionals: { min: 1, max: 1 },
  options: {},
  details: [
    "The leader promotes a learner only when its log is at most --promote-lag-entries (a serve flag,",
    "default 1000) entries behind its own; until then the command exits 1 and says how far behind it is.",
    "",
    changeDetails,
  ].join("\n"),
  unknownOutcome: changeOutcomeUnknown,
  async run({ io, positionals, settings, client }) {
    const id = memberId("ID", positionals[0] ?? "");
    const response = await client.memberPromote({ id });
    if (settings.output === "json") io.stdout(jsonLine(MemberPromoteResponseSchema, response));
    else io.stdout(`promoted ${named(response.members, id)} to voter\n${memberTable(response.members)}`);
    return exitCodes.ok;
  },
};

export const memberRemoveCommand: ClientCommand = {
  name: "member remove",
  summary: "Remove a member, learner or voter (the leader too: it hands off first).",
  args: "ID",
  positionals: { min: 1, max: 1 },
  options: {},
  details: [
    "The removed member's id is never used again. Removing the leader makes it hand leadership to",
    "another voter; the last voter cannot be removed.",
    "",
    changeDetails,
  ].join("\n"),
  unknownOutcome: changeOutcomeUnknown,
  async run({ io, positionals, settings, client }) {
    const id = memberId("ID", positionals[0] ?? "");
    const response = await client.memberRemove({ id });
    if (settings.output === "json") io.stdout(jsonLine(MemberRemoveResponseSchema, response));
    else io.stdout(`removed member ${id}\n${memberTable(response.members)}`);
    return exitCodes.ok;
  },
};

export const memberUpdateCommand: ClientCommand = {
  name: "member update",
  summary: "Change a member's peer URL (and client URL, name).",
  args: "ID --peer-url URL",
  positionals: { min: 1, max: 1 },
  options: {
    "peer-url": { type: "string", placeholder: "URL", help: "Required: the member's new peer URL." },
    "client-url": { type: "string", placeholder: "URL", help: "The member's new client URL (default: unchanged)." },
    "name": { type: "string", placeholder: "NAME", help: "The member's new name (default: unchanged)." },
  },
  details: changeDetails,
  unknownOutcome: changeOutcomeUnknown,
  async run({ io, positionals, values, settings, client }) {
    const id = memberId("ID", positionals[0] ?? "");
    const peerUrlText = stringValue(values["peer-url"]);
    if (peerUrlText === undefined) throw new UsageError("--peer-url URL is required (the member's new peer URL)");
    const peerUrl = memberUrl("--peer-url", peerUrlText);
    const clientUrlText = stringValue(values["client-url"]);
    const clientUrls = clientUrlText === undefined ? [] : [memberUrl("--client-url", clientUrlText)];
    const name = stringValue(values.name) ?? "";
    if (values.name !== undefined && name.trim() === "") throw new UsageError("--name must not be empty");
    const response = await client.memberUpdate({ id, peerUrls: [peerUrl], clientUrls, name });
    if (settings.output === "json") {
      io.stdout(jsonLine(MemberUpdateResponseSchema, response));
      return exitCodes.ok;
    }
    const updated = response.members.find((m) => m.id === id);
    const urls = updated === undefined ? "" : `: peer URL ${updated.peerUrls.join(",")}, client URL ${updated.clientUrls.join(",")}`;
    io.stdout(`updated ${named(response.members, id)}${urls}\n${memberTable(response.members)}`);
    return exitCodes.ok;
  },
};
