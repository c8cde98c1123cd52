import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { MemberRecordsSchema } from "../../gen/raftkv/v1/command_pb.js";
import type { ConfState, NodeId } from "../core/index.js";
import type { MemberRecord } from "../kv/index.js";
import type { MemberView } from "./types.js";

/** The context of a conf entry: every member's record once the change is made, ascending by id. */
export function encodeMemberRecords(records: readonly MemberRecord[]): Uint8Array {
  const members = [...records].sort((a, b) => a.id - b.id).map((r) => ({ ...r, id: BigInt(r.id) }));
  return toBinary(MemberRecordsSchema, create(MemberRecordsSchema, { members }));
}

/**
 * The records a conf entry's context carries, or undefined when they do not decode (a context this
 * build did not write: the membership still applies, from the entry's ids; only names and URLs are
 * missing).
 */
export function decodeMemberRecords(context: Uint8Array): MemberRecord[] | undefined {
  try {
    const decoded = fromBinary(MemberRecordsSchema, context);
    const records: MemberRecord[] = [];
    for (const m of decoded.members) {
      if (m.id <= 0n || m.id > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
      records.push({ id: Number(m.id), name: m.name, peerUrl: m.peerUrl, clientUrl: m.clientUrl });
    }
    return records;
  } catch {
    return undefined;
  }
}

/** The members of `conf` with their records (a member without one gets its id as name and no URLs). */
export function memberViews(conf: ConfState, recordOf: (id: NodeId) => MemberRecord | undefined): MemberView[] {
  const view = (id: NodeId, learner: boolean): MemberView => {
    const r = recordOf(id);
    return { id, name: r?.name ?? String(id), peerUrl: r?.peerUrl ?? "", clientUrl: r?.clientUrl ?? "", learner };
  };
  return [...conf.voters.map((id) => view(id, false)), ...conf.learners.map((id) => view(id, true))].sort((a, b) => a.id - b.id);
}
