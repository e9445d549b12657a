// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import { randomUUID } from 'node:crypto';
import type { ResourceType } from './resources.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  rv: number;
  type: WatchEventType;
  resourceType: ResourceType;
  /** The object as stored (storage version) after the change; for DELETED, as it was. */
  object: any;
  /** For MODIFIED: the object before, so a filtered watch can tell an object entering or leaving its selection. */
  previous?: any;
}

/** Keeps enough history for a watch that reconnects after a short gap, as etcd does before compaction. */
const DEFAULT_HISTORY = 1000;

function keyOf(t: ResourceType, namespace: string | undefined, name: string): string {
  return `${t.group}/${t.plural}/${namespace ?? ''}/${name}`;
}

/**
 * Objects in memory with one resourceVersion counter for the whole store (as etcd's revision),
 * and a bounded history of changes that watches replay from.
 */
export class ObjectStore {
  private readonly objects = new Map<string, { type: ResourceType; object: any }>();
  private readonly history: StoreEvent[] = [];
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  private rv = 1;
  /** Called after every change (snapshot writing). */
  onChange: () => void = () => {};

  constructor(private readonly historySize = DEFAULT_HISTORY) {}

  get resourceVersion(): number {
    return this.rv;
  }

  /** The lowest resourceVersion a watch may start from; older ones are "too old" (410 Gone). */
  get oldestWatchable(): number {
    const first = this.history[0];
    return first ? first.rv - 1 : this.rv;
  }

  get(t: ResourceType, namespace: string | undefined, name: string): any | undefined {
    return this.objects.get(keyOf(t, namespace, name))?.object;
  }

  /** Every object of a type (in a namespace when given), sorted by namespace and name like etcd keys. */
  list(t: ResourceType, namespace?: string): any[] {
    const prefix =
      namespace === undefined ? `${t.group}/${t.plural}/` : `${t.group}/${t.plural}/${namespace}/`;
    const out: { key: string; object: any }[] = [];
    for (const [key, v] of this.objects) if (key.startsWith(prefix)) out.push({ key, object: v.object });
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out.map((o) => o.object);
  }

  size(): number {
    return this.objects.size;
  }

  /**
   * Stores a new or changed object, stamping resourceVersion, and (on create) uid and
   * creationTimestamp. The caller has already decided generation and validated the object.
   */
  put(t: ResourceType, object: any): any {
    const meta = object.metadata;
    const key = keyOf(t, meta.namespace, meta.name);
    const previous = this.objects.get(key)?.object;
    const existed = previous !== undefined;
    this.rv += 1;
    if (!existed) {
      meta.uid ??= randomUUID();
      meta.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    }
    meta.resourceVersion = String(this.rv);
    this.objects.set(key, { type: t, object });
    this.emit({ rv: this.rv, type: existed ? 'MODIFIED' : 'ADDED', resourceType: t, object, previous });
    return object;
  }

  delete(t: ResourceType, namespace: string | undefined, name: string): any | undefined {
    const key = keyOf(t, namespace, name);
    const found = this.objects.get(key);
    if (!found) return undefined;
    this.objects.delete(key);
    this.rv += 1;
    // A deleted object's last event carries the deletion's resourceVersion, as in a real cluster.
    const object = {
      ...found.object,
      metadata: { ...found.object.metadata, resourceVersion: String(this.rv) },
    };
    this.emit({ rv: this.rv, type: 'DELETED', resourceType: t, object });
    return object;
  }

  /** Changes after `rv` still in history; undefined when `rv` is older than the history holds. */
  eventsSince(rv: number): StoreEvent[] | undefined {
    if (rv < this.oldestWatchable) return undefined;
    return this.history.filter((e) => e.rv > rv);
  }

  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Everything, for a snapshot. */
  dump(): { resourceVersion: number; objects: { group: string; plural: string; object: any }[] } {
    return {
      resourceVersion: this.rv,
      objects: [...this.objects.values()].map((v) => ({
        group: v.type.group,
        plural: v.type.plural,
        object: v.object,
      })),
    };
  }

  /** Restores a snapshot; history starts empty, so watches must start from the restored version or later. */
  load(resourceVersion: number, entries: { type: ResourceType; object: any }[]): void {
    this.objects.clear();
    this.history.length = 0;
    for (const e of entries)
      this.objects.set(keyOf(e.type, e.object.metadata.namespace, e.object.metadata.name), e);
    this.rv = Math.max(resourceVersion, this.rv);
  }

  private emit(e: StoreEvent): void {
    this.history.push(e);
    if (this.history.length > this.historySize)
      this.history.splice(0, this.history.length - this.historySize);
    for (const fn of this.listeners) fn(e);
    this.onChange();
  }
}
