import { EventType, WatchResponseSchema } from "../../gen/raftkv/v1/kv_pb.js";
import type { ClientCommand } from "./client-command.js";
import { stringValue, wholeNumber } from "./client-options.js";
import { displayBytes, jsonLine } from "./display.js";
import { exitCodes } from "./exit-codes.js";

const utf8 = new TextEncoder();

export const watchCommand: ClientCommand = {
  name: "watch",
  summary: "Print the changes of a key or prefix as they happen, until Ctrl-C (or --count events).",
  args: "KEY",
  positionals: { min: 1, max: 1 },
  options: {
    "prefix": { type: "boolean", help: "Treat KEY as a prefix." },
    "rev": { type: "string", placeholder: "N", help: "Start at revision N (replays retained history); default: changes from now on." },
    "prev-kv": { type: "boolean", help: "Also print each key's previous value." },
    "count": { type: "string", placeholder: "N", help: "Exit after N events." },
  },
  details: "Exit code 1 when the history needed is gone (compacted): read the current state, then watch from its revision + 1.",
  async run({ io, positionals, values, settings, client }) {
    const [key = ""] = positionals;
    const startRevision = wholeNumber("--rev", stringValue(values.rev)) ?? 0n;
    const count = wholeNumber("--count", stringValue(values.count));
    let seen = 0n;
    const stream = client.watch(
      { key: utf8.encode(key), prefix: values.prefix === true, startRevision, prevKv: values["prev-kv"] === true },
      { signal: io.signal },
    );
    for await (const message of stream) {
      if (message.kind.case === "events" && count !== undefined) {
        // Exactly --count events, even when the last message carries more.
        message.kind.value.events = message.kind.value.events.slice(0, Number(count - seen));
      }
      if (settings.output === "json") io.stdout(jsonLine(WatchResponseSchema, message));
      if (message.kind.case === "compacted") {
        io.stderr(`raftkv: the history needed is compacted; watch again from revision ${message.kind.value.compactRevision} or later\n`);
        return exitCodes.failed;
      }
      if (message.kind.case !== "events") continue;
      for (const event of message.kind.value.events) {
        seen++;
        if (settings.output === "table") {
          const type = event.type === EventType.DELETE ? "DELETE" : "PUT";
          const previous = event.prevKv === undefined ? "" : ` (was ${displayBytes(event.prevKv.value)})`;
          io.stdout(
            `${type} ${displayBytes(event.kv?.key)} ${displayBytes(event.kv?.value)} revision ${event.kv?.modRevision ?? 0n}${previous}\n`,
          );
        }
      }
      if (count !== undefined && seen >= count) return exitCodes.ok;
    }
    return exitCodes.ok;
  },
};
