import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  DataDirError,
  judgeBootstrap,
  MemberDataLostError,
  PeerIncarnations,
  readIdentity,
  runBootstrapCheck,
  writeIdentity,
  newIncarnation,
} from "../../src/driver/index.js";
import type { ProbeAnswer } from "../../src/transport/index.js";

const running = (term: number, lastIndex = 0, snapshotIndex = 0, knowsAsker = true): ProbeAnswer => ({
  kind: "running",
  term,
  lastIndex,
  snapshotIndex,
  knowsAsker,
});
const unreachable: ProbeAnswer = { kind: "unreachable", reason: "connection refused" };

describe("judgeBootstrap: may an empty member bootstrap?", () => {
  it("says new only when every other member answered and holds nothing", () => {
    expect(
      judgeBootstrap(
        new Map<number, ProbeAnswer>([
          [2, running(0)],
          [3, { kind: "bootstrapping" }],
        ]),
      ),
    ).toEqual({ kind: "new" });
  });

  it("says exists as soon as one member holds a term, an entry or a snapshot, whatever the others say", () => {
    for (const holder of [running(1), running(0, 1), running(0, 0, 5)]) {
      const verdict = judgeBootstrap(
        new Map([
          [2, unreachable],
          [3, holder],
          [4, running(0)],
          [5, { kind: "starting" }],
        ]),
      );
      expect(verdict.kind).toBe("exists");
    }
  });

  it("says late when the cluster formed without this member: every member answered and none that holds state has seen it", () => {
    // The race found in CI: 2 and 3 decided "new" while 1 answered "bootstrapping", and elected before
    // 1's own round. No member counted anything from 1, so it may start empty and catch up.
    expect(
      judgeBootstrap(
        new Map<number, ProbeAnswer>([
          [2, running(1, 1, 0, false)],
          [3, running(1, 1, 0, false)],
        ]),
      ),
    ).toEqual({ kind: "late", evidence: { peer: 2, term: 1, lastIndex: 1, snapshotIndex: 0 } });
    // One member that has seen it is enough to refuse, whichever it is.
    expect(
      judgeBootstrap(
        new Map<number, ProbeAnswer>([
          [2, running(1, 1, 0, false)],
          [3, running(0)],
          [4, running(2, 7, 0, true)],
        ]),
      ),
    ).toMatchObject({ kind: "exists", evidence: { peer: 4 } });
    // A member that has seen it but holds nothing is no evidence (it holds no promise to forget).
    expect(judgeBootstrap(new Map<number, ProbeAnswer>([[2, running(0, 0, 0, true)]]))).toEqual({ kind: "new" });
  });

  it("does not say late while any member is silent: the silent one may be the one that counted this member's vote", () => {
    expect(
      judgeBootstrap(
        new Map<number, ProbeAnswer>([
          [2, running(1, 1, 0, false)],
          [3, unreachable],
        ]),
      ),
    ).toEqual({ kind: "wait", waitingFor: [3] });
  });

  it("waits, never guessing new, while any member is unreachable or still starting", () => {
    expect(
      judgeBootstrap(
        new Map([
          [2, running(0)],
          [3, unreachable],
        ]),
      ),
    ).toEqual({ kind: "wait", waitingFor: [3] });
    expect(
      judgeBootstrap(
        new Map<number, ProbeAnswer>([
          [2, { kind: "starting" }],
          [3, unreachable],
        ]),
      ),
    ).toEqual({ kind: "wait", waitingFor: [2, 3] });
  });

  it("in a 5-member cluster, does not take 3 fresh answers of 4 as new (the 4th may hold this member's vote)", () => {
    const verdict = judgeBootstrap(
      new Map([
        [2, running(0)],
        [3, running(0)],
        [4, running(0)],
        [5, unreachable],
      ]),
    );
    expect(verdict.kind).toBe("wait");
  });
});

/** runBootstrapCheck for member 1 of {1, 2, 3}, whose peers give round r the answers rounds[r] (the last one from then on). */
function scriptedCheck(rounds: ProbeAnswer[][], waits: number[]): ReturnType<typeof runBootstrapCheck> {
  return runBootstrapCheck({
    selfId: 1,
    peers: [2, 3],
    probe: async (peer) => rounds[Math.min(waits.length, rounds.length - 1)]![peer - 2]!,
    signal: new AbortController().signal,
    retryMs: 1,
    retryMsMax: 2,
    onWait: (_waiting, r) => void waits.push(r),
  });
}

describe("runBootstrapCheck", () => {
  it("resolves with late once everyone has answered and no holder has seen this member", async () => {
    const waits: number[] = [];
    const verdict = await scriptedCheck(
      [
        [{ kind: "bootstrapping" }, { kind: "starting" }],
        [running(1, 1, 0, false), running(1, 1, 0, false)],
      ],
      waits,
    );
    expect(verdict).toEqual({ kind: "late", evidence: { peer: 2, term: 1, lastIndex: 1, snapshotIndex: 0 } });
    expect(waits).toEqual([1]);
  });

  it("asks again until everyone answers, then refuses with MemberDataLostError naming the evidence", async () => {
    const waits: number[] = [];
    const check = scriptedCheck(
      [
        [unreachable, running(0)],
        [running(3, 40), running(0)],
      ],
      waits,
    );
    const error = await check.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MemberDataLostError);
    expect((error as MemberDataLostError).evidence).toEqual({ peer: 2, term: 3, lastIndex: 40, snapshotIndex: 0 });
    expect((error as Error).message).toMatch(/member 2 is at term 3, last log index 40/);
    expect(waits).toEqual([1]);
  });
});

describe("member identity and peer incarnations on disk", () => {
  let dir = "";
  afterEach(async () => {
    if (dir !== "") await rm(dir, { recursive: true, force: true });
  });

  it("reads back what it wrote, and refuses a directory of another cluster or member", async () => {
    dir = await mkdtemp(join(tmpdir(), "raftkv-identity-"));
    expect(await readIdentity(dir, { clusterId: "c", memberId: 1 })).toBeUndefined();
    const identity = { clusterId: "c", memberId: 1, incarnation: newIncarnation() };
    await writeIdentity(dir, identity);
    expect(await readIdentity(dir, { clusterId: "c", memberId: 1 })).toEqual(identity);
    await expect(readIdentity(dir, { clusterId: "d", memberId: 1 })).rejects.toThrow(/belongs to cluster "c"/);
    await expect(readIdentity(dir, { clusterId: "c", memberId: 2 })).rejects.toThrow(/belongs to member 1/);
    await writeFile(join(dir, "member.json"), "{not json");
    await expect(readIdentity(dir, { clusterId: "c", memberId: 1 })).rejects.toBeInstanceOf(DataDirError);
  });

  it("accepts a member's first incarnation, refuses a changed one, and remembers across restarts", async () => {
    dir = await mkdtemp(join(tmpdir(), "raftkv-peers-"));
    const changed: [number, bigint, bigint, boolean][] = [];
    const onChanged = (peer: number, known: bigint, seen: bigint, first: boolean): void => void changed.push([peer, known, seen, first]);
    const first = await PeerIncarnations.load(dir, onChanged, (e) => {
      throw e;
    });
    expect(first.check(2, 0xaan)).toBe("accepted");
    expect(first.check(2, 0xaan)).toBe("accepted");
    expect(first.check(2, 0xbbn)).toBe("changed");
    expect(first.check(2, 0xbbn)).toBe("changed");
    expect(first.check(3, 0n)).toBe("changed");
    await first.flushed();
    expect(JSON.parse(await readFile(join(dir, "peers.json"), "utf8"))).toEqual({ "2": "00000000000000aa" });
    expect(changed).toEqual([
      [2, 0xaan, 0xbbn, true],
      [2, 0xaan, 0xbbn, false],
      [3, 0n, 0n, true],
    ]);

    const again = await PeerIncarnations.load(dir, onChanged, () => {});
    expect(again.check(2, 0xbbn)).toBe("changed");
    expect(again.check(2, 0xaan)).toBe("accepted");
  });
});
