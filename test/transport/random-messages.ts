import type { Entry, EntryType, NodeId, SnapshotMeta } from "../../src/core/index.js";
import type { Prng } from "../../src/lib/prng.js";
import type { StepMessage } from "../../src/transport/index.js";

/** Seeded generators of well-formed core messages, biased toward the edges of the number range. */

const EDGES = [0, 1, 2, 127, 128, 2 ** 31 - 1, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER];

export function randomU53(rng: Prng): number {
  if (rng.chance(0.3)) return rng.pick(EDGES);
  // Two 26/27-bit halves, so large values are as likely as small ones.
  return rng.int(0, 2 ** 26 - 1) * 2 ** 27 + rng.int(0, 2 ** 27 - 1);
}

function randomId(rng: Prng): NodeId {
  return rng.chance(0.2) ? rng.pick([1, 2, 3, Number.MAX_SAFE_INTEGER]) : Math.max(1, randomU53(rng));
}

function randomBytes(rng: Prng, max: number): Uint8Array {
  const bytes = new Uint8Array(rng.int(0, max));
  for (let i = 0; i < bytes.length; i++) bytes[i] = rng.int(0, 255);
  return bytes;
}

function randomEntries(rng: Prng, prevIndex: number, term: number): Entry[] {
  const room = Number.MAX_SAFE_INTEGER - prevIndex;
  const count = Math.min(rng.int(0, 6), room);
  const types: EntryType[] = ["normal", "noop"];
  return Array.from({ length: count }, (_, i) => ({
    term: rng.int(0, Math.min(term, 2 ** 31)),
    index: prevIndex + 1 + i,
    type: rng.pick(types),
    data: randomBytes(rng, 64),
  }));
}

function randomIds(rng: Prng): number[] {
  return Array.from({ length: rng.int(0, 5) }, () => randomU53(rng));
}

export function randomStepMessage(rng: Prng, from = randomId(rng), to = randomId(rng)): StepMessage {
  const term = randomU53(rng);
  const env = { from, to, term };
  switch (rng.int(0, 8)) {
    case 0:
      return {
        type: "vote",
        ...env,
        preVote: rng.chance(0.5),
        lastLogIndex: randomU53(rng),
        lastLogTerm: randomU53(rng),
        transfer: rng.chance(0.5),
      };
    case 1:
      return { type: "voteResp", ...env, preVote: rng.chance(0.5), granted: rng.chance(0.5) };
    case 2: {
      const prevIndex = randomU53(rng);
      return {
        type: "append",
        ...env,
        prevIndex,
        prevTerm: randomU53(rng),
        entries: randomEntries(rng, prevIndex, term),
        commit: randomU53(rng),
      };
    }
    case 3:
      return {
        type: "appendResp",
        ...env,
        reject: rng.chance(0.5),
        index: randomU53(rng),
        hintIndex: randomU53(rng),
        hintTerm: randomU53(rng),
      };
    case 4:
      return { type: "heartbeat", ...env, commit: randomU53(rng), readRound: randomU53(rng) };
    case 5:
      return { type: "heartbeatResp", ...env, readRound: randomU53(rng) };
    case 6:
      return { type: "timeoutNow", ...env };
    case 7:
      return { type: "readIndex", ...env, requestIds: randomIds(rng) };
    default:
      return { type: "readIndexResp", ...env, requestIds: randomIds(rng), index: randomU53(rng) };
  }
}

export function randomSnapshotMeta(rng: Prng): SnapshotMeta {
  const ids = [...new Set(Array.from({ length: rng.int(1, 7) }, () => randomId(rng)))];
  const split = rng.int(1, ids.length);
  return { index: Math.max(1, randomU53(rng)), term: randomU53(rng), conf: { voters: ids.slice(0, split), learners: ids.slice(split) } };
}
