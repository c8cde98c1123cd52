export { systemClock, type DriverClock } from "./clock.js";
export { Driver, type DriverOptions, type DriverStorage, type DriverTransport, type DriverLogger, type DriverObserver } from "./node.js";
export { openNode, type NodeConfig, type OpenedNode } from "./open-node.js";
export type { KvNode, MemberView, MembershipChange, NodeStatusView } from "./types.js";
export { promoteLagMaxDefault } from "./node.js";
export {
  InvalidRequestError,
  MembershipPendingError,
  MembershipRefusedError,
  NotLeaderError,
  OverloadedError,
  ReadFailedError,
  StoppedError,
  TooLargeError,
  UnknownOutcomeError,
} from "./errors.js";
export { DataDirLockedError, lockDataDir } from "./data-dir-lock.js";
export {
  judgeBootstrap,
  runBootstrapCheck,
  MemberDataLostError,
  type BootstrapVerdict,
  type BootstrapCheckOptions,
  type HolderEvidence,
} from "./bootstrap-check.js";
export {
  DataDirError,
  hasRaftState,
  readIdentity,
  writeIdentity,
  newIncarnation,
  formatIncarnation,
  type MemberIdentity,
} from "./member-identity.js";
export { PeerIncarnations, type IncarnationVerdict } from "./peer-incarnations.js";
