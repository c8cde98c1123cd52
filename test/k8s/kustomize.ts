import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, parseAllDocuments } from "yaml";

/**
 * A renderer for the part of kustomize that k8s/ uses, so that the manifests can be rendered and tested
 * where neither kustomize nor kubectl is installed (kubectl is not in Debian's archive). It supports
 * exactly these Kustomization fields and refuses any other, so k8s/ cannot start relying on a feature it
 * would silently ignore:
 *
 * - `resources`: YAML files (one or more documents each) and directories holding a kustomization.yaml;
 * - `replicas`: `{ name, count }`, applied to the StatefulSet or Deployment of that name;
 * - `patches`: inline JSON 6902 patches (`add`, `replace`, `remove`) with a `target` of kind and name.
 *
 * Where kubectl is installed, test/k8s/manifests.test.ts also renders with `kubectl kustomize` and checks
 * that both give the same objects.
 */
export const repoRoot = resolve(fileURLToPath(import.meta.url), "..", "..", "..");
export const k8sDir = join(repoRoot, "k8s");

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A rendered Kubernetes object. */
export interface K8sObject extends JsonObject {
  apiVersion: string;
  kind: string;
  metadata: JsonObject & { name: string };
}

const supportedFields = new Set(["apiVersion", "kind", "resources", "replicas", "patches"]);

export function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function asK8sObject(value: unknown, where: string): K8sObject {
  const object = value as Json;
  if (!isObject(object) || typeof object.apiVersion !== "string" || typeof object.kind !== "string") {
    throw new Error(`${where}: not a Kubernetes object (apiVersion and kind are required)`);
  }
  const metadata = object.metadata;
  if (!isObject(metadata) || typeof metadata.name !== "string") throw new Error(`${where}: ${object.kind} without metadata.name`);
  return object as K8sObject;
}

function readYamlObjects(path: string): K8sObject[] {
  return parseAllDocuments(readFileSync(path, "utf8"))
    .filter((document) => document.contents !== null)
    .map((document, index) => {
      if (document.errors.length > 0) throw new Error(`${path}: ${document.errors.map((e) => e.message).join("; ")}`);
      return asK8sObject(document.toJSON(), `${path} document ${index + 1}`);
    });
}

/** Renders the kustomization in `dir` into its objects, in resource order. */
export function renderKustomization(dir: string): K8sObject[] {
  const file = join(dir, "kustomization.yaml");
  const kustomization = parse(readFileSync(file, "utf8")) as Json;
  if (!isObject(kustomization)) throw new Error(`${file}: not a mapping`);
  for (const field of Object.keys(kustomization)) {
    if (!supportedFields.has(field)) throw new Error(`${file}: field ${field} is not supported by test/k8s/kustomize.ts; teach it there`);
  }
  const objects: K8sObject[] = [];
  for (const resource of arrayField(kustomization, "resources", file)) {
    if (typeof resource !== "string") throw new Error(`${file}: resources must be paths`);
    const path = resolve(dir, resource);
    if (!existsSync(path)) throw new Error(`${file}: resource ${resource} does not exist`);
    objects.push(...(statSync(path).isDirectory() ? renderKustomization(path) : readYamlObjects(path)));
  }
  const seen = new Set<string>();
  for (const object of objects) {
    const key = objectKey(object);
    if (seen.has(key)) throw new Error(`${file}: ${key} is defined twice`);
    seen.add(key);
  }
  for (const replica of arrayField(kustomization, "replicas", file)) applyReplicas(objects, replica, file);
  for (const patch of arrayField(kustomization, "patches", file)) applyPatch(objects, patch, file);
  return objects;
}

export function objectKey(object: K8sObject): string {
  return `${object.kind}/${object.metadata.name}`;
}

/** The one object of `kind` named `name`; throws when there is none. */
export function findObject(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (found === undefined) throw new Error(`no ${kind}/${name} among ${objects.map(objectKey).join(", ")}`);
  return found;
}

function arrayField(object: JsonObject, field: string, file: string): Json[] {
  const value = object[field];
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Error(`${file}: ${field} must be a list`);
  return value;
}

function applyReplicas(objects: K8sObject[], replica: Json, file: string): void {
  if (!isObject(replica) || typeof replica.name !== "string" || typeof replica.count !== "number") {
    throw new Error(`${file}: replicas entries need a name and a count`);
  }
  const targets = objects.filter((o) => (o.kind === "StatefulSet" || o.kind === "Deployment") && o.metadata.name === replica.name);
  if (targets.length === 0) throw new Error(`${file}: replicas names ${replica.name}, which is no StatefulSet or Deployment`);
  for (const target of targets) {
    const spec = target.spec;
    if (!isObject(spec)) throw new Error(`${file}: ${objectKey(target)} has no spec`);
    spec.replicas = replica.count;
  }
}

function applyPatch(objects: K8sObject[], patch: Json, file: string): void {
  if (!isObject(patch) || !isObject(patch.target) || typeof patch.patch !== "string") {
    throw new Error(`${file}: patches entries need a target and an inline patch`);
  }
  const { kind, name, ...other } = patch.target;
  if (Object.keys(other).length > 0 || typeof kind !== "string" || typeof name !== "string") {
    throw new Error(`${file}: a patch target must be exactly a kind and a name`);
  }
  const target = findObject(objects, kind, name);
  const operations = parse(patch.patch) as Json;
  if (!Array.isArray(operations)) throw new Error(`${file}: only JSON 6902 patches (a list of operations) are supported`);
  for (const operation of operations) applyOperation(target, operation, file);
}

/** One JSON 6902 operation (RFC 6902) with a JSON pointer path (RFC 6901). */
function applyOperation(target: K8sObject, operation: Json, file: string): void {
  if (!isObject(operation) || typeof operation.op !== "string" || typeof operation.path !== "string") {
    throw new Error(`${file}: a patch operation needs op and path`);
  }
  const tokens = operation.path
    .split("/")
    .slice(1)
    .map((token) => token.replace(/~1/g, "/").replace(/~0/g, "~"));
  const last = tokens.pop();
  if (last === undefined) throw new Error(`${file}: cannot patch the whole object`);
  let parent: Json = target;
  for (const token of tokens) {
    const next: Json | undefined = Array.isArray(parent) ? parent[Number(token)] : isObject(parent) ? parent[token] : undefined;
    if (next === undefined) throw new Error(`${file}: ${operation.path} does not exist in ${objectKey(target)}`);
    parent = next;
  }
  const value = operation.value;
  if (Array.isArray(parent)) {
    const index = last === "-" ? parent.length : Number(last);
    if (!Number.isInteger(index) || index < 0 || index > parent.length) throw new Error(`${file}: bad index in ${operation.path}`);
    if (operation.op === "add" && value !== undefined) parent.splice(index, 0, value);
    else if (operation.op === "replace" && value !== undefined && index < parent.length) parent[index] = value;
    else if (operation.op === "remove" && index < parent.length) parent.splice(index, 1);
    else throw new Error(`${file}: cannot ${operation.op} ${operation.path}`);
    return;
  }
  if (!isObject(parent)) throw new Error(`${file}: ${operation.path} does not exist in ${objectKey(target)}`);
  if (operation.op === "add" && value !== undefined) parent[last] = value;
  else if (operation.op === "replace" && value !== undefined && last in parent) parent[last] = value;
  else if (operation.op === "remove" && last in parent) delete parent[last];
  else throw new Error(`${file}: cannot ${operation.op} ${operation.path} in ${objectKey(target)}`);
}

/** `kubectl kustomize DIR` parsed into objects, or undefined when kubectl is not installed. */
export function renderWithKubectl(dir: string): K8sObject[] | undefined {
  let text: string;
  try {
    text = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  return parseAllDocuments(text)
    .filter((document) => document.contents !== null)
    .map((document, index) => asK8sObject(document.toJSON(), `kubectl kustomize ${dir} document ${index + 1}`));
}

/** The overlays under k8s/overlays, by name. */
export const overlays = ["3-replicas", "5-replicas"] as const;

export function renderOverlay(overlay: (typeof overlays)[number]): K8sObject[] {
  return renderKustomization(join(k8sDir, "overlays", overlay));
}
