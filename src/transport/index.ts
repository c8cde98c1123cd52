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
