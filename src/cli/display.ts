import { toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Bytes for a person: the text when it is printable UTF-8, else 0x-prefixed hex. */
export function displayBytes(bytes: Uint8Array | undefined): string {
  if (bytes === undefined || bytes.length === 0) return "";
  try {
    const text = utf8.decode(bytes);
    // Control characters (tabs and newlines too) would garble a terminal or a table.
    if (!hasControlCharacter(text)) return text;
  } catch {
    // Not UTF-8: shown as hex below.
  }
  return `0x${Buffer.from(bytes).toString("hex")}`;
}

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** A response as one line of the protobuf JSON mapping (bytes in base64, 64-bit numbers as strings). */
export function jsonLine<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): string {
  return `${toJsonString(schema, message)}\n`;
}

/** A plain text table with aligned columns, for `--output table`. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}
