import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { RESOURCE_TYPES } from './resources.ts';
import type { ObjectStore } from './store.ts';

const DEBOUNCE_MS = 200;

/** Restores the store from `file` when it exists; a file that cannot be read is an error, not an empty cluster. */
export function loadSnapshot(store: ObjectStore, file: string): boolean {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  let data: ReturnType<ObjectStore['dump']>;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(
      `kube simulator snapshot ${file} is not valid JSON (${(e as Error).message}); fix or delete it`,
    );
  }
  const entries = data.objects.flatMap((o) => {
    const type = RESOURCE_TYPES.find((t) => t.group === o.group && t.plural === o.plural);
    return type ? [{ type, object: o.object }] : [];
  });
  store.load(data.resourceVersion, entries);
  return true;
}

/** Writes the store to `file` shortly after each change, through a temporary file and rename so a crash never leaves half a file. */
export function persistSnapshots(store: ObjectStore, file: string): { flush(): void } {
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(store.dump()));
    renameSync(tmp, file);
  };
  store.onChange = () => {
    timer ??= setTimeout(flush, DEBOUNCE_MS);
  };
  return {
    flush: () => {
      if (timer) flush();
    },
  };
}
