import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Service } from "kubernetes-models/v1/Service";
import { describe, expect, it } from "vitest";
import { parseInitialCluster, resolveServeArgs, type InitialMember, type ServerConfig } from "../../src/config/index.js";
import { findObject, objectKey, overlays, renderOverlay, renderWithKubectl, type K8sObject } from "./kustomize.js";
import { expandVariables, field, listField, podSpec, raftkvContainer, replicasOf, type PodSpec } from "./pod-spec.js";

/**
 * The kustomizations rendered offline, every object validated against the Kubernetes API schemas
 * (kubernetes-models, pinned by package-lock.json; the Prometheus Operator CRDs from
 * @kubernetes-models/prometheus-operator), and what the deployment relies on checked field by field.
 * The schemas accept unknown fields, as Kubernetes' own OpenAPI schemas do, so the fields that matter
 * are asserted below by name: a misspelt one fails here.
 */

/**
 * Validates with a model of kubernetes-models. The YAML is untyped until validated, which is the point
 * of the check, hence the cast.
 */
function validator<D>(Model: new (data: D) => { validate(): void }): (object: K8sObject) => void {
  return (object) => new Model(object as unknown as D).validate();
}

/** One validator per kind the manifests use; any other kind fails the test rather than pass unchecked. */
const validators: Readonly<Record<string, (object: K8sObject) => void>> = {
  "v1/ConfigMap": validator(ConfigMap),
  "v1/Service": validator(Service),
  "apps/v1/StatefulSet": validator(StatefulSet),
  "policy/v1/PodDisruptionBudget": validator(PodDisruptionBudget),
  "monitoring.coreos.com/v1/ServiceMonitor": validator(ServiceMonitor),
  "monitoring.coreos.com/v1/PrometheusRule": validator(PrometheusRule),
};

const byKey = (objects: readonly K8sObject[]): Map<string, K8sObject> => new Map(objects.map((o) => [objectKey(o), o]));

/** RAFTKV_INITIAL_CLUSTER of the rendered ConfigMap, parsed. */
function foundingMembers(objects: readonly K8sObject[]): readonly InitialMember[] {
  const text = field(findObject(objects, "ConfigMap", "raftkv-config"), "data", "RAFTKV_INITIAL_CLUSTER");
  const members = parseInitialCluster(typeof text === "string" ? text : "");
  if ("error" in members) throw new Error(members.error);
  return members;
}

/** What `raftkv serve` makes of the pod's arguments and environment. */
function serveConfig(pod: PodSpec): ServerConfig {
  const resolved = resolveServeArgs(pod.args, pod.env);
  if (resolved.kind !== "config") throw new Error("raftkv serve --help");
  return resolved.config;
}

/** The pods' RAFTKV_JOIN: one URL, the same for every pod. */
function joinUrl(objects: readonly K8sObject[]): string {
  const join = podSpec(objects, "raftkv", 0).env.RAFTKV_JOIN;
  if (join === undefined) throw new Error("the pods have no RAFTKV_JOIN");
  expect(join.split(",")).toHaveLength(1);
  return join;
}

describe.each(overlays)("k8s/overlays/%s", (overlay) => {
  const objects = renderOverlay(overlay);
  const expectedReplicas = Number(overlay.split("-")[0]);

  it("renders the same objects as kubectl kustomize, where kubectl is installed", () => {
    const fromKubectl = renderWithKubectl(`k8s/overlays/${overlay}`);
    if (fromKubectl === undefined) {
      console.log("k8s: kubectl is not installed; the manifests are rendered by test/k8s/kustomize.ts only");
      return;
    }
    const ours = byKey(objects);
    const theirs = byKey(fromKubectl);
    expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    for (const [key, object] of ours) expect(object, key).toEqual(theirs.get(key));
  });

  it("validates every object against the pinned Kubernetes and Prometheus Operator schemas", () => {
    expect(objects.map(objectKey).sort()).toEqual(
      [
        "ConfigMap/raftkv-config",
        "PodDisruptionBudget/raftkv",
        "PrometheusRule/raftkv",
        "Service/raftkv",
        "Service/raftkv-client",
        "ServiceMonitor/raftkv",
        "StatefulSet/raftkv",
      ].sort(),
    );
    for (const object of objects) {
      const validate = validators[`${object.apiVersion}/${object.kind}`];
      expect(validate, `a validator for ${object.apiVersion} ${object.kind}`).toBeDefined();
      expect(() => validate?.(object), objectKey(object)).not.toThrow();
    }
  });

  it("is caught by the validation when a field has the wrong type", () => {
    const broken = structuredClone(findObject(objects, "StatefulSet", "raftkv"));
    const spec = broken.spec as { replicas: unknown };
    spec.replicas = "three";
    expect(() => validators["apps/v1/StatefulSet"]?.(broken)).toThrow(/replicas must be integer/);
  });

  it("lists the founding pods in RAFTKV_INITIAL_CLUSTER: the first ordinals, at the headless Service's DNS names", () => {
    const statefulSet = findObject(objects, "StatefulSet", "raftkv");
    // The overlay starts the cluster with exactly its founding members; scaling changes the replicas only.
    expect(replicasOf(objects, "raftkv")).toBe(expectedReplicas);
    const members = foundingMembers(objects);
    const service = field(statefulSet, "spec", "serviceName");
    expect(members.map((m) => [m.id, m.name, m.peerUrl, m.clientUrl])).toEqual(
      Array.from({ length: expectedReplicas }, (_, ordinal) => [
        ordinal + 1,
        `raftkv-${ordinal}`,
        `http://raftkv-${ordinal}.${String(service)}:2380`,
        `http://raftkv-${ordinal}.${String(service)}:2379`,
      ]),
    );
  });

  it("gives every founding pod its identity: raftkv serve resolves the pod's environment to id ordinal + 1 and its own URLs", () => {
    for (let ordinal = 0; ordinal < expectedReplicas; ordinal++) {
      const pod = podSpec(objects, "raftkv", ordinal);
      const config = serveConfig(pod);
      expect(config.id).toBe(ordinal + 1);
      expect(config.name).toBe(`raftkv-${ordinal}`);
      // Its own DNS name ($(RAFTKV_NAME) expanded), which is also its RAFTKV_INITIAL_CLUSTER entry.
      expect(config.advertisePeerUrl).toBe(`http://raftkv-${ordinal}.raftkv:2380`);
      expect(config.advertiseClientUrl).toBe(`http://raftkv-${ordinal}.raftkv:2379`);
      expect(config.listenClient).toEqual({ host: "0.0.0.0", port: pod.ports.client });
      expect(config.listenPeer).toEqual({ host: "0.0.0.0", port: pod.ports.peer });
      expect(config.initialCluster).toHaveLength(expectedReplicas);
      expect(config.join).toEqual([joinUrl(objects)]);
      // The data directory lives on the PersistentVolumeClaim's mount.
      const mount = pod.mounts.data;
      expect(mount).toBeDefined();
      expect(config.dataDir.startsWith(`${mount ?? ""}/`)).toBe(true);
      // The kubelet's SIGKILL comes after the node's own shutdown budget.
      expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.shutdownTimeoutMs + 5_000);
    }
  });

  it("takes more replicas than founding members: a pod above them advertises its own DNS name and joins through the client Service", () => {
    const scaled = structuredClone(objects);
    const spec = findObject(scaled, "StatefulSet", "raftkv").spec as { replicas: number };
    spec.replicas = expectedReplicas + 2;
    expect(() => validators["apps/v1/StatefulSet"]?.(findObject(scaled, "StatefulSet", "raftkv"))).not.toThrow();
    const founders = foundingMembers(scaled);
    for (let ordinal = expectedReplicas; ordinal < spec.replicas; ordinal++) {
      const pod = podSpec(scaled, "raftkv", ordinal);
      const config = serveConfig(pod);
      expect(config.name).toBe(`raftkv-${ordinal}`);
      expect(config.advertisePeerUrl).toBe(`http://raftkv-${ordinal}.raftkv:2380`);
      expect(config.advertiseClientUrl).toBe(`http://raftkv-${ordinal}.raftkv:2379`);
      expect(config.join).toEqual([joinUrl(scaled)]);
      // No founding member: it never bootstraps a cluster of its own, it joins (the cluster picks its id).
      expect(founders.map((m) => m.peerUrl)).not.toContain(config.advertisePeerUrl);
      expect(founders.map((m) => m.name)).not.toContain(config.name);
      expect(config.initialCluster.map((m) => m.peerUrl)).toEqual([config.advertisePeerUrl]);
    }
  });

  it("joins through the client Service: ready pods only, on the pods' client port", () => {
    const statefulSet = findObject(objects, "StatefulSet", "raftkv");
    const url = new URL(joinUrl(objects));
    const service = findObject(objects, "Service", url.hostname);
    // Not the headless Service, which lists pods that are not ready (a joining pod would ask one of them).
    expect(field(service, "spec", "clusterIP")).not.toBe("None");
    expect(field(service, "spec", "publishNotReadyAddresses")).toBeUndefined();
    expect(field(statefulSet, "spec", "template", "metadata", "labels")).toMatchObject(field(service, "spec", "selector") as object);
    const port = listField(service, "spec", "ports").find((p) => field(p, "port") === Number(url.port));
    expect(port, `a port ${url.port} on Service ${url.hostname}`).toBeDefined();
    const pod = podSpec(objects, "raftkv", 0);
    const targetPort = field(port, "targetPort");
    expect(typeof targetPort === "number" ? targetPort : pod.ports[String(targetPort)]).toBe(pod.ports.client);
  });

  it("has the StatefulSet the deployment relies on", () => {
    const statefulSet = findObject(objects, "StatefulSet", "raftkv");
    const spec = field(statefulSet, "spec");
    const podTemplate = field(spec, "template", "spec");
    const container = raftkvContainer(statefulSet);
    expect(field(spec, "podManagementPolicy")).toBe("Parallel");
    expect(field(spec, "updateStrategy", "type")).toBe("RollingUpdate");
    expect(field(spec, "persistentVolumeClaimRetentionPolicy")).toEqual({ whenDeleted: "Retain", whenScaled: "Retain" });
    expect(listField(spec, "volumeClaimTemplates").map((t) => field(t, "metadata", "name"))).toEqual(["data"]);
    const pod = podSpec(objects, "raftkv", 0);
    expect(pod.readiness.path).toBe("/readyz");
    expect(pod.liveness.path).toBe("/healthz");
    expect(pod.startup.path).toBe("/healthz");
    expect(pod.readiness.port).toBe(pod.ports.client);
    // The startup probe must outlast a new cluster's bootstrap wait and a long WAL replay.
    expect(pod.startup.periodSeconds * pod.startup.failureThreshold).toBeGreaterThanOrEqual(120);
    for (const kind of ["requests", "limits"]) {
      expect(field(container, "resources", kind, "cpu"), kind).toBeTypeOf("string");
      expect(field(container, "resources", kind, "memory"), kind).toBeTypeOf("string");
    }
    expect(field(podTemplate, "securityContext", "runAsNonRoot")).toBe(true);
    expect(field(podTemplate, "securityContext", "runAsUser")).toBe(10001);
    expect(field(container, "securityContext", "readOnlyRootFilesystem")).toBe(true);
    expect(field(container, "securityContext", "allowPrivilegeEscalation")).toBe(false);
    expect(field(container, "securityContext", "capabilities", "drop")).toEqual(["ALL"]);
    const antiAffinity = listField(podTemplate, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution");
    expect(antiAffinity.map((term) => field(term, "topologyKey"))).toEqual(["kubernetes.io/hostname"]);
    expect(listField(podTemplate, "topologySpreadConstraints").map((c) => field(c, "topologyKey"))).toEqual([
      "topology.kubernetes.io/zone",
    ]);
    // Every selector in the manifests selects the pods.
    const podLabels = field(spec, "template", "metadata", "labels");
    for (const selector of [field(spec, "selector", "matchLabels"), field(antiAffinity[0], "labelSelector", "matchLabels")]) {
      expect(podLabels).toMatchObject(selector as object);
    }
  });

  it("has a headless peer Service that publishes pods before they are ready, a client Service, a PDB and monitoring", () => {
    const statefulSet = findObject(objects, "StatefulSet", "raftkv");
    const podLabels = field(statefulSet, "spec", "template", "metadata", "labels") as object;
    const peers = findObject(objects, "Service", String(field(statefulSet, "spec", "serviceName")));
    expect(field(peers, "spec", "clusterIP")).toBe("None");
    expect(field(peers, "spec", "publishNotReadyAddresses")).toBe(true);
    expect(podLabels).toMatchObject(field(peers, "spec", "selector") as object);
    const client = findObject(objects, "Service", "raftkv-client");
    expect(field(client, "spec", "publishNotReadyAddresses")).toBeUndefined();
    expect(podLabels).toMatchObject(field(client, "spec", "selector") as object);
    const pdb = findObject(objects, "PodDisruptionBudget", "raftkv");
    expect(field(pdb, "spec", "maxUnavailable")).toBe(1);
    expect(podLabels).toMatchObject(field(pdb, "spec", "selector", "matchLabels") as object);
    // Prometheus scrapes through the headless Service, so nodes without a leader are scraped too.
    const monitor = findObject(objects, "ServiceMonitor", "raftkv");
    expect(peers.metadata.labels).toMatchObject(field(monitor, "spec", "selector", "matchLabels") as object);
    const scrapedPorts = listField(monitor, "spec", "endpoints").map((e) => field(e, "port"));
    expect(scrapedPorts).toEqual(["client"]);
    expect(listField(peers, "spec", "ports").map((p) => field(p, "name"))).toContain("client");
    const alerts = listField(findObject(objects, "PrometheusRule", "raftkv"), "spec", "groups").flatMap((g) =>
      listField(g, "rules").map((r) => field(r, "alert")),
    );
    expect(alerts).toEqual(
      expect.arrayContaining([
        "RaftkvNoLeader",
        "RaftkvFrequentLeaderChanges",
        "RaftkvFsyncSlow",
        "RaftkvFollowerLagging",
        "RaftkvProposalsFailing",
        "RaftkvDiskFilling",
      ]),
    );
  });
});

describe("test/k8s/pod-spec.ts: Kubernetes' $(VAR) expansion", () => {
  it("expands defined variables, keeps undefined ones as written, and reads $$ as $", () => {
    const variables = { NAME: "raftkv-3", EMPTY: "" };
    expect(expandVariables("http://$(NAME).raftkv:2380", variables)).toBe("http://raftkv-3.raftkv:2380");
    expect(expandVariables("$(EMPTY)x$(MISSING)", variables)).toBe("x$(MISSING)");
    expect(expandVariables("$$(NAME) $$ $x $(NAME", variables)).toBe("$(NAME) $ $x $(NAME");
  });

  it("resolves an env value from the variables defined before it only", () => {
    const objects = structuredClone(renderOverlay("3-replicas"));
    const env = field(raftkvContainer(findObject(objects, "StatefulSet", "raftkv")), "env") as Array<Record<string, unknown>>;
    env.unshift({ name: "EARLY", value: "$(RAFTKV_NAME)/$(RAFTKV_CLUSTER_ID)" });
    const pod = podSpec(objects, "raftkv", 1);
    // RAFTKV_NAME comes later in env; RAFTKV_CLUSTER_ID comes from envFrom, which precedes env.
    expect(pod.env.EARLY).toBe("$(RAFTKV_NAME)/raftkv");
    expect(pod.env.RAFTKV_ADVERTISE_PEER_URL).toBe("http://raftkv-1.raftkv:2380");
  });
});
