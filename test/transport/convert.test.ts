import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EntryType, RaftMessageSchema, SnapshotMetaSchema, StepRequestSchema, type RaftMessage } from "../../gen/raftkv/v1/raft_pb.js";
import { encodeConfEntry } from "../../src/core/index.js";
import { createPrng, type Prng } from "../../src/lib/prng.js";
import {
  messageFromProto,
  messageToProto,
  snapshotMetaFromProto,
  snapshotMetaToProto,
  stepEnvelopeBytesMax,
  stepMessageBytesMax,
  stepMessagesFromProto,
  type StepMessage,
} from "../../src/transport/index.js";
import { randomSnapshotMeta, randomStepMessage } from "./random-messages.js";

const SEED = 20240611;
const CASES = 2000;

function wireRoundTrip(m: StepMessage): ReturnType<typeof messageFromProto> {
  return messageFromProto(fromBinary(RaftMessageSchema, toBinary(RaftMessageSchema, messageToProto(m))));
}

function expectError(p: RaftMessage, path: string | RegExp): void {
  const result = messageFromProto(p, "m");
  expect(result.ok).toBe(false);
  if (!result.ok) {
    expect(result.error.name).toBe("ConvertError");
    expect(result.error.path).toMatch(path);
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

describe("convert: core message <-> protobuf", () => {
  it("round-trips random messages of every kind through the wire encoding", () => {
    const rng = createPrng(SEED);
    const kinds = new Set<string>();
    for (let i = 0; i < CASES; i++) {
      const m = randomStepMessage(rng);
      kinds.add(m.type);
      const back = wireRoundTrip(m);
      if (!back.ok) throw new Error(`seed ${SEED} case ${i}: ${back.error.message} for ${JSON.stringify(m)}`);
      expect(back.value).toEqual(m);
    }
    expect(kinds.size).toBe(9);
  });

  it("round-trips snapshot metadata", () => {
    const rng = createPrng(SEED + 1);
    for (let i = 0; i < 500; i++) {
      const meta = randomSnapshotMeta(rng);
      const back = snapshotMetaFromProto(fromBinary(SnapshotMetaSchema, toBinary(SnapshotMetaSchema, snapshotMetaToProto(meta))));
      expect(back).toEqual({ ok: true, value: meta });
    }
  });

  it("bounds the encoded size of every batch from above (the batcher relies on it)", () => {
    const rng = createPrng(SEED + 2);
    for (let i = 0; i < 500; i++) {
      const batch = Array.from({ length: rng.int(1, 20) }, () => randomStepMessage(rng));
      const clusterId = "c".repeat(rng.int(1, 40));
      const bound = stepEnvelopeBytesMax(clusterId) + batch.reduce((sum, m) => sum + stepMessageBytesMax(m), 0);
      const actual = toBinary(
        StepRequestSchema,
        create(StepRequestSchema, { clusterId, from: MAX_SAFE, to: MAX_SAFE, messages: batch.map(messageToProto) }),
      ).byteLength;
      expect(actual).toBeLessThanOrEqual(bound);
      // The bound is not uselessly loose either: within 200 bytes per message plus the envelope.
      expect(bound - actual).toBeLessThan(200 * batch.length + 100);
    }
  });

  it("refuses numbers above 2^53-1 with the field's path", () => {
    expectError(
      create(RaftMessageSchema, { message: { case: "heartbeat", value: { from: 1n, to: 2n, term: MAX_SAFE + 1n } } }),
      "m.heartbeat.term",
    );
    expectError(
      create(RaftMessageSchema, { message: { case: "appendEntriesResponse", value: { from: 1n, to: 2n, hintIndex: 2n ** 64n - 1n } } }),
      "m.append_entries_response.hint_index",
    );
    expectError(
      create(RaftMessageSchema, { message: { case: "readIndex", value: { from: 1n, to: 2n, requestIds: [1n, 2n ** 60n] } } }),
      "m.read_index.request_ids[1]",
    );
    expectError(
      create(RaftMessageSchema, {
        message: {
          case: "appendEntries",
          value: { from: 1n, to: 2n, term: 5n, entries: [{ term: 2n ** 53n, index: 1n, type: EntryType.NORMAL }] },
        },
      }),
      "m.append_entries.entries[0].term",
    );
    // The largest safe value itself is fine.
    const ok = messageFromProto(create(RaftMessageSchema, { message: { case: "heartbeat", value: { from: 1n, to: 2n, term: MAX_SAFE } } }));
    expect(ok.ok && ok.value.term).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("refuses an empty oneof, node id 0, negative bigints", () => {
    expectError(create(RaftMessageSchema, {}), /^m$/);
    expectError(create(RaftMessageSchema, { message: { case: "vote", value: { from: 0n, to: 2n } } }), "m.vote.from");
    expectError(create(RaftMessageSchema, { message: { case: "timeoutNow", value: { from: 1n, to: 0n } } }), "m.timeout_now.to");
    expectError(
      create(RaftMessageSchema, { message: { case: "timeoutNow", value: { from: 1n, to: 2n, term: -1n } } }),
      "m.timeout_now.term",
    );
  });

  it("refuses unknown and unspecified entry types", () => {
    for (const type of [EntryType.UNSPECIFIED, 7 as EntryType, -1 as EntryType]) {
      expectError(
        create(RaftMessageSchema, {
          message: { case: "appendEntries", value: { from: 1n, to: 2n, term: 1n, entries: [{ term: 1n, index: 1n, type }] } },
        }),
        "m.append_entries.entries[0].type",
      );
    }
    // An unknown enum number survives the wire (proto3 enums are open) and is still refused.
    const wire = toBinary(
      RaftMessageSchema,
      create(RaftMessageSchema, {
        message: { case: "appendEntries", value: { from: 1n, to: 2n, term: 1n, entries: [{ term: 1n, index: 1n, type: 9 as EntryType }] } },
      }),
    );
    expectError(fromBinary(RaftMessageSchema, wire), "m.append_entries.entries[0].type");
  });

  it("carries membership changes, and refuses one whose data does not decode", () => {
    const data = encodeConfEntry({
      change: { op: "remove", nodeId: 3, context: new Uint8Array() },
      conf: { voters: [1, 2], learners: [] },
    });
    const append = (bytes: Uint8Array) =>
      messageFromProto(
        create(RaftMessageSchema, {
          message: {
            case: "appendEntries",
            value: { from: 1n, to: 2n, term: 1n, entries: [{ term: 1n, index: 1n, type: EntryType.CONFIG, data: bytes }] },
          },
        }),
        "m",
      );
    const good = append(data);
    expect(good.ok && good.value.type === "append" ? good.value.entries[0]?.type : undefined).toBe("conf");
    const bad = append(data.subarray(0, 5));
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.error.path).toBe("m.append_entries.entries[0].data");
      expect(bad.error.message).toMatch(/membership change that does not decode/);
    }
  });

  it("refuses entries that are not consecutive from prev_index + 1", () => {
    const entry = (index: bigint) => ({ term: 1n, index, type: EntryType.NORMAL });
    expectError(
      create(RaftMessageSchema, {
        message: { case: "appendEntries", value: { from: 1n, to: 2n, term: 1n, prevIndex: 4n, entries: [entry(5n), entry(7n)] } },
      }),
      "m.append_entries.entries[1].index",
    );
    expectError(
      create(RaftMessageSchema, {
        message: { case: "appendEntries", value: { from: 1n, to: 2n, term: 1n, prevIndex: 4n, entries: [entry(4n)] } },
      }),
      "m.append_entries.entries[0].index",
    );
  });

  it("refuses a batch whose messages do not carry the batch's own from and to", () => {
    const rng = createPrng(SEED + 3);
    const good = [randomStepMessage(rng, 1, 2), randomStepMessage(rng, 1, 2)].map(messageToProto);
    expect(stepMessagesFromProto(good, 1, 2).ok).toBe(true);
    const wrongFrom = [...good, messageToProto(randomStepMessage(rng, 3, 2))];
    const r1 = stepMessagesFromProto(wrongFrom, 1, 2);
    expect(!r1.ok && r1.error.path).toBe("messages[2].from");
    const r2 = stepMessagesFromProto([messageToProto(randomStepMessage(rng, 1, 9))], 1, 2);
    expect(!r2.ok && r2.error.path).toBe("messages[0].to");
  });

  it("refuses snapshot metadata without a membership, without voters, or with a member listed twice", () => {
    expect(snapshotMetaFromProto(undefined).ok).toBe(false);
    expect(snapshotMetaFromProto(create(SnapshotMetaSchema, { index: 3n, term: 1n })).ok).toBe(false);
    const noVoters = snapshotMetaFromProto(create(SnapshotMetaSchema, { index: 3n, term: 1n, conf: { learners: [2n] } }));
    expect(!noVoters.ok && noVoters.error.path).toBe("meta.conf.voters");
    const twice = snapshotMetaFromProto(create(SnapshotMetaSchema, { index: 3n, term: 1n, conf: { voters: [1n, 2n], learners: [2n] } }));
    expect(!twice.ok && twice.error.path).toBe("meta.conf.learners[0]");
  });

  it("is total: random protobuf values and corrupted encodings never throw and never yield a message that does not round-trip", () => {
    const rng = createPrng(SEED + 4);
    let accepted = 0;
    let refused = 0;
    const check = (p: RaftMessage) => {
      const result = messageFromProto(p);
      if (!result.ok) {
        refused++;
        return;
      }
      accepted++;
      // Whatever is accepted is a proper core message: it encodes (no assertion trips) and decodes to itself.
      expect(wireRoundTrip(result.value)).toEqual(result);
    };
    for (let i = 0; i < CASES; i++) {
      check(randomProto(rng));
      const valid = toBinary(RaftMessageSchema, messageToProto(randomStepMessage(rng)));
      const corrupted = corrupt(rng, valid);
      let decoded: RaftMessage | undefined;
      try {
        decoded = fromBinary(RaftMessageSchema, corrupted);
      } catch {
        // Unparseable bytes are refused by the protobuf runtime before our code sees them (Connect answers
        // InvalidArgument); the property concerns what does parse.
        decoded = undefined;
      }
      if (decoded !== undefined) check(decoded);
    }
    expect(accepted).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
  });
});

const WILD = [0n, 1n, 2n, MAX_SAFE, MAX_SAFE + 1n, 2n ** 63n, 2n ** 64n - 1n, -1n];

function wild(rng: Prng): bigint {
  return rng.chance(0.5) ? rng.pick(WILD) : BigInt(rng.int(0, 1000));
}

/** A RaftMessage with arbitrary field values, including ones no valid sender produces. */
function randomProto(rng: Prng): RaftMessage {
  const env = { from: wild(rng), to: wild(rng), term: wild(rng) };
  const cases = [
    "vote",
    "voteResponse",
    "appendEntries",
    "appendEntriesResponse",
    "heartbeat",
    "heartbeatResponse",
    "timeoutNow",
    "readIndex",
    "readIndexResponse",
    "none",
  ] as const;
  const kind = rng.pick(cases);
  switch (kind) {
    case "none":
      return create(RaftMessageSchema, {});
    case "appendEntries": {
      const prevIndex = wild(rng);
      const entries = Array.from({ length: rng.int(0, 3) }, (_, i) => ({
        term: wild(rng),
        index: rng.chance(0.8) ? prevIndex + 1n + BigInt(i) : wild(rng),
        type: rng.int(-1, 4) as EntryType,
        data: new Uint8Array(rng.int(0, 3)),
      }));
      return create(RaftMessageSchema, {
        message: { case: kind, value: { ...env, prevIndex, prevTerm: wild(rng), commit: wild(rng), entries } },
      });
    }
    case "readIndex":
      return create(RaftMessageSchema, { message: { case: kind, value: { ...env, requestIds: [wild(rng), wild(rng)] } } });
    case "readIndexResponse":
      return create(RaftMessageSchema, {
        message: { case: kind, value: { ...env, requestIds: [wild(rng), wild(rng)], index: wild(rng) } },
      });
    case "vote":
      return create(RaftMessageSchema, {
        message: { case: kind, value: { ...env, lastLogIndex: wild(rng), lastLogTerm: wild(rng), preVote: rng.chance(0.5) } },
      });
    case "appendEntriesResponse":
      return create(RaftMessageSchema, {
        message: { case: kind, value: { ...env, index: wild(rng), hintIndex: wild(rng), hintTerm: wild(rng) } },
      });
    case "heartbeat":
      return create(RaftMessageSchema, { message: { case: kind, value: { ...env, commit: wild(rng), readRound: wild(rng) } } });
    case "heartbeatResponse":
      return create(RaftMessageSchema, { message: { case: kind, value: { ...env, readRound: wild(rng) } } });
    default:
      return create(RaftMessageSchema, { message: { case: kind, value: env } });
  }
}

/** Flips, drops or inserts a few bytes. */
function corrupt(rng: Prng, bytes: Uint8Array): Uint8Array {
  const out = [...bytes];
  for (let k = rng.int(1, 3); k > 0; k--) {
    const at = rng.int(0, Math.max(0, out.length - 1));
    const op = rng.int(0, 2);
    if (op === 0 && out.length > 0) out[at] = (out[at] ?? 0) ^ (1 << rng.int(0, 7));
    else if (op === 1 && out.length > 0) out.splice(at, 1);
    else out.splice(at, 0, rng.int(0, 255));
  }
  return Uint8Array.from(out);
}
