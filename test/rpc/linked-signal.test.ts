import { describe, expect, it } from "vitest";
import { linkSignals } from "../../src/rpc/linked-signal.js";

describe("linkSignals", () => {
  it("aborts with the reason of the first parent that aborts", () => {
    const a = new AbortController();
    const b = new AbortController();
    const linked = linkSignals([a.signal, undefined, b.signal]);
    b.abort("b went away");
    expect(linked.signal.aborted).toBe(true);
    expect(linked.signal.reason).toBe("b went away");
  });

  it("starts aborted when a parent already is", () => {
    expect(linkSignals([AbortSignal.abort("early")]).signal.reason).toBe("early");
  });

  it("aborts with a TimeoutError after its timeout", async () => {
    const linked = linkSignals([], 10);
    await new Promise((resolve) => linked.signal.addEventListener("abort", resolve));
    expect((linked.signal.reason as DOMException).name).toBe("TimeoutError");
  });

  it("after dispose, follows its parents no more", () => {
    const parent = new AbortController();
    const linked = linkSignals([parent.signal], 10_000);
    linked.dispose();
    parent.abort();
    expect(linked.signal.aborted).toBe(false);
  });
});
