export { RaftNode, type RaftConfig, type ProposeResult, type ConfProposeResult, type Status, type ProgressStatus } from "./raft.js";
export { MemoryStorage } from "./memory-storage.js";
export { CompactedError, UnavailableError, entrySize, type LogStorage } from "./storage.js";
export { majority, committedIndex, hasQuorum, voteResult, type VoteResult } from "./quorum.js";
export * from "./types.js";
export {
  applyConfChange,
  confChangeRefusal,
  decodeConfEntry,
  encodeConfEntry,
  type ConfChange,
  type ConfChangeOp,
  type ConfEntry,
} from "./conf-change.js";
