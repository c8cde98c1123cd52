/**
 * The peer transport: how Raft messages leave this node. The receiving side is RaftService
 * (src/rpc/raft-service.ts), which uses the conversion and snapshot assembly exported here.
 *
 * - One PeerLink per peer (peer.ts): one HTTP/2 connection (h2c) kept alive by PINGs, a bounded send
 *   queue that drops its oldest messages when full (send-queue.ts says why), and a pump that packs the
 *   queue into Step calls bounded by maxMsgBytes and batchMessagesMax, up to inflightStepsMax in flight.
 *   Calls are written one after the other so they arrive in order (ordered-session.ts).
 * - Failures (deadline, refused connection, dead PING, a peer that refuses us) become onUnreachable, a
 *   backoff with jitter, and a single probing call before the pipeline reopens (peer-state.ts).
 * - Snapshots stream through InstallSnapshot, one per peer at a time, chunked, with a CRC-32C
 *   (snapshot-stream.ts); the result comes back through onSnapshotStatus.
 * - Conversion to and from protobuf (convert.ts) is total on the way in: a malformed message is a
 *   ConvertError naming the field, never an exception and never a bogus core message.
 */
export { createPeerTransport, type PeerTransport } from "./peer-transport.js";
export { peerTransportDefaults, type PeerTransportOptions, type KeepaliveOptions, type BackoffOptions } from "./options.js";
export type { PeerStats } from "./peer.js";
export type { PeerStateKind } from "./peer-state.js";
export type { TransportLogger } from "./logger.js";
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
export { stepMessageBytesMax, stepEnvelopeBytesMax, SNAPSHOT_CHUNK_OVERHEAD_MAX } from "./message-size.js";
export { snapshotHeaderFromProto, SnapshotAssembler, type SnapshotHeaderInfo } from "./snapshot-assembler.js";
export { createMemberProber, type MemberProber, type MemberProberOptions, type ProbeAnswer } from "./probe.js";
