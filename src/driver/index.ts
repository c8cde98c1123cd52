export { Driver, type DriverOptions, type DriverStorage, type DriverTransport, type DriverLogger, type DriverObserver } from "./node.js";
export { openNode, type NodeConfig } from "./open-node.js";
export type { KvNode, MemberView, NodeStatusView } from "./types.js";
export { InvalidRequestError, NotLeaderError, OverloadedError, ReadFailedError, StoppedError, TooLargeError, UnknownOutcomeError } from "./errors.js";
export { DataDirLockedError, lockDataDir } from "./data-dir-lock.js";
