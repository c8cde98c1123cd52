/** Parsing of listen addresses and advertised URLs, with messages a person can act on. */

export interface HostPort {
  /** A host name or an IP address; IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
}

const portMax = 65_535;

/** `host:port`, `[v6]:port` or `http://host:port`; returns a reason on failure. */
export function parseHostPort(text: string): HostPort | { readonly error: string } {
  const trimmed = text.trim();
  const withoutScheme = /^https?:\/\//i.test(trimmed) ? trimmed.replace(/^https?:\/\//i, "").replace(/\/$/, "") : trimmed;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]/\s]+)):(\d{1,5})$/.exec(withoutScheme);
  if (match === null) {
    return { error: `expected host:port (for example 127.0.0.1:2379 or [::1]:2379), got ${JSON.stringify(text)}` };
  }
  const host = match[1] ?? match[2] ?? "";
  const port = Number(match[3]);
  if (port < 1 || port > portMax) {
    return { error: `port must be between 1 and ${portMax}, got ${port}` };
  }
  return { host, port };
}

/** An absolute http:// or https:// URL with a host and an explicit port and no path; returned normalized. */
export function parseServiceUrl(text: string): { readonly url: string; readonly port: number } | { readonly error: string } {
  let parsed: URL;
  try {
    parsed = new URL(text.trim());
  } catch {
    return { error: `expected a URL like http://10.0.0.1:2379, got ${JSON.stringify(text)}` };
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return { error: `expected an http:// or https:// URL, got ${JSON.stringify(text)}` };
  }
  if (parsed.port === "") {
    return { error: `the URL ${JSON.stringify(text)} needs an explicit port` };
  }
  if ((parsed.pathname !== "/" && parsed.pathname !== "") || parsed.search !== "" || parsed.hash !== "") {
    return { error: `the URL ${JSON.stringify(text)} must not have a path, query or fragment` };
  }
  if (parsed.username !== "" || parsed.password !== "") {
    return { error: `the URL ${JSON.stringify(text)} must not carry credentials` };
  }
  return { url: `${parsed.protocol}//${parsed.host}`, port: Number(parsed.port) };
}

/** The URL a local client uses for a listen address: wildcard hosts become loopback. */
export function urlForListenAddress(address: HostPort): string {
  const host = address.host === "0.0.0.0" ? "127.0.0.1" : address.host === "::" ? "::1" : address.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
}

export function formatHostPort(address: HostPort): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
