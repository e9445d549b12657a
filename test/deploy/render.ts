// biome-ignore-all lint/suspicious/noExplicitAny: rendered manifests are arbitrary YAML; the tests check their shape.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const ROOT = join(import.meta.dirname, '..', '..');

/** `kubectl kustomize <dir>` (dir relative to the repository): the YAML and its objects. */
export function kustomize(dir: string): { yaml: string; objects: any[] } {
  const r = spawnSync('kubectl', ['kustomize', join(ROOT, dir)], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.stderr || r.error?.message}`);
  const objects = parseAllDocuments(r.stdout)
    .map((d) => d.toJS())
    .filter(Boolean);
  return { yaml: r.stdout, objects };
}

export function find(objects: any[], kind: string, name: string): any {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in the rendered manifests`);
  return o;
}
