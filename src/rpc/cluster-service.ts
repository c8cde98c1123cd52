import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type {
  ClusterService} from "../../gen/raftkv/v1/cluster_pb.js";
import {
  MemberListResponseSchema,
  MemberSchema,
  NodeRole,
  StatusResponseSchema,
  TransferLeadershipResponseSchema,
  type Member,
  type MemberListResponse,
  type StatusResponse,
  type TransferLeadershipResponse,
} from "../../gen/raftkv/v1/cluster_pb.js";
import { ResponseHeaderSchema, type ResponseHeader } from "../../gen/raftkv/v1/kv_pb.js";
import type { Role } from "../core/index.js";
import type { KvNode, MemberView } from "../driver/types.js";
import type { KvStore } from "../kv/index.js";
import { unreachable } from "../lib/assert.js";
import { invalidArgument, reasonHeader } from "./errors.js";
import { failRequest } from "./handler-errors.js";
import { requestSignal } from "./request-context.js";
import type { Logger } from "../lib/logger.js";

export interface ClusterServiceOptions {
  readonly node: KvNode;
  readonly store: Pick<KvStore, "revision">;
  readonly logger: Logger;
  readonly requestTimeoutMs: number;
  /** The raftkv version Status reports. */
  readonly version?: string;
  /** The bytes the node's data directory takes on disk; Status reports 0 without it. */
  readonly dataBytes?: () => Promise<number>;
}

/**
 * ClusterService over a node: status, the member list, leadership transfer. Membership changes answer
 * Unimplemented until the driver supports configuration changes: the cluster keeps the members it was
 * started with, and saying so plainly beats a change that half happens.
 */
export function createClusterServiceImpl(options: ClusterServiceOptions): ServiceImpl<typeof ClusterService> {
  const { node, store, logger } = options;

  const header = (term: number): ResponseHeader =>
    create(ResponseHeaderSchema, { revision: BigInt(store.revision), raftTerm: BigInt(term), memberId: BigInt(node.id) });

  const membershipUnimplemented = (): never => {
    throw new ConnectError(
      "membership changes are not supported yet: the cluster keeps the members it was started with (--initial-cluster)",
      Code.Unimplemented,
      { [reasonHeader]: "unimplemented" },
    );
  };

  return {
    async status(): Promise<StatusResponse> {
      const dataBytes = (await options.dataBytes?.()) ?? 0;
      const status = node.status();
      const health = node.health();
      const self = status.members.find((m) => m.id === status.id);
      return create(StatusResponseSchema, {
        header: header(status.term),
        status: {
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
          alarms: health.ready ? [] : [health.reason],
        },
      });
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

    memberAdd: membershipUnimplemented,
    memberPromote: membershipUnimplemented,
    memberRemove: membershipUnimplemented,

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

function toMember(m: MemberView): Member {
  return create(MemberSchema, { id: BigInt(m.id), name: m.name, peerUrls: [m.peerUrl], clientUrls: [m.clientUrl], learner: m.learner });
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
