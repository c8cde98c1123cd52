/**
 * The peer transport: how Raft messages leave this node. The receiving side is RaftService
 * (src/rpc/raft-service.ts), which uses the conversion and snapshot assembly exported here.
 *
 * - One PeerLink per peer (peer.ts): one HTTP/2 connection (h2c) kept alive by PINGs, and two lanes
 *   (appends; everything else), each a bounded send queue that drops its oldest messages when full
 *   (send-queue.ts says why) drained by one long-lived Step stream. A stream writes one batch at a time,
 *   bounded by msgBytesMax and batchMessagesMax; what queues meanwhile forms the next batch.
 * - Failures (refused connection, dead PING, a peer that refuses us) end the streams and become
 *   onUnreachable and a backoff with jitter before the streams reopen (peer-state.ts).
 * - Snapshots stream through InstallSnapshot, one per peer at a time, chunked, with a CRC-32C
 *   (snapshot-stream.ts); the result comes back through onSnapshotStatus.
 * - Conversion to and from protobuf (convert.ts) is total on the way in: a malformed message is a
 *   ConvertError naming the field, never an exception and never a bogus core message.
 */
export { createPeerTransport, type PeerTransport } from "./peer-transport.js";
export { peerTransportDefaults, type PeerTransportOptions, type KeepaliveOptions, type BackoffOptions } from "./options.js";
export type { PeerStats } from "./peer.js";
export type { PeerStateKind } from "./peer-state.js";
export {
  ConvertError,
  messageToProto,
  messageFromProto,
  stepMessagesFromProto,
  snapshotMetaToProto,
  snapshotMetaFromProto,
  nodeIdFromProto,
  u64FromProto,
  type Converted,
  type StepMessage,
} from "./convert.js";
export { stepMessageBytesMax, stepEnvelopeBytesMax, snapshotChunkOverheadMax } from "./message-size.js";
export { snapshotHeaderFromProto, SnapshotAssembler, type SnapshotHeaderInfo } from "./snapshot-assembler.js";
export { createMemberProber, type MemberProber, type MemberProberOptions, type ProbeAnswer } from "./probe.js";
