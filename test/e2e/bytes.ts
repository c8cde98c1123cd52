const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** Keys and values are bytes on the wire; the tests write text. */
export const bytes = (value: string): Uint8Array => utf8.encode(value);
export const text = (data: Uint8Array | undefined): string => utf8Decoder.decode(data);
