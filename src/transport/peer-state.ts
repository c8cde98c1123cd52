/**
 * The lifecycle of the link to one peer. Only PeerLink.setState changes it.
 *
 *            ┌──────── call fails ─────────┐
 *            ▼                             │
 *   probing ──call ok──▶ active ──call fails──▶ backoff ──timer──▶ probing
 *      │                                          ▲
 *      └──────────────── call fails ──────────────┘
 *   any ──close()──▶ closed
 *
 * A new link starts in `probing`: one Step call at a time until one succeeds, so a peer that is down is
 * not hit with a full pipeline. `active` pipelines up to inflightStepsMax calls. `backoff` sends nothing
 * until its timer fires; messages keep queueing (bounded, oldest dropped).
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

/** How many Step calls may be in flight in `state`. */
export function stepWindow(state: PeerState, inflightStepsMax: number): number {
  switch (state.kind) {
    case "probing":
      return 1;
    case "active":
      return inflightStepsMax;
    case "backoff":
    case "closed":
      return 0;
  }
}

/** The snapshot stream to one peer; at most one at a time (the core sends the next one only after this one's status). */
export type SnapshotTransfer =
  | { readonly kind: "none" }
  | {
      readonly kind: "streaming";
      readonly index: number;
      readonly totalBytes: number;
      readonly startedAtMs: number;
    };
