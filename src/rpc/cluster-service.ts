import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { ClusterService } from "../../gen/raftkv/v1/cluster_pb.js";
import {
  ClusterStatusResponseSchema,
  MemberAddResponseSchema,
  MemberListResponseSchema,
  MemberPromoteResponseSchema,
  MemberRemoveResponseSchema,
  MemberSchema,
  MemberStatusSchema,
  NodeRole,
  NodeStatusSchema,
  MemberUpdateResponseSchema,
  StatusResponseSchema,
  TransferLeadershipResponseSchema,
  type ClusterStatusResponse,
  type Member,
  type MemberAddResponse,
  type MemberListResponse,
  type MemberPromoteResponse,
  type MemberRemoveResponse,
  type MemberUpdateResponse,
  type MemberStatus,
  type NodeStatus,
  type StatusResponse,
  type TransferLeadershipResponse,
} from "../../gen/raftkv/v1/cluster_pb.js";
import { ResponseHeaderSchema, type ResponseHeader } from "../../gen/raftkv/v1/kv_pb.js";
import type { Role } from "../core/index.js";
import { UnknownOutcomeError } from "../driver/errors.js";
import type { KvNode, MemberView, MembershipChange } from "../driver/types.js";
import type { KvStore } from "../kv/index.js";
import { unreachable } from "../lib/assert.js";
import { invalidArgument } from "./errors.js";
import { reasonHeader } from "./wire-contract.js";
import { failRequest } from "./handler-errors.js";
import { requestSignal } from "./request-context.js";
import type { Logger } from "../lib/logger.js";

export interface ClusterServiceOptions {
  readonly node: KvNode;
  readonly store: Pick<KvStore, "revision" | "dataBytes">;
  readonly logger: Logger;
  readonly requestTimeoutMs: number;
  /** The space quota (--quota-bytes): Status names it as an alarm once the store reaches it. */
  readonly quotaBytes?: number;
  /** The raftkv version Status reports. */
  readonly version?: string;
  /** The bytes the node's data directory takes on disk; Status reports 0 without it. */
  readonly dataBytes?: () => Promise<number>;
  /** Client writes and reads this node answered successfully so far; Status reports 0 without it. */
  readonly requestCounts?: () => Promise<RequestCounts>;
  /** The leader changes this node saw, oldest first; ClusterStatus reports none without it. */
  readonly leaderChanges?: () => readonly LeaderChangeView[];
  /** Asks another member for its own Status (ClusterStatus); without it, other members show an error. */
  readonly memberStatus?: (member: MemberView, signal: AbortSignal) => Promise<NodeStatus>;
}

export interface RequestCounts {
  readonly writes: number;
  readonly reads: number;
}

export interface LeaderChangeView {
  readonly term: number;
  /** 0 when the node lost its leader. */
  readonly leader: number;
  readonly seenUnixMs: number;
}

/** How long one member may take to answer ClusterStatus's question: a dead member must not stall the page. */
const memberStatusTimeoutMs = 1_000;
/**
 * How long a ClusterStatus answer is reused: every open cluster page asks once a second, and each answer
 * costs a call to every member, so concurrent viewers share one round of calls.
 */
const clusterStatusReuseMs = 500;

/**
 * ClusterService over a node: status (its own, and every member's for the cluster page), the member
 * list, membership changes (on the leader; a follower answers not-leader with the leader's URL) and
 * leadership transfer.
 */
export function createClusterServiceImpl(options: ClusterServiceOptions): ServiceImpl<typeof ClusterService> {
  /** Why this node cannot serve now (the /readyz reason), and a store at its space quota. */
  const alarms = (health: { ready: boolean; reason: string }): string[] => {
    const found = health.ready ? [] : [health.reason];
    const quota = options.quotaBytes;
    if (quota !== undefined && options.store.dataBytes >= quota)
      found.push(`space quota reached: ${options.store.dataBytes} of ${quota} bytes (--quota-bytes)`);
    return found;
  };
  const { node, store, logger } = options;

  const header = (term: number): ResponseHeader =>
    create(ResponseHeaderSchema, { revision: BigInt(store.revision), raftTerm: BigInt(term), memberId: BigInt(node.id) });

  /** Runs one membership change through the driver and answers with the members after it. */
  const change = async (method: string, request: MembershipChange, context: HandlerContext): Promise<Member[]> => {
    const signal = requestSignal(context, options.requestTimeoutMs);
    try {
      const members = await node.changeMembership(request, signal);
      logger.info("membership changed", { method, op: request.op, nodeId: request.nodeId, members: members.map((m) => m.id) });
      return members.map(toMember);
    } catch (error) {
      if (error instanceof UnknownOutcomeError) {
        // Not a write with a session: retrying it is not exactly-once, and the member list tells.
        throw new ConnectError(
          "the membership change was proposed but its outcome is unknown (leadership changed or the deadline passed); list the members to see whether it was made",
          Code.Unavailable,
          { [reasonHeader]: "unknown-outcome" },
        );
      }
      throw failRequest(error, method, { signal, mutation: true }, logger);
    }
  };

  const ownStatus = async (): Promise<NodeStatus> => {
    const dataBytes = (await options.dataBytes?.()) ?? 0;
    const counts = (await options.requestCounts?.()) ?? { writes: 0, reads: 0 };
    const status = node.status();
    const health = node.health();
    const self = status.members.find((m) => m.id === status.id);
    return create(NodeStatusSchema, {
      id: BigInt(status.id),
      name: status.name,
      role: toNodeRole(status.role),
      learner: self?.learner ?? false,
      term: BigInt(status.term),
      leader: BigInt(status.leader),
      commitIndex: BigInt(status.commitIndex),
      appliedIndex: BigInt(status.appliedIndex),
      lastLogIndex: BigInt(status.lastIndex),
      snapshotIndex: BigInt(status.snapshotIndex),
      peerUrls: self === undefined ? [] : [self.peerUrl],
      clientUrls: self === undefined ? [] : [self.clientUrl],
      version: options.version ?? "",
      dataBytes: BigInt(dataBytes),
      alarms: alarms(health),
      writesTotal: BigInt(counts.writes),
      readsTotal: BigInt(counts.reads),
      progress: [...(status.matchIndex ?? [])]
        .sort(([a], [b]) => a - b)
        .map(([id, match]) => ({ id: BigInt(id), matchIndex: BigInt(match) })),
    });
  };

  const memberStatus = async (member: MemberView): Promise<MemberStatus> => {
    const base = { member: toMember(member) };
    try {
      if (member.id === node.id) return create(MemberStatusSchema, { ...base, status: await ownStatus() });
      if (options.memberStatus === undefined) return create(MemberStatusSchema, { ...base, error: "not asked" });
      const status = await options.memberStatus(member, AbortSignal.timeout(memberStatusTimeoutMs));
      return create(MemberStatusSchema, { ...base, status });
    } catch (error) {
      return create(MemberStatusSchema, { ...base, error: ConnectError.from(error).rawMessage });
    }
  };

  let lastClusterStatus: { readonly at: number; readonly answer: Promise<ClusterStatusResponse> } | undefined;
  const clusterStatus = async (): Promise<ClusterStatusResponse> => {
    const members = await Promise.all([...node.status().members].sort((a, b) => a.id - b.id).map(memberStatus));
    return create(ClusterStatusResponseSchema, {
      header: header(node.status().term),
      members,
      leaderChanges: (options.leaderChanges?.() ?? []).map((c) => ({
        term: BigInt(c.term),
        leader: BigInt(c.leader),
        seenUnixMs: BigInt(c.seenUnixMs),
      })),
    });
  };

  return {
    async status(): Promise<StatusResponse> {
      const status = await ownStatus();
      return create(StatusResponseSchema, { header: header(Number(status.term)), status });
    },

    clusterStatus(): Promise<ClusterStatusResponse> {
      const now = performance.now();
      if (lastClusterStatus === undefined || now - lastClusterStatus.at > clusterStatusReuseMs)
        lastClusterStatus = { at: now, answer: clusterStatus() };
      return lastClusterStatus.answer;
    },

    async memberList(request, context): Promise<MemberListResponse> {
      const signal = requestSignal(context, options.requestTimeoutMs);
      try {
        // Linearizable by default: the answer reflects every configuration committed before the call.
        if (!request.serializable) await node.readBarrier(signal);
      } catch (error) {
        throw failRequest(error, "MemberList", { signal }, logger);
      }
      const status = node.status();
      return create(MemberListResponseSchema, {
        header: header(status.term),
        members: [...status.members].sort((a, b) => a.id - b.id).map(toMember),
      });
    },

    async memberAdd(request, context): Promise<MemberAddResponse> {
      const id = memberId(request.id, "id", true);
      const peerUrl = onlyUrl(request.peerUrls, "peer_urls", true);
      const clientUrl = onlyUrl(request.clientUrls, "client_urls", false);
      if (request.name === "") throw invalidArgument("name: a member needs a name");
      const op = request.learner ? "addLearner" : "addVoter";
      const members = await change("MemberAdd", { op, nodeId: id, member: { name: request.name, peerUrl, clientUrl } }, context);
      // The added member is the one named, or, for id 0, the one with the new highest id.
      const added = members.find((m) => (id === 0 ? m.name === request.name && m.peerUrls[0] === peerUrl : m.id === BigInt(id)));
      return create(MemberAddResponseSchema, {
        header: header(node.status().term),
        ...(added === undefined ? {} : { member: added }),
        members,
      });
    },

    async memberPromote(request, context): Promise<MemberPromoteResponse> {
      const members = await change("MemberPromote", { op: "promote", nodeId: memberId(request.id, "id", false) }, context);
      return create(MemberPromoteResponseSchema, { header: header(node.status().term), members });
    },

    async memberRemove(request, context): Promise<MemberRemoveResponse> {
      const members = await change("MemberRemove", { op: "remove", nodeId: memberId(request.id, "id", false) }, context);
      return create(MemberRemoveResponseSchema, { header: header(node.status().term), members });
    },

    async memberUpdate(request, context): Promise<MemberUpdateResponse> {
      const nodeId = memberId(request.id, "id", false);
      const current = node.status().members.find((m) => m.id === nodeId);
      const peerUrl = onlyUrl(request.peerUrls, "peer_urls", true);
      const clientUrl = onlyUrl(request.clientUrls, "client_urls", false) || (current?.clientUrl ?? "");
      const name = request.name || (current?.name ?? "");
      const members = await change("MemberUpdate", { op: "update", nodeId, member: { name, peerUrl, clientUrl } }, context);
      return create(MemberUpdateResponseSchema, { header: header(node.status().term), members });
    },

    async transferLeadership(request, context): Promise<TransferLeadershipResponse> {
      const target = request.targetId;
      const members = node.status().members;
      if (target !== 0n) {
        const member = members.find((m) => BigInt(m.id) === target);
        if (member === undefined) {
          throw invalidArgument(`target_id ${target} is not a member (members: ${members.map((m) => m.id).join(", ")})`);
        }
        if (member.learner) throw invalidArgument(`target_id ${target} is a learner; only a voter can lead`);
      }
      const signal = requestSignal(context, options.requestTimeoutMs);
      try {
        const leader = await node.transferLeadership(Number(target), signal);
        return create(TransferLeadershipResponseSchema, { header: header(node.status().term), leader: BigInt(leader) });
      } catch (error) {
        throw failRequest(error, "TransferLeadership", { signal }, logger);
      }
    },
  };
}

/** A member id from a request: a positive safe integer (0 only where `zeroAllowed`: "pick one"). */
function memberId(value: bigint, field: string, zeroAllowed: boolean): number {
  if (value === 0n && zeroAllowed) return 0;
  if (value <= 0n || value > BigInt(Number.MAX_SAFE_INTEGER))
    throw invalidArgument(`${field}: ${value} is not a member id (a positive integer)`);
  return Number(value);
}

/** The one URL of a list of URLs (a member has one of each port): http or https with a host. */
function onlyUrl(urls: readonly string[], field: string, required: boolean): string {
  if (urls.length === 0) {
    if (required) throw invalidArgument(`${field}: one URL is needed`);
    return "";
  }
  if (urls.length > 1) throw invalidArgument(`${field}: a member has one URL per port, got ${urls.length}`);
  const url = urls[0] ?? "";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidArgument(`${field}: ${JSON.stringify(url)} is not a URL`);
  }
  if ((parsed.protocol !== "http:" && parsed.protocol !== "https:") || parsed.hostname === "") {
    throw invalidArgument(`${field}: ${JSON.stringify(url)} is not an http(s) URL with a host`);
  }
  return url;
}

function toMember(m: MemberView): Member {
  const urls = (url: string): string[] => (url === "" ? [] : [url]);
  return create(MemberSchema, {
    id: BigInt(m.id),
    name: m.name,
    peerUrls: urls(m.peerUrl),
    clientUrls: urls(m.clientUrl),
    learner: m.learner,
  });
}

export function toNodeRole(role: Role): NodeRole {
  switch (role) {
    case "follower":
      return NodeRole.FOLLOWER;
    case "precandidate":
      return NodeRole.PRECANDIDATE;
    case "candidate":
      return NodeRole.CANDIDATE;
    case "leader":
      return NodeRole.LEADER;
    default:
      return unreachable(role, "role");
  }
}
