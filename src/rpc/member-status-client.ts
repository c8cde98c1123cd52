import { createClient, type Client } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService, type NodeStatus } from "../../gen/raftkv/v1/cluster_pb.js";
import type { MemberView } from "../driver/types.js";

export interface MemberStatusClient {
  /** The member's own ClusterService.Status, asked on its client port. */
  status(member: MemberView, signal: AbortSignal): Promise<NodeStatus>;
  /** Closes every connection; later calls fail. */
  close(): void;
}

/**
 * Asks other members for their Status on their client ports (gRPC over h2c, as any client would), so
 * that ClusterStatus can show the whole cluster from whichever node a browser or a Service reached.
 * One HTTP/2 connection per member, opened on first use and kept: the cluster page asks every second.
 */
export function createMemberStatusClient(): MemberStatusClient {
  const clients = new Map<string, { readonly client: Client<typeof ClusterService>; readonly sessions: Http2SessionManager }>();
  let closed = false;
  return {
    async status(member, signal) {
      if (closed) throw new Error("the node is shutting down");
      let known = clients.get(member.clientUrl);
      if (known === undefined) {
        const sessions = new Http2SessionManager(member.clientUrl);
        known = {
          client: createClient(ClusterService, createGrpcTransport({ baseUrl: member.clientUrl, sessionManager: sessions })),
          sessions,
        };
        clients.set(member.clientUrl, known);
      }
      const response = await known.client.status({}, { signal });
      if (response.status === undefined) throw new Error(`member ${member.id} answered Status without a status`);
      return response.status;
    },
    close() {
      closed = true;
      for (const { sessions } of clients.values()) sessions.abort();
      clients.clear();
    },
  };
}
