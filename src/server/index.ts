export { buildApp, buildForwardedWrites, buildGrpcFastPath, type AppLimits, type AppOptions } from "./build-app.js";
export { createGrpcFastPath, type GrpcFastPath, type GrpcFastPathOptions } from "./grpc-fast-path.js";
export { listenClient, type ClientListener, type ClientListenerOptions, type ListenAddress } from "./client-listener.js";
export { buildPeerApp, listenPeer, type PeerApp, type PeerAppOptions, type PeerListener, type RegisterPeerRoutes } from "./peer-app.js";
export { registerCors } from "./cors.js";
export { rpcMetricsInterceptor } from "./rpc-metrics.js";
