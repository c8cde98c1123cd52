import { describe, expect, it } from "vitest";
import type { Message, NodeId } from "../../src/core/index.js";
import { Network } from "./network.js";
import { expectStateMachineSafety } from "./safety.js";

/**
 * A node that receives an append or heartbeat of an older term answers with an appendResp in its own
 * term, so that a deposed leader learns it was deposed (needed with PreVote/CheckQuorum, which ignore
 * the votes that would otherwise teach it). That answer must not read as "my log matches yours up to
 * my last index": by the time it arrives, its addressee may lead the responder's term with a different log.
 */
describe("a reply to a message of an older term", () => {
  it("is not counted as a replica by the sender, now leader of a newer term", () => {
    // CheckQuorum leases only delay the elections this story needs; the reply under test is sent
    // whenever PreVote or CheckQuorum is on, and PreVote stays on.
    const net = new Network([1, 2, 3], { checkQuorum: false });
    net.electLeader(1);
    const termOfFirstLeader = net.status(1).term;

    // A heartbeat node 1 sends to node 2 in its first term is delayed in the network.
    net.hold = (m) => m.type === "heartbeat" && m.from === 1 && m.to === 2;
    net.tick(1);
    net.hold = () => false;
    expect(net.held).toHaveLength(1);

    // Node 2 leads the next term cut off from everyone: its entries stay on node 2 only.
    net.drop = appendsFrom(2);
    net.electLeader(2);
    net.propose(2, "two-a");
    net.propose(2, "two-b");

    // Node 1 wins a newer term with node 3's vote; its appends are lost, so its entries stay on node 1.
    net.drop = (m) => appendsFrom(1)(m) || appendsFrom(2)(m);
    net.electLeader(1);
    net.propose(1, "one-a");
    net.propose(1, "one-b");
    expect(net.status(2).term).toBe(net.status(1).term);
    expect(net.status(1).commit).toBe(1);

    // The old heartbeat finally reaches node 2, which answers in the current term.
    expect(net.held[0]?.term).toBe(termOfFirstLeader);
    net.release();
    net.tickAll(2);

    // Nothing of node 1's term is on a majority: its commit index must not move, and no two nodes
    // may apply different entries at one index.
    expect(net.status(1).commit).toBe(1);
    expectStateMachineSafety(net);
  });
});

function appendsFrom(id: NodeId): (m: Message) => boolean {
  return (m) => m.type === "append" && m.from === id;
}
