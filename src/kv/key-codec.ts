/**
 * Keys are bytes on the wire and strings inside the store: one char per byte (code 0-255). JS compares
 * strings by UTF-16 code unit, so these strings sort exactly like their bytes compare lexicographically,
 * and they serve as Map keys and as the entries of the ordered key index.
 */

/** Bytes per String.fromCharCode call: well below the engines' argument count limits. */
const fromCharCodeChunk = 8192;

export function keyToString(bytes: Uint8Array): string {
  // `apply` takes the typed array as an array-like directly; spreading it would build an iterator
  // and an array first, which showed up as 7% of apply time in a profile.
  if (bytes.length <= fromCharCodeChunk) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  let text = "";
  for (let start = 0; start < bytes.length; start += fromCharCodeChunk) {
    text += String.fromCharCode.apply(null, bytes.subarray(start, start + fromCharCodeChunk) as unknown as number[]);
  }
  return text;
}

/**
 * The smallest key string greater than every key that starts with `prefix`, or undefined when no such
 * key exists (the prefix is empty or all 0xff): then the prefix range is unbounded above.
 */
export function prefixEnd(prefix: string): string | undefined {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 0xff) end--;
  if (end === 0) return undefined;
  return prefix.slice(0, end - 1) + String.fromCharCode(prefix.charCodeAt(end - 1) + 1);
}

/** Byte-wise lexicographic comparison: negative, zero or positive. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}
