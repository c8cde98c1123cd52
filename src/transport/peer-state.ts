/**
 * The lifecycle of the link to one peer. Only PeerLink.setState changes it.
 *
 *            ┌──────── stream fails ─────────┐
 *            ▼                               │
 *   probing ──request written──▶ active ──stream fails──▶ backoff ──timer──▶ probing
 *      │                                                   ▲
 *      └──────────────── stream fails ─────────────────────┘
 *   any ──close()──▶ closed
 *
 * A new link starts in `probing`: its Step streams open and it becomes `active` once a request has been
 * written. A stream never ends while the link is open, so its end is a failure: both lanes stop and
 * `backoff` sends nothing until its timer fires; messages keep queueing (bounded, oldest dropped).
 */
export type PeerState =
  | {
      readonly kind: "probing";
      /** Consecutive failed calls before this probe; 0 for a link that has not failed yet. */
      readonly failures: number;
      /** When the current outage began (ms since epoch), or undefined when there is none. */
      readonly downSinceMs: number | undefined;
    }
  | { readonly kind: "active" }
  | {
      readonly kind: "backoff";
      readonly failures: number;
      readonly downSinceMs: number;
      readonly retryAtMs: number;
      readonly timer: NodeJS.Timeout;
    }
  | { readonly kind: "closed" };

export type PeerStateKind = PeerState["kind"];

/** The snapshot stream to one peer; at most one at a time (the core sends the next one only after this one's status). */
export type SnapshotTransfer =
  | { readonly kind: "none" }
  | {
      readonly kind: "streaming";
      readonly index: number;
      readonly totalBytes: number;
      readonly startedAtMs: number;
    };
