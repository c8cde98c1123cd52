import { createServer, connect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import type { Reaper } from "../chaos/reaper.js";
import { repoRoot, type K8sObject } from "./kustomize.js";
import { field, listField, podSpec, type PodSpec } from "./pod-spec.js";
import { PodProcess, probeOk, sleep, type PodExit } from "./pod-process.js";

/**
 * The rendered StatefulSet run as real `raftkv serve` processes the way Kubernetes would run its pods,
 * with only the network and the volumes mapped onto this machine:
 *
 * - each pod's arguments and environment are what the rendered objects give pod NAME-N
 *   (test/k8s/pod-spec.ts resolves env, envFrom, the downward API and $(VAR); HOSTNAME is the pod name),
 *   for any ordinal: a pod added by scaling up gets the same template as the others;
 * - each pod gets its own loopback address 127.X.Y.(N+1) (X, Y random per run, so concurrent runs
 *   never meet), standing for its pod IP: the headless Service's DNS name NAME-N.NAME is rewritten to
 *   that address and a listen address 0.0.0.0 becomes it, while the ports stay the manifest's (2379,
 *   2380), as each pod has its own network namespace;
 * - each Service with a cluster IP (the client Service) gets an address 127.X.Y.(201+i) of its own,
 *   its name in the pods' environment is rewritten to it, and a TCP proxy there stands for kube-proxy:
 *   each connection goes to one of the Service's ready endpoints, picked at random, and a connection
 *   made while there is none is refused (reset), as kube-proxy rejects it;
 * - the endpoints are what the endpoints controller would list: pods whose readiness probe (the
 *   manifest's path and port) passed, and no longer once it failed failureThreshold times in a row or
 *   once the pod is being deleted. Probes run every 100 ms instead of every periodSeconds, so that
 *   tests do not wait for the kubelet's period;
 * - the data volume's mount path becomes a folder per pod that outlives the pod (the
 *   PersistentVolumeClaim data-NAME-N, retained when the pod is deleted, as the manifest says);
 * - the image's entrypoint `raftkv serve` is this checkout's bin/raftkv.js (test/k8s/image.test.ts
 *   starts the image's own contents).
 */
export interface EmulatedPod {
  readonly spec: PodSpec;
  readonly address: string;
  readonly process: PodProcess;
}

/** Ordinals the emulation has addresses for (127.X.Y.1 to .200); the Services take the ones above. */
const ordinalsMax = 200;
const probeIntervalMs = 100;

export interface EmulatedStatefulSetOptions {
  readonly objects: readonly K8sObject[];
  /** The StatefulSet's name (also its headless Service's, which gives the pods' DNS names). */
  readonly name: string;
  /** Logs go here, volumes under volumes/. */
  readonly dir: string;
  readonly reaper: Reaper;
}

export class EmulatedStatefulSet {
  private readonly octets = [1 + Math.floor(Math.random() * 250), 1 + Math.floor(Math.random() * 250)];
  private readonly pods = new Map<number, EmulatedPod>();
  /** The ready endpoints, by ordinal, and each pod's consecutive failed readiness probes. */
  private readonly ready = new Set<number>();
  private readonly failedProbes = new Map<number, number>();
  private readonly services: EmulatedService[] = [];
  private probing = false;
  private prober: Promise<void> | undefined;

  constructor(private readonly o: EmulatedStatefulSetOptions) {
    const ipServices = o.objects.filter((s) => s.kind === "Service" && field(s, "spec", "clusterIP") !== "None");
    ipServices.forEach((service, index) => {
      this.services.push(new EmulatedService(service, `127.${this.octets[0]}.${this.octets[1]}.${201 + index}`, this));
    });
  }

  get name(): string {
    return this.o.name;
  }

  podAddress(ordinal: number): string {
    if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= ordinalsMax) throw new Error(`no address for ordinal ${ordinal}`);
    return `127.${this.octets[0]}.${this.octets[1]}.${ordinal + 1}`;
  }

  /** The emulated cluster IP of a Service. */
  service(name: string): EmulatedService {
    const service = this.services.find((s) => s.name === name);
    if (service === undefined) throw new Error(`no Service ${name} with a cluster IP`);
    return service;
  }

  /** The folder standing for the PersistentVolumeClaim `volume`-NAME-N. */
  volumePath(volume: string, ordinal: number): string {
    return join(this.o.dir, "volumes", `${volume}-${this.o.name}-${ordinal}`);
  }

  /** The pods that exist, in ordinal order. */
  get existing(): EmulatedPod[] {
    return [...this.pods.entries()].sort(([a], [b]) => a - b).map(([, p]) => p);
  }

  /** The pod of `ordinal`; throws when the StatefulSet has none. */
  pod(ordinal: number): EmulatedPod {
    const found = this.pods.get(ordinal);
    if (found === undefined) throw new Error(`no pod ${this.o.name}-${ordinal}`);
    return found;
  }

  /**
   * Creates the pod of `ordinal` from the StatefulSet's template (not started: `pod.process.start()`
   * is the container starting). Its volume is the claim's folder, whatever an earlier pod left there.
   */
  createPod(ordinal: number): EmulatedPod {
    if (this.pods.has(ordinal)) throw new Error(`${this.o.name}-${ordinal} exists already`);
    const spec = podSpec(this.o.objects, this.o.name, ordinal);
    const pod: EmulatedPod = {
      spec,
      address: this.podAddress(ordinal),
      process: new PodProcess({
        name: spec.name,
        command: [process.execPath, join(repoRoot, "bin", "raftkv.js"), "serve", ...spec.args],
        env: this.mapToLoopback(spec),
        cwd: this.o.dir,
        logPath: join(this.o.dir, `${spec.name}.log`),
        reaper: this.o.reaper,
      }),
    };
    this.pods.set(ordinal, pod);
    return pod;
  }

  /**
   * The StatefulSet controller's scaling with podManagementPolicy Parallel: the missing pods below
   * `replicas` are created and started at once; the pods at or above it are deleted at once (SIGTERM,
   * SIGKILL after the grace period; a container that already exited is just removed). Volumes stay.
   */
  async scale(replicas: number): Promise<{ created: EmulatedPod[]; deleted: Array<{ pod: EmulatedPod; exit: PodExit | undefined }> }> {
    const created: EmulatedPod[] = [];
    for (let ordinal = 0; ordinal < replicas; ordinal++) {
      if (!this.pods.has(ordinal)) created.push(this.createPod(ordinal));
    }
    for (const p of created) p.process.start();
    const doomed = [...this.pods.keys()].filter((ordinal) => ordinal >= replicas);
    const deleted = await Promise.all(doomed.map(async (ordinal) => ({ pod: this.pod(ordinal), exit: await this.deletePod(ordinal) })));
    return { created, deleted };
  }

  /** Deletes a pod: out of the endpoints at once, then stopped as the kubelet stops it. Its volume stays. */
  async deletePod(ordinal: number): Promise<PodExit | undefined> {
    const pod = this.pod(ordinal);
    this.ready.delete(ordinal);
    this.pods.delete(ordinal);
    this.failedProbes.delete(ordinal);
    if (!pod.process.running) return undefined;
    return pod.process.terminate(pod.spec.terminationGracePeriodSeconds * 1000);
  }

  url(pod: EmulatedPod, portName: string, path = ""): string {
    const port = pod.spec.ports[portName];
    if (port === undefined) throw new Error(`${pod.spec.name} has no port named ${portName}`);
    return `http://${pod.address}:${port}${path}`;
  }

  /** One readiness probe of the pod, as the kubelet sends it. */
  probeReady(pod: EmulatedPod): Promise<boolean> {
    return probeOk(`http://${pod.address}:${pod.spec.readiness.port}${pod.spec.readiness.path}`);
  }

  /** True when every existing pod answers its readiness probe. */
  async allReady(): Promise<boolean> {
    return (await Promise.all(this.existing.map((p) => this.probeReady(p)))).every(Boolean);
  }

  /** The ordinals of the pods the Services send connections to. */
  readyOrdinals(): number[] {
    return [...this.ready].sort((a, b) => a - b);
  }

  describe(): string {
    return this.existing
      .map((p) => `--- ${p.spec.name} (${p.address}, ${p.process.running ? "running" : "not running"}), log ends:\n${p.process.logTail()}`)
      .join("\n");
  }

  /** Starts the readiness probes that keep the endpoints and the Services' proxies. */
  async start(): Promise<void> {
    await Promise.all(this.services.map((s) => s.listen()));
    this.probing = true;
    this.prober = (async () => {
      while (this.probing) {
        await Promise.all(
          [...this.pods.entries()].map(async ([ordinal, pod]) => {
            const ok = pod.process.running && (await this.probeReady(pod));
            if (this.pods.get(ordinal) !== pod) return;
            if (ok) {
              this.ready.add(ordinal);
              this.failedProbes.set(ordinal, 0);
              return;
            }
            const failed = (this.failedProbes.get(ordinal) ?? 0) + 1;
            this.failedProbes.set(ordinal, failed);
            if (!pod.process.running || failed >= pod.spec.readiness.failureThreshold) this.ready.delete(ordinal);
          }),
        );
        await sleep(probeIntervalMs);
      }
    })();
  }

  /** Stops the probes and the proxies and kills every pod still running. */
  async close(): Promise<void> {
    this.probing = false;
    await this.prober;
    await Promise.all(this.services.map((s) => s.close()));
    await Promise.all(this.existing.filter((p) => p.process.running).map((p) => p.process.kill()));
  }

  /** For exit handlers: SIGKILL every pod without waiting. */
  killNow(): void {
    for (const p of this.pods.values()) p.process.killNow();
  }

  /** The pod's environment with DNS names and listen addresses mapped to loopback, volumes to folders. */
  private mapToLoopback(spec: PodSpec): Record<string, string> {
    const env: Record<string, string> = {};
    const self = this.podAddress(spec.ordinal);
    const set = this.o.name;
    for (const [name, value] of Object.entries(spec.env)) {
      let mapped = value.replace(new RegExp(`\\b${set}-(\\d+)\\.${set}\\b`, "g"), (match, ordinal: string) => {
        if (Number(ordinal) >= ordinalsMax) throw new Error(`${name} names ${match}, beyond the ordinals the emulation maps`);
        return this.podAddress(Number(ordinal));
      });
      for (const service of this.services) {
        // The Service's short name as a URL's or a list's host (its namespace's search domain resolves it).
        mapped = mapped.replace(new RegExp(`(?<=^|//|,)${service.name}(?=[:/,]|$)`, "g"), service.address);
      }
      if (/\.svc\b/.test(mapped)) throw new Error(`${name}: ${value} names a fully qualified Service, which the emulation does not map`);
      mapped = mapped.replace(/^0\.0\.0\.0:/, `${self}:`);
      for (const [volume, mountPath] of Object.entries(spec.mounts)) {
        if (mapped === mountPath || mapped.startsWith(`${mountPath}/`))
          mapped = this.volumePath(volume, spec.ordinal) + mapped.slice(mountPath.length);
      }
      env[name] = mapped;
    }
    return env;
  }
}

/**
 * A Service with a cluster IP, emulated by a TCP proxy per port on its own loopback address: what
 * kube-proxy does with a connection to the cluster IP (one ready endpoint per connection, at random;
 * refused while there is none). A connection stays with its endpoint until either side closes it.
 */
export class EmulatedService {
  readonly name: string;
  private readonly ports: Array<{ name: string; port: number; targetPort: number | string }>;
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();

  constructor(
    service: K8sObject,
    readonly address: string,
    private readonly set: EmulatedStatefulSet,
  ) {
    this.name = service.metadata.name;
    this.ports = listField(service, "spec", "ports").map((p) => {
      const port = field(p, "port");
      const targetPort = field(p, "targetPort") ?? port;
      if (typeof port !== "number" || (typeof targetPort !== "number" && typeof targetPort !== "string"))
        throw new Error(`Service ${this.name}: a port without a number`);
      return { name: String(field(p, "name") ?? port), port, targetPort };
    });
  }

  /** The Service's URL for one of its ports, as a client in the cluster would write it, mapped. */
  url(portName: string): string {
    const port = this.ports.find((p) => p.name === portName);
    if (port === undefined) throw new Error(`Service ${this.name} has no port ${portName}`);
    return `http://${this.address}:${port.port}`;
  }

  async listen(): Promise<void> {
    for (const port of this.ports) {
      const server = createServer((socket) => this.forward(socket, port.targetPort));
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port.port, this.address, () => resolve());
      });
      this.servers.push(server);
    }
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(this.servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }

  private forward(client: Socket, targetPort: number | string): void {
    this.sockets.add(client);
    client.once("close", () => this.sockets.delete(client));
    const endpoints = this.set.readyOrdinals();
    const ordinal = endpoints[Math.floor(Math.random() * endpoints.length)];
    if (ordinal === undefined) {
      client.resetAndDestroy();
      return;
    }
    const pod = this.set.pod(ordinal);
    const port = typeof targetPort === "number" ? targetPort : pod.spec.ports[targetPort];
    if (port === undefined) throw new Error(`Service ${this.name}: pod ${pod.spec.name} has no port ${targetPort}`);
    const backend = connect({ host: pod.address, port });
    this.sockets.add(backend);
    backend.once("close", () => this.sockets.delete(backend));
    client.on("error", () => backend.destroy());
    backend.on("error", () => client.resetAndDestroy());
    client.pipe(backend);
    backend.pipe(client);
  }
}
