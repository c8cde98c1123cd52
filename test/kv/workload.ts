import { encodeCommand } from "../../src/kv/index.js";
import type { Prng } from "../../src/lib/prng.js";
import { CompareResult, CompareTarget, b, opDelete, opGet, opPut, opRange, sessionFields, txnCmd } from "./helpers.js";
import type { Session } from "./helpers.js";

/**
 * A seeded stream of entry payloads covering every command kind: puts, deletes of keys and prefixes,
 * transactions with compares, exactly-once clients that retry and send stale sequences, and corrupt bytes.
 */
export function randomCommands(prng: Prng, count: number): Uint8Array[] {
  const keys = ["a", "a/1", "a/2", "a/3", "b", "b/1", "c", "\u00ff"];
  const clients = new Map<string, { sequence: number; last: Uint8Array | undefined }>();
  const commands: Uint8Array[] = [];
  const key = () => prng.pick(keys);
  const value = () => `v${prng.int(0, 99)}`;
  for (let i = 0; i < count; i++) {
    const roll = prng.int(0, 99);
    let session: Session | undefined;
    if (prng.chance(0.4)) {
      const clientId = `client-${prng.int(1, 4)}`;
      const state = clients.get(clientId) ?? { sequence: 0, last: undefined };
      clients.set(clientId, state);
      if (state.last !== undefined && prng.chance(0.2)) {
        commands.push(state.last);
        continue;
      }
      state.sequence += prng.chance(0.1) ? -1 : prng.int(1, 2);
      session = { clientId, sequence: Math.max(1, state.sequence) };
    }
    let command: Uint8Array;
    if (roll < 45) {
      command = encodeCommand({
        ...sessionFields(session),
        op: { case: "put", value: { key: b(key()), value: b(value()), prevKv: prng.chance(0.5) } },
      });
    } else if (roll < 60) {
      const prefix = prng.chance(0.4);
      command = encodeCommand({
        ...sessionFields(session),
        op: { case: "delete", value: { key: b(prefix ? prng.pick(["a/", "b", ""]) : key()), prefix, prevKv: prng.chance(0.5) } },
      });
    } else if (roll < 95) {
      const target = prng.pick([CompareTarget.VALUE, CompareTarget.VERSION, CompareTarget.MOD_REVISION, CompareTarget.CREATE_REVISION]);
      const compare = {
        key: b(key()),
        target,
        result: prng.pick([CompareResult.EQUAL, CompareResult.NOT_EQUAL, CompareResult.GREATER, CompareResult.LESS]),
        value: b(value()),
        number: BigInt(prng.int(0, 20)),
      };
      const ops = () => {
        const used = new Set<string>();
        const list = [];
        for (let n = prng.int(0, 3); n > 0; n--) {
          const k = key();
          const kind = prng.int(0, 3);
          if (kind === 0 && !used.has(k)) {
            used.add(k);
            list.push(opPut(k, value(), prng.chance(0.5)));
          } else if (kind === 1) list.push(opGet(k));
          else if (kind === 2) list.push(opRange(prng.pick(["a", "b", ""]), true, prng.int(0, 3)));
          else if (!used.has(k)) {
            used.add(k);
            list.push(opDelete(k));
          }
        }
        return list;
      };
      command = txnCmd([compare], ops(), ops(), session);
    } else {
      command = Uint8Array.from({ length: prng.int(1, 12) }, () => prng.int(0, 255));
    }
    if (session !== undefined) (clients.get(session.clientId) as { last: Uint8Array | undefined }).last = command;
    commands.push(command);
  }
  return commands;
}
