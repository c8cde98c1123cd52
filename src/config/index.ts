export { ConfigError } from "./config-error.js";
export { formatHostPort, parseHostPort, parseServiceUrl, urlForListenAddress, type HostPort } from "./addresses.js";
export { defaultMemberName, formatInitialCluster, parseInitialCluster, initialMembersMax, type InitialMember } from "./initial-cluster.js";
export { envName, describeSetting, settingSpecs, type SettingSpec, type SettingFlag } from "./settings.js";
export {
  ordinalOf,
  parseBytes,
  requestBytesMaxCeiling,
  resolveServeArgs,
  type Env,
  type LimitsConfig,
  type LogLevel,
  type ServeArgs,
  type ServerConfig,
  type TimingConfig,
} from "./server-config.js";
export { serveHelp } from "./help.js";
