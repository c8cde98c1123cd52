import { findObject, isObject, type Json, type JsonObject, type K8sObject } from "./kustomize.js";

/**
 * What the kubelet would give one pod of the rendered StatefulSet: its name, the arguments after the
 * image's entrypoint (`raftkv serve`), its environment, its probes and its volume mounts, resolved the
 * way Kubernetes resolves them (envFrom first, then env, which wins; `fieldRef: metadata.name` is the
 * pod name; ConfigMap references read from the rendered ConfigMap; `$(VAR)` in an env value expanded
 * from the variables defined before it, in args from all of them (expandVariables); HOSTNAME is the pod
 * name).
 */
export interface PodSpec {
  readonly name: string;
  readonly ordinal: number;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Container port numbers by port name. */
  readonly ports: Readonly<Record<string, number>>;
  readonly readiness: Probe;
  readonly liveness: Probe;
  readonly startup: Probe;
  /** Volume name to mount path. */
  readonly mounts: Readonly<Record<string, string>>;
  readonly terminationGracePeriodSeconds: number;
}

export interface Probe {
  readonly path: string;
  readonly port: number;
  readonly periodSeconds: number;
  readonly failureThreshold: number;
}

export function field(object: Json | undefined, ...path: string[]): Json | undefined {
  let current = object;
  for (const key of path) current = isObject(current) ? current[key] : undefined;
  return current;
}

export function objectField(object: Json | undefined, ...path: string[]): JsonObject {
  const value = field(object, ...path);
  if (!isObject(value)) throw new Error(`${path.join(".")} is not an object`);
  return value;
}

export function listField(object: Json | undefined, ...path: string[]): Json[] {
  const value = field(object, ...path);
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Error(`${path.join(".")} is not a list`);
  return value;
}

function stringField(object: Json | undefined, ...path: string[]): string {
  const value = field(object, ...path);
  if (typeof value !== "string") throw new Error(`${path.join(".")} is not a string`);
  return value;
}

function numberField(object: Json | undefined, fallback: number, ...path: string[]): number {
  const value = field(object, ...path);
  if (value === undefined) return fallback;
  if (typeof value !== "number") throw new Error(`${path.join(".")} is not a number`);
  return value;
}

/** The raftkv container of the StatefulSet's pod template. */
export function raftkvContainer(statefulSet: K8sObject): JsonObject {
  const container = listField(statefulSet, "spec", "template", "spec", "containers").find((c) => field(c, "name") === "raftkv");
  if (!isObject(container)) throw new Error("the StatefulSet has no container named raftkv");
  return container;
}

export function podSpec(objects: readonly K8sObject[], statefulSetName: string, ordinal: number): PodSpec {
  const statefulSet = findObject(objects, "StatefulSet", statefulSetName);
  const container = raftkvContainer(statefulSet);
  const name = `${statefulSet.metadata.name}-${ordinal}`;
  if (field(container, "command") !== undefined)
    throw new Error("the container overrides the image's entrypoint; the emulation runs `raftkv serve`");
  const rawArgs = listField(container, "args").map((a) => {
    if (typeof a !== "string") throw new Error("container args must be strings");
    return a;
  });
  const configMap = (configMapName: string): JsonObject => objectField(findObject(objects, "ConfigMap", configMapName), "data");

  // The container's declared variables, which $(VAR) may name. HOSTNAME is the runtime's, not one of them.
  const env: Record<string, string> = {};
  for (const source of listField(container, "envFrom")) {
    const data = configMap(stringField(source, "configMapRef", "name"));
    for (const [key, value] of Object.entries(data)) {
      if (typeof value !== "string") throw new Error(`ConfigMap value ${key} is not a string`);
      env[key] = value;
    }
  }
  for (const variable of listField(container, "env")) {
    const variableName = stringField(variable, "name");
    const value = field(variable, "value");
    if (typeof value === "string") {
      env[variableName] = expandVariables(value, env);
    } else if (field(variable, "valueFrom", "fieldRef", "fieldPath") === "metadata.name") {
      env[variableName] = name;
    } else if (field(variable, "valueFrom", "configMapKeyRef") !== undefined) {
      const data = configMap(stringField(variable, "valueFrom", "configMapKeyRef", "name"));
      const keyValue = data[stringField(variable, "valueFrom", "configMapKeyRef", "key")];
      if (typeof keyValue !== "string") throw new Error(`${variableName}: the ConfigMap key is missing`);
      env[variableName] = keyValue;
    } else {
      throw new Error(`${variableName}: a kind of value the emulation does not resolve`);
    }
  }

  const args = rawArgs.map((a) => expandVariables(a, env));

  const ports: Record<string, number> = {};
  for (const port of listField(container, "ports")) ports[stringField(port, "name")] = numberField(port, 0, "containerPort");
  const probe = (kind: string): Probe => {
    const portRef = field(container, kind, "httpGet", "port");
    const port = typeof portRef === "number" ? portRef : ports[typeof portRef === "string" ? portRef : ""];
    if (port === undefined) throw new Error(`${kind}: unknown port ${JSON.stringify(portRef)}`);
    return {
      path: stringField(container, kind, "httpGet", "path"),
      port,
      // Kubernetes' defaults.
      periodSeconds: numberField(container, 10, kind, "periodSeconds"),
      failureThreshold: numberField(container, 3, kind, "failureThreshold"),
    };
  };
  const mounts: Record<string, string> = {};
  for (const mount of listField(container, "volumeMounts")) mounts[stringField(mount, "name")] = stringField(mount, "mountPath");
  return {
    name,
    ordinal,
    args,
    env: { HOSTNAME: name, ...env },
    ports,
    readiness: probe("readinessProbe"),
    liveness: probe("livenessProbe"),
    startup: probe("startupProbe"),
    mounts,
    terminationGracePeriodSeconds: numberField(statefulSet, 30, "spec", "template", "spec", "terminationGracePeriodSeconds"),
  };
}

/**
 * Kubernetes' expansion of variable references in a container's env values, command and args
 * (k8s.io/kubernetes third_party/forked/golang/expansion): `$(NAME)` becomes the variable's value when
 * `variables` defines it and stays as written otherwise, `$$` is a literal `$`, and any other `$` stays.
 */
export function expandVariables(input: string, variables: Readonly<Record<string, string>>): string {
  return input.replace(/\$\$|\$\(([^)]*)\)/g, (match, name: string | undefined) => {
    if (name === undefined) return "$";
    return Object.hasOwn(variables, name) ? (variables[name] ?? match) : match;
  });
}

/** The replica count of the rendered StatefulSet. */
export function replicasOf(objects: readonly K8sObject[], statefulSetName: string): number {
  const replicas = field(findObject(objects, "StatefulSet", statefulSetName), "spec", "replicas");
  if (typeof replicas !== "number") throw new Error("the StatefulSet has no replica count");
  return replicas;
}
