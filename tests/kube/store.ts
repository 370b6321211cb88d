// The object store of the stand-in: one cluster-wide monotonic
// resourceVersion counter, objects keyed by resource/namespace/name, a bounded
// event history for watches from a resourceVersion, and synchronous fan-out of
// every change to subscribers (so a watch never misses or reorders an event).
import { randomUUID } from 'node:crypto';
import { alreadyExists, badRequest, conflict, invalid, notFound } from './status.ts';
import { apiVersionOf, RESOURCES, type ResourceDef } from './resources.ts';
import { metadataCauses } from './validation.ts';

export type KubeObject = Record<string, unknown> & { metadata: Record<string, unknown> };

export interface StoreEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resourceVersion: number;
  def: ResourceDef;
  object: KubeObject;
  /** The object before a MODIFIED change, for selector transitions in watches. */
  previous?: KubeObject;
}

/** How an update treats `status`: the main resource keeps the old one, /status only changes it. */
export type UpdateMode = 'main' | 'status' | 'all';

/** An update's new object (as sent) and how it treats `status`. */
export interface ObjectUpdate {
  input: unknown;
  mode: UpdateMode;
}

export interface Store {
  currentResourceVersion(): number;
  /** Events with resourceVersion > `after`, or 'expired' when some of them have left the history. */
  eventsSince(after: number): StoreEvent[] | 'expired';
  /** The oldest resourceVersion a watch can still start from. */
  oldestResourceVersion(): number;
  get(def: ResourceDef, namespace: string, name: string): KubeObject | undefined;
  /** Sorted by namespace then name; namespace '' means all namespaces. */
  list(def: ResourceDef, namespace: string): KubeObject[];
  create(def: ResourceDef, namespace: string, input: unknown): KubeObject;
  update(def: ResourceDef, namespace: string, name: string, change: ObjectUpdate): KubeObject;
  delete(def: ResourceDef, namespace: string, name: string, preconditionVersion?: string): KubeObject;
  subscribe(listener: (event: StoreEvent) => void): () => void;
  /** Forgets all history (a fresh watch cache after an API server restart). */
  clearHistory(): void;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function keyOf(def: ResourceDef, namespace: string, name: string): string {
  return `${def.plural}.${def.group}/${namespace}/${name}`;
}

function withoutMetaAndStatus(obj: KubeObject): string {
  const { metadata: _m, status: _s, ...rest } = obj;
  return JSON.stringify(rest);
}

/** A field's value in a message: a string as it is, anything else as JSON. */
function asText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function generatedName(prefix: string): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let suffix = '';
  for (let i = 0; i < 5; i++) suffix += alphabet[Math.floor(Math.random() * alphabet.length)];
  return prefix + suffix;
}

/** The store's state: the counter, the history, the objects, the subscribers. */
interface StoreState {
  readonly historySize: number;
  readonly namespaceDef: ResourceDef;
  resourceVersion: number;
  /** Every event with resourceVersion > compactedVersion is in `history`. */
  compactedVersion: number;
  history: StoreEvent[];
  readonly objects: Map<string, KubeObject>;
  readonly listeners: Set<(event: StoreEvent) => void>;
}

/** An object's place: its resource, namespace and name. */
interface ObjectRef {
  def: ResourceDef;
  namespace: string;
  name: string;
}

function record(state: StoreState, event: Omit<StoreEvent, 'resourceVersion'>, rv: number): void {
  const full: StoreEvent = { ...event, resourceVersion: rv };
  state.history.push(full);
  while (state.history.length > state.historySize) {
    const dropped = state.history.shift();
    if (dropped !== undefined) state.compactedVersion = dropped.resourceVersion;
  }
  for (const listener of [...state.listeners]) listener(full);
}

function checkInput(def: ResourceDef, input: unknown): KubeObject {
  if (!isObject(input)) throw badRequest(`the body of the request is not a ${def.kind} object`);
  const metadata = isObject(input['metadata']) ? input['metadata'] : {};
  const obj = { ...structuredClone(input), metadata: structuredClone(metadata) } as KubeObject;
  const kind = obj['kind'];
  const apiVersion = obj['apiVersion'];
  if ((kind !== undefined && kind !== def.kind) || (apiVersion !== undefined && apiVersion !== apiVersionOf(def))) {
    throw badRequest(
      `the API version in the data (${String(apiVersion)}) does not match the expected API version (${apiVersionOf(def)}) or kind (${def.kind})`,
    );
  }
  obj['apiVersion'] = apiVersionOf(def);
  obj['kind'] = def.kind;
  return obj;
}

function checkNamespace(def: ResourceDef, namespace: string, obj: KubeObject): void {
  const given = obj.metadata['namespace'];
  if (!def.namespaced) {
    delete obj.metadata['namespace'];
    return;
  }
  if (given !== undefined && given !== '' && given !== namespace) {
    throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
  }
  obj.metadata['namespace'] = namespace;
}

function validate(def: ResourceDef, obj: KubeObject): void {
  const causes = metadataCauses(obj.metadata);
  const name = obj.metadata['name'];
  if (causes.length > 0) throw invalid(def.kind, def.group, name === undefined || name === null ? '' : asText(name), causes);
}

function ensureNamespace(state: StoreState, namespace: string): void {
  if (namespace === '' || state.objects.has(keyOf(state.namespaceDef, '', namespace))) return;
  createObject(state, state.namespaceDef, '', { metadata: { name: namespace } });
}

function createObject(state: StoreState, def: ResourceDef, namespace: string, input: unknown): KubeObject {
  if (def.namespaced && namespace === '') throw badRequest('the server could not find the requested resource (namespace required)');
  const obj = checkInput(def, input);
  checkNamespace(def, namespace, obj);
  const generateName = obj.metadata['generateName'];
  if ((obj.metadata['name'] === undefined || obj.metadata['name'] === '') && typeof generateName === 'string' && generateName !== '') {
    obj.metadata['name'] = generatedName(generateName);
  }
  validate(def, obj);
  const name = String(obj.metadata['name']);
  const key = keyOf(def, namespace, name);
  if (state.objects.has(key)) throw alreadyExists(def, name);
  if (def.namespaced) ensureNamespace(state, namespace);
  if (def.kind === 'Namespace' && !isObject(obj['status'])) obj['status'] = { phase: 'Active' };
  if (def.kind === 'Pod' && !isObject(obj['status'])) obj['status'] = { phase: 'Pending' };
  const rv = ++state.resourceVersion;
  Object.assign(obj.metadata, {
    uid: randomUUID(),
    resourceVersion: String(rv),
    generation: 1,
    creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  });
  state.objects.set(key, obj);
  record(state, { type: 'ADDED', def, object: obj }, rv);
  return structuredClone(obj);
}

/** The new object before its metadata is settled: /status changes only the status, the main resource keeps the old one. */
function withStatus(def: ResourceDef, old: KubeObject, given: KubeObject, mode: UpdateMode): KubeObject {
  if (mode === 'status') {
    const next: KubeObject = { ...structuredClone(old) };
    if (given['status'] === undefined) delete next['status'];
    else next['status'] = given['status'];
    return next;
  }
  if (mode === 'main' && def.hasStatus) {
    if (old['status'] === undefined) delete given['status'];
    else given['status'] = structuredClone(old['status']);
  }
  return given;
}

function updateObject(state: StoreState, ref: ObjectRef, change: ObjectUpdate): KubeObject {
  const { def, namespace, name } = ref;
  const key = keyOf(def, def.namespaced ? namespace : '', name);
  const old = state.objects.get(key);
  if (old === undefined) throw notFound(def, name);
  const given = checkInput(def, change.input);
  checkNamespace(def, namespace, given);
  const givenName = given.metadata['name'];
  if (givenName !== undefined && givenName !== name) {
    throw badRequest(`the name of the object (${asText(givenName)}) does not match the name on the URL (${name})`);
  }
  const precondition = given.metadata['resourceVersion'];
  if (precondition !== undefined && precondition !== '' && precondition !== old.metadata['resourceVersion']) throw conflict(def, name);
  const next = withStatus(def, old, given, change.mode);
  next.metadata = {
    ...next.metadata,
    name,
    uid: old.metadata['uid'],
    creationTimestamp: old.metadata['creationTimestamp'],
    generation: old.metadata['generation'],
    resourceVersion: old.metadata['resourceVersion'],
  };
  if (def.namespaced) next.metadata['namespace'] = namespace;
  validate(def, next);
  // A no-op update is not written: same object, same resourceVersion, no event.
  if (JSON.stringify(next) === JSON.stringify(old)) return structuredClone(old);
  if (withoutMetaAndStatus(next) !== withoutMetaAndStatus(old)) next.metadata['generation'] = Number(old.metadata['generation'] ?? 0) + 1;
  const rv = ++state.resourceVersion;
  next.metadata['resourceVersion'] = String(rv);
  state.objects.set(key, next);
  record(state, { type: 'MODIFIED', def, object: next, previous: old }, rv);
  return structuredClone(next);
}

function removeObject(state: StoreState, ref: ObjectRef, preconditionVersion?: string): KubeObject {
  const { def, namespace, name } = ref;
  const key = keyOf(def, def.namespaced ? namespace : '', name);
  const old = state.objects.get(key);
  if (old === undefined) throw notFound(def, name);
  if (preconditionVersion !== undefined && preconditionVersion !== '' && preconditionVersion !== old.metadata['resourceVersion']) {
    throw conflict(def, name);
  }
  if (def.kind === 'Namespace') {
    // Everything in it goes first (the real server does this asynchronously, in phase Terminating).
    for (const [otherKey, obj] of [...state.objects]) {
      const other = RESOURCES.find((r) => otherKey.startsWith(`${r.plural}.${r.group}/${name}/`));
      if (other !== undefined && other.namespaced) removeObject(state, { def: other, namespace: name, name: String(obj.metadata['name']) });
    }
  }
  state.objects.delete(key);
  const rv = ++state.resourceVersion;
  const final: KubeObject = { ...old, metadata: { ...old.metadata, resourceVersion: String(rv) } };
  record(state, { type: 'DELETED', def, object: final, previous: old }, rv);
  return structuredClone(final);
}

export function createStore(historySize: number): Store {
  if (!Number.isInteger(historySize) || historySize < 1) throw new Error(`historySize must be a positive integer, got ${historySize}`);
  const namespaceDef = RESOURCES.find((r) => r.kind === 'Namespace');
  if (namespaceDef === undefined) throw new Error('no Namespace resource');
  const state: StoreState = { historySize, namespaceDef, resourceVersion: 0, compactedVersion: 0, history: [], objects: new Map(), listeners: new Set() };
  const { objects, listeners } = state;

  const store: Store = {
    currentResourceVersion: () => state.resourceVersion,
    oldestResourceVersion: () => state.compactedVersion,
    eventsSince(after) {
      if (after < state.compactedVersion) return 'expired';
      return state.history.filter((e) => e.resourceVersion > after);
    },
    get(def, namespace, name) {
      const obj = objects.get(keyOf(def, def.namespaced ? namespace : '', name));
      return obj === undefined ? undefined : structuredClone(obj);
    },
    list(def, namespace) {
      const prefix = `${def.plural}.${def.group}/${def.namespaced && namespace !== '' ? `${namespace}/` : ''}`;
      return [...objects.entries()]
        .filter(([key]) => key.startsWith(prefix))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([, obj]) => structuredClone(obj));
    },
    create: (def, namespace, input) => createObject(state, def, namespace, input),
    update: (def, namespace, name, change) => updateObject(state, { def, namespace, name }, change),
    delete: (def, namespace, name, preconditionVersion) => removeObject(state, { def, namespace, name }, preconditionVersion),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    clearHistory() {
      state.history = [];
      state.compactedVersion = state.resourceVersion;
    },
  };
  for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) store.create(namespaceDef, '', { metadata: { name } });
  return store;
}
