import { Code, ConnectError } from "@connectrpc/connect";
import type { PipelineRequest, PipelineResponse } from "../../gen/raftkv/v1/kv_pb.js";
import type { Message, NodeId } from "../core/index.js";
import { parsePeerUrl, resolvePeerTransportOptions, validatePeerId, type PeerTransportOptions } from "./options.js";
import { PeerLink, type PeerStats } from "./peer.js";

export interface PeerTransport {
  /**
   * Hands messages to the links of their recipients. Never blocks and never throws: a message for a peer
   * that is not in the peer map is dropped and reported through onUnreachable (membership can change in
   * the core before the driver calls setPeers); a message whose `from` is not selfId is dropped and logged.
   */
  send(messages: readonly Message[]): void;
  /**
   * Replaces the peer map. New peers get a link, removed peers lose theirs (queue dropped, calls
   * cancelled), a peer whose URL changed gets a fresh link. An entry for selfId is ignored.
   * Throws RangeError on an invalid id or URL, before changing anything.
   */
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
  stats(): ReadonlyMap<NodeId, PeerStats>;
  /** A Forward stream of client writes to peer `to`, the leader (see PeerLink.forwardStream). */
  forwardStream(to: NodeId, requests: AsyncIterable<PipelineRequest>, signal: AbortSignal): AsyncIterable<PipelineResponse>;
  /** Closes every link and resolves once their calls have settled. No callback runs after it is called. */
  close(): Promise<void>;
}

export function createPeerTransport(options: PeerTransportOptions): PeerTransport {
  const o = resolvePeerTransportOptions(options);
  const links = new Map<NodeId, PeerLink>();
  /** Links removed by setPeers whose calls may still be settling; close() waits for them too. */
  const retiring = new Set<Promise<void>>();
  let closed = false;

  function retire(link: PeerLink): void {
    const done = link.close().finally(() => retiring.delete(done));
    retiring.add(done);
  }

  function setPeers(peers: ReadonlyMap<NodeId, string>): void {
    if (closed) return;
    const wanted = new Map<NodeId, string>();
    for (const [id, url] of peers) {
      validatePeerId(id);
      parsePeerUrl(id, url);
      if (id !== o.selfId) wanted.set(id, url);
    }
    for (const [id, link] of links) {
      if (wanted.get(id) !== link.url) {
        links.delete(id);
        retire(link);
      }
    }
    for (const [id, url] of wanted) {
      if (!links.has(id)) links.set(id, new PeerLink(id, url, o));
    }
  }

  setPeers(options.peers);

  return {
    send(messages) {
      if (closed) return;
      for (const m of messages) {
        if (m.from !== o.selfId) {
          // A bug in the caller. The receiver would refuse the whole batch it landed in, so it goes no further.
          o.logger.error("message not from this node handed to the transport, dropped", {
            type: m.type,
            from: m.from,
            to: m.to,
            self: o.selfId,
          });
          continue;
        }
        const link = links.get(m.to);
        if (link !== undefined) {
          link.enqueue(m);
          continue;
        }
        // Not (yet, or no longer) a peer. Deferred like every callback, so the driver never re-enters itself.
        queueMicrotask(() => {
          if (closed) return;
          if (m.type === "snapshot") o.onSnapshotStatus(m.to, false);
          else o.onUnreachable(m.to);
        });
      }
    },
    setPeers,
    stats() {
      return new Map([...links].map(([id, link]) => [id, link.stats()]));
    },
    forwardStream(to, requests, signal) {
      const link = closed ? undefined : links.get(to);
      if (link === undefined) return refusedStream(new ConnectError(`node ${to} is not a peer of this node`, Code.Unavailable));
      return link.forwardStream(requests, signal);
    },
    async close() {
      if (!closed) {
        closed = true;
        for (const link of links.values()) retire(link);
        links.clear();
      }
      await Promise.all([...retiring]);
    },
  };
}

// eslint-disable-next-line require-yield -- a stream that fails at once, like a refused call
async function* refusedStream(error: ConnectError): AsyncGenerator<PipelineResponse> {
  throw error;
}
