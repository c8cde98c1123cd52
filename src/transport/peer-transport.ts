import { Code, ConnectError } from "@connectrpc/connect";
import type { Command, CommandResult } from "../../gen/raftkv/v1/command_pb.js";
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
  /**
   * Runs a client's write on peer `to` (the leader) and resolves with its applied result. Rejects with a
   * ConnectError: the leader's own answer (it carries raftkv-error metadata: pass it on unchanged), or
   * a failure on the way (none: the outcome is unknown).
   */
  forward(to: NodeId, command: Command, signal: AbortSignal): Promise<CommandResult>;
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
          o.logger.error("message not from this node handed to the transport, dropped", { type: m.type, from: m.from, to: m.to, self: o.selfId });
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
    forward(to, command, signal) {
      const link = closed ? undefined : links.get(to);
      if (link === undefined) return Promise.reject(new ConnectError(`node ${to} is not a peer of this node`, Code.Unavailable));
      return link.forward(command, signal);
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
