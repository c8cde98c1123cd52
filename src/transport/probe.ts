import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { MemberPhase, RaftService } from "../../gen/raftkv/v1/raft_pb.js";
import type { NodeId } from "../core/index.js";
import { u64FromProto } from "./convert.js";

/** What a member said about itself (RaftService.Probe), or why it said nothing. */
export type ProbeAnswer =
  | { readonly kind: "unreachable"; readonly reason: string }
  /** Still opening its storage; cannot tell yet. */
  | { readonly kind: "starting" }
  /** Its own data directory is empty and it is asking the same question: it holds nothing. */
  | { readonly kind: "bootstrapping" }
  | {
      readonly kind: "running";
      readonly term: number;
      readonly lastIndex: number;
      readonly snapshotIndex: number;
      /** Its incarnation; absent where the answer does not carry one (0 on the wire). */
      readonly incarnation?: bigint;
      /**
       * Whether it has seen an incarnation of the asker (and so may have counted the asker's vote or
       * acknowledgement). True when it cannot tell (a member that predates ProbeResponse.asker_unknown).
       */
      readonly knowsAsker: boolean;
    };

export interface MemberProber {
  /** Asks `peer` what it holds. Never rejects: a failed call is an "unreachable" answer with the reason. */
  probe(peer: NodeId, signal: AbortSignal): Promise<ProbeAnswer>;
  close(): void;
}

export interface MemberProberOptions {
  readonly clusterId: string;
  readonly selfId: NodeId;
  /** Peer id -> base URL of its peer listener. */
  readonly peers: ReadonlyMap<NodeId, string>;
  /** The deadline of one Probe call. */
  readonly timeoutMs: number;
}

/**
 * Probe calls to the other members, used once at start-up by a member whose data directory is empty
 * (src/driver/bootstrap-check.ts). One HTTP/2 connection per peer, closed by close(); the peer links of
 * the transport do not exist yet at that point.
 */
export function createMemberProber(o: MemberProberOptions): MemberProber {
  const links = new Map<NodeId, { session: Http2SessionManager; client: Client<typeof RaftService> }>();
  for (const [id, url] of o.peers) {
    if (id === o.selfId) continue;
    const session = new Http2SessionManager(url);
    links.set(id, { session, client: createClient(RaftService, createGrpcTransport({ baseUrl: url, sessionManager: session })) });
  }
  return {
    async probe(peer, signal) {
      const link = links.get(peer);
      if (link === undefined) return { kind: "unreachable", reason: `member ${peer} has no peer URL` };
      try {
        const answer = await link.client.probe(
          { clusterId: o.clusterId, from: BigInt(o.selfId), to: BigInt(peer) },
          { timeoutMs: o.timeoutMs, signal },
        );
        switch (answer.phase) {
          case MemberPhase.STARTING:
            return { kind: "starting" };
          case MemberPhase.BOOTSTRAPPING:
            return { kind: "bootstrapping" };
          case MemberPhase.RUNNING: {
            const term = u64FromProto(answer.term, "term");
            const lastIndex = u64FromProto(answer.lastIndex, "last_index");
            const snapshotIndex = u64FromProto(answer.snapshotIndex, "snapshot_index");
            if (!term.ok || !lastIndex.ok || !snapshotIndex.ok)
              return { kind: "unreachable", reason: "malformed Probe answer (a value beyond 2^53)" };
            const running = {
              kind: "running",
              term: term.value,
              lastIndex: lastIndex.value,
              snapshotIndex: snapshotIndex.value,
              knowsAsker: !answer.askerUnknown,
            } as const;
            return answer.incarnation === 0n ? running : { ...running, incarnation: answer.incarnation };
          }
          default:
            return { kind: "unreachable", reason: `malformed Probe answer (phase ${answer.phase})` };
        }
      } catch (error) {
        const e = ConnectError.from(error);
        return { kind: "unreachable", reason: `${Code[e.code]}: ${e.rawMessage}` };
      }
    },
    close() {
      for (const link of links.values()) link.session.abort();
    },
  };
}
