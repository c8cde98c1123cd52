import { describe, expect, it } from "vitest";
import type { AppendRequest, Message } from "../../src/core/index.js";
import { createPrng } from "../../src/lib/prng.js";
import { SimNetwork } from "./network.js";

const heartbeat = (from: number, to: number, term = 1): Message => ({ type: "heartbeat", from, to, term, commit: 0, readRound: 0 });
const allUp = (): boolean => true;

function drain(network: SimNetwork, until: number): { step: number; message: Message }[] {
  const out: { step: number; message: Message }[] = [];
  for (let step = 0; step <= until; step++) for (const message of network.deliver(step, allUp)) out.push({ step, message });
  return out;
}

describe("simulated network", () => {
  it("delivers every message once within the delay bound when calm", () => {
    const network = new SimNetwork([1, 2, 3], createPrng(1), 1000);
    network.conditions = {
      lossRate: 0,
      duplicateRate: 0,
      delayStepsMax: 4,
      longDelayRate: 0,
      longDelayStepsMax: 4,
      stallAcrossPartitions: false,
      replayRate: 0,
    };
    for (let i = 0; i < 100; i++) network.send(heartbeat(1, 2, i + 1), 0);
    const delivered = drain(network, 10);
    expect(delivered).toHaveLength(100);
    expect(delivered.every((d) => d.step >= 1 && d.step <= 4)).toBe(true);
    expect(new Set(delivered.map((d) => d.message.term)).size).toBe(100);
    // Reordered: not in send order.
    expect(delivered.map((d) => d.message.term)).not.toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(network.messagesInFlight).toBe(0);
  });

  it("loses and duplicates at the configured rates", () => {
    const network = new SimNetwork([1, 2], createPrng(2), 100_000);
    network.conditions = {
      lossRate: 0.2,
      duplicateRate: 0.1,
      delayStepsMax: 2,
      longDelayRate: 0,
      longDelayStepsMax: 2,
      stallAcrossPartitions: false,
      replayRate: 0,
    };
    for (let i = 0; i < 10_000; i++) network.send(heartbeat(1, 2), 0);
    const delivered = drain(network, 3).length;
    expect(network.stats.lost).toBeGreaterThan(1800);
    expect(network.stats.lost).toBeLessThan(2200);
    expect(delivered).toBe(10_000 - network.stats.lost + network.stats.duplicated);
  });

  it("drops messages across a partition or a one-way cut at delivery time", () => {
    const network = new SimNetwork([1, 2, 3], createPrng(3), 1000);
    network.send(heartbeat(1, 2), 0);
    network.send(heartbeat(2, 1), 0);
    network.send(heartbeat(1, 3), 0);
    network.partition([[1, 3], [2]]);
    expect(network.describe()).toBe("{1,3} {2}");
    const delivered = drain(network, 5).map((d) => `${d.message.from}->${d.message.to}`);
    expect(delivered).toEqual(["1->3"]);
    network.heal();
    network.cutLink(2, 1);
    expect(network.connected(1, 2)).toBe(true);
    expect(network.connected(2, 1)).toBe(false);
    expect(network.describe()).toBe("{1,2,3} 2->1");
  });

  it("can instead hold messages on a cut link and deliver them once it is restored", () => {
    const network = new SimNetwork([1, 2, 3], createPrng(6), 1000);
    network.conditions = {
      lossRate: 0,
      duplicateRate: 0,
      delayStepsMax: 2,
      longDelayRate: 0,
      longDelayStepsMax: 2,
      stallAcrossPartitions: true,
      replayRate: 0,
    };
    network.partition([[1], [2, 3]]);
    network.send(heartbeat(1, 2, 7), 0);
    network.send(heartbeat(3, 2, 8), 0);
    expect(drain(network, 10).map((d) => d.message.term)).toEqual([8]);
    expect(network.messagesInFlight).toBe(1);
    network.heal();
    const late: { step: number; message: Message }[] = [];
    for (let step = 20; step <= 30; step++) for (const message of network.deliver(step, allUp)) late.push({ step, message });
    expect(late.map((d) => d.message.term)).toEqual([7]);
    expect(late[0]?.step).toBeLessThanOrEqual(22);
    expect(network.messagesInFlight).toBe(0);
  });

  it("replays messages from long ago", () => {
    const network = new SimNetwork([1, 2], createPrng(7), 1000, 4);
    network.conditions = {
      lossRate: 0,
      duplicateRate: 0,
      delayStepsMax: 1,
      longDelayRate: 0,
      longDelayStepsMax: 1,
      stallAcrossPartitions: false,
      replayRate: 0.5,
    };
    for (let term = 1; term <= 20; term++) network.send(heartbeat(1, 2, term), 0);
    const delivered = drain(network, 200).map((d) => d.message.term);
    expect(network.stats.replayed).toBeGreaterThan(50);
    expect(delivered.length + network.messagesInFlight).toBe(20 + network.stats.replayed);
    // Only 4 messages are remembered, so replays repeat at most 4 distinct terms.
    expect(new Set(delivered.slice(20)).size).toBeLessThanOrEqual(4);
  });

  it("drops late and stalled messages when told the network is healthy again", () => {
    const network = new SimNetwork([1, 2], createPrng(8), 1000);
    network.conditions = {
      lossRate: 0,
      duplicateRate: 0,
      delayStepsMax: 1,
      longDelayRate: 1,
      longDelayStepsMax: 500,
      stallAcrossPartitions: true,
      replayRate: 0,
    };
    for (let i = 0; i < 50; i++) network.send(heartbeat(1, 2), 0);
    network.partition([[1], [2]]);
    network.conditions = { ...network.conditions, longDelayRate: 0 };
    network.send(heartbeat(2, 1), 0);
    drain(network, 3);
    const inFlight = network.messagesInFlight;
    const dropped = network.dropLateMessages(3, 5);
    expect(dropped).toBeGreaterThan(40);
    expect(network.messagesInFlight).toBe(inFlight - dropped);
    network.heal();
    expect(drain(network, 600).every((d) => d.step <= 8)).toBe(true);
    expect(network.messagesInFlight).toBe(0);
  });

  it("drops messages to a node that is down, and bounds what is in flight", () => {
    const network = new SimNetwork([1, 2], createPrng(4), 3);
    for (let i = 0; i < 5; i++) network.send(heartbeat(1, 2), 0);
    expect(network.stats.overflowed).toBe(2);
    let delivered = 0;
    for (let step = 0; step < 5; step++) delivered += network.deliver(step, (id) => id !== 2).length;
    expect(delivered).toBe(0);
    expect(network.stats.cut).toBe(3);
  });

  it("copies messages, as a wire would", () => {
    const network = new SimNetwork([1, 2], createPrng(5), 10);
    const data = new Uint8Array([1, 2, 3]);
    const append: AppendRequest = {
      type: "append",
      from: 1,
      to: 2,
      term: 1,
      prevIndex: 0,
      prevTerm: 0,
      commit: 0,
      entries: [{ index: 1, term: 1, type: "normal", data }],
    };
    network.send(append, 0);
    data[0] = 9;
    const received = drain(network, 5)[0]?.message;
    expect(received?.type).toBe("append");
    if (received?.type === "append") {
      expect(received).not.toBe(append);
      expect([...(received.entries[0]?.data ?? [])]).toEqual([1, 2, 3]);
    }
  });

  it("keeps a message's tag through duplication, holds and replays; untagged messages have none", () => {
    const network = new SimNetwork([1, 2], createPrng(9), 100_000);
    network.conditions = {
      lossRate: 0,
      duplicateRate: 0.5,
      delayStepsMax: 3,
      longDelayRate: 0,
      longDelayStepsMax: 3,
      stallAcrossPartitions: true,
      replayRate: 0.3,
    };
    network.partition([[1], [2]]);
    for (let i = 0; i < 50; i++) network.send(heartbeat(1, 2, 100), 0, 7);
    for (let i = 0; i < 50; i++) network.send(heartbeat(1, 2, 200), 0);
    const delivered: { message: Message }[] = [];
    for (let step = 0; step <= 40; step++) {
      if (step === 10) network.heal();
      for (const message of network.deliver(step, allUp)) delivered.push({ message });
    }
    expect(network.stats.stalled).toBeGreaterThan(0);
    expect(network.stats.duplicated).toBeGreaterThan(0);
    expect(network.stats.replayed).toBeGreaterThan(0);
    expect(delivered.length).toBeGreaterThan(100);
    for (const { message } of delivered) expect(network.tagOf(message)).toBe(message.term === 100 ? 7 : undefined);
  });
});
