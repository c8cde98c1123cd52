import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  NotLeaderError,
  OverloadedError,
  ReadFailedError,
  StoppedError,
  TooLargeError,
  UnknownOutcomeError,
} from "../../src/driver/errors.js";
import { KvError } from "../../src/kv/index.js";
import { errorReason, leaderHeader, leaderIdHeader, toConnectError } from "../../src/rpc/index.js";

function expired(): AbortSignal {
  const controller = new AbortController();
  controller.abort(new ConnectError("deadline", Code.DeadlineExceeded));
  return controller.signal;
}

function canceled(): AbortSignal {
  const controller = new AbortController();
  controller.abort(new ConnectError("client went away", Code.Canceled));
  return controller.signal;
}

describe("toConnectError", () => {
  it("sends a follower's client to the leader with its URL in metadata", () => {
    const original = new NotLeaderError(2, "http://10.0.0.2:2379");
    const error = toConnectError(original);
    expect(error.code).toBe(Code.Unavailable);
    expect(error.metadata.get(leaderHeader)).toBe("http://10.0.0.2:2379");
    expect(error.metadata.get(leaderIdHeader)).toBe("2");
    expect(errorReason(error)).toBe("not-leader");
    expect(error.rawMessage).toContain("http://10.0.0.2:2379");
    expect(error.cause).toBe(original);
  });

  it("says no leader is known without a leader hint", () => {
    const error = toConnectError(new NotLeaderError(0, ""));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.metadata.get(leaderHeader)).toBeNull();
    expect(errorReason(error)).toBe("no-leader");
  });

  it.each([
    [new UnknownOutcomeError("overwritten at index 7 by term 4"), {}, Code.Unavailable, "unknown-outcome"],
    [new UnknownOutcomeError("deadline"), { signal: expired() }, Code.DeadlineExceeded, "unknown-outcome"],
    [new UnknownOutcomeError("deadline"), { signal: canceled() }, Code.Canceled, "canceled"],
    [new ReadFailedError("no quorum in 3 rounds"), {}, Code.Unavailable, "read-failed"],
    [new ReadFailedError("deadline"), { signal: expired() }, Code.DeadlineExceeded, "deadline"],
    [
      new ReadFailedError("timeout"),
      { signal: AbortSignal.abort(new DOMException("timed out", "TimeoutError")) },
      Code.DeadlineExceeded,
      "deadline",
    ],
    [new OverloadedError("4096 proposals pending"), {}, Code.ResourceExhausted, "overloaded"],
    [new StoppedError("storage failed: EIO at /data/wal/0001.wal"), {}, Code.Unavailable, "stopped"],
    [new TooLargeError("the command is 2000000 bytes"), {}, Code.ResourceExhausted, "too-large"],
    [new KvError({ kind: "invalidArgument", field: "put.key", reason: "must not be empty" }), {}, Code.InvalidArgument, "invalid-argument"],
    [
      new KvError({ kind: "limitExceeded", limit: "valueBytesMax", field: "put.value", actual: 9, max: 8 }),
      {},
      Code.ResourceExhausted,
      "limit-exceeded",
    ],
    [new KvError({ kind: "duplicateKeyInTxn", key: new Uint8Array([97]) }), {}, Code.InvalidArgument, "duplicate-key"],
    [new KvError({ kind: "staleSequence", clientId: "c", sequence: 1, latest: 2 }), {}, Code.FailedPrecondition, "stale-sequence"],
    [new KvError({ kind: "sequenceReused", clientId: "c", sequence: 1, appliedAs: "put" }), {}, Code.FailedPrecondition, "stale-sequence"],
    [new KvError({ kind: "resultNotRetained", clientId: "c", sequence: 1, revision: 7 }), {}, Code.AlreadyExists, "result-not-retained"],
    [new KvError({ kind: "tooManyWatchers", max: 5 }), {}, Code.ResourceExhausted, "too-many-watchers"],
    [new KvError({ kind: "malformedCommand", reason: "index out of range" }), {}, Code.Internal, "internal"],
    [new TypeError("cannot read properties of undefined"), {}, Code.Internal, "internal"],
    [new Error("socket hang up"), { signal: expired(), mutation: true }, Code.DeadlineExceeded, "unknown-outcome"],
  ])("maps %s to its code and reason", (original, context, code, reason) => {
    const error = toConnectError(original, context);
    expect(error.code).toBe(code);
    expect(errorReason(error)).toBe(reason);
    expect(error.cause).toBe(original);
  });

  it("keeps internals out of messages and names the fix instead", () => {
    expect(toConnectError(new StoppedError("storage failed: EIO at /data/wal/0001.wal")).rawMessage).not.toContain("/data");
    expect(toConnectError(new OverloadedError("4096 proposals pending")).rawMessage).not.toContain("4096");
    expect(toConnectError(new TypeError("cannot read properties of undefined")).rawMessage).toBe(
      "internal error; the server log has the details",
    );
    expect(toConnectError(new UnknownOutcomeError("x")).rawMessage).toContain("retry with the same client_id and sequence");
  });

  it("passes a ConnectError through untouched", () => {
    const original = new ConnectError("already mapped", Code.NotFound);
    expect(toConnectError(original)).toBe(original);
  });
});
