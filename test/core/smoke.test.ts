import { describe, expect, it } from "vitest";
import { Network } from "./network.js";

describe("smoke", () => {
  it("elects a leader and commits on all nodes", () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    expect(net.leaders()).toEqual([1]);
    expect(net.propose(1, "a").ok).toBe(true);
    net.tickAll(2);
    for (const id of [1, 2, 3]) expect(net.appliedData(id)).toEqual(["a"]);
  });
});
