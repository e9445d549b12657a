import { z } from 'zod';
import type { Redis } from '../redis.ts';
import { RolloutError } from './errors.ts';

/** A named template: any part of a rollout spec, merged under the request's own fields. */
export const TemplateBodySchema = z.record(z.string(), z.unknown());
export type TemplateBody = z.infer<typeof TemplateBodySchema>;

/** A template's name: lower-case letters, digits and -, at most 100. */
export const TEMPLATE_NAME = /^(?=.{1,100}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const TemplateNameSchema = z
  .string()
  .regex(TEMPLATE_NAME, 'lower-case letters, digits and -, at most 100');

export interface Template {
  name: string;
  spec: TemplateBody;
  /** config: from the YAML config file (read-only); api: managed through the API. */
  source: 'config' | 'api';
  updatedAt?: number;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge where `over` wins; arrays and scalars are replaced, not merged. */
export function mergeUnder(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? mergeUnder(b, v) : v;
  }
  return out;
}

/** Templates from the config file (fixed at start) and from the API (in Redis). */
export class TemplateStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly fromConfig: Record<string, TemplateBody> = {},
  ) {}

  private get key() {
    return `${this.prefix}:r:templates`;
  }

  async get(name: string): Promise<Template | undefined> {
    const cfg = this.fromConfig[name];
    if (cfg) return { name, spec: cfg, source: 'config' };
    const raw = await this.redis.hget(this.key, name);
    if (!raw) return undefined;
    const { spec, updatedAt } = JSON.parse(raw) as { spec: TemplateBody; updatedAt: number };
    return { name, spec, source: 'api', updatedAt };
  }

  async list(): Promise<Template[]> {
    const all = await this.redis.hgetall(this.key);
    const api = Object.entries(all).map(([name, raw]) => {
      const { spec, updatedAt } = JSON.parse(raw) as { spec: TemplateBody; updatedAt: number };
      return { name, spec, source: 'api' as const, updatedAt };
    });
    const cfg = Object.entries(this.fromConfig).map(([name, spec]) => ({
      name,
      spec,
      source: 'config' as const,
    }));
    return [...cfg, ...api.filter((t) => !(t.name in this.fromConfig))].sort((a, b) =>
      a.name.localeCompare(b.name),
    );
  }

  /** Creates (`mode: create`, 409 when it exists), replaces (`update`, 404 when missing) or upserts. */
  async put(
    name: string,
    spec: TemplateBody,
    mode: 'create' | 'update' | 'upsert',
    now: number,
  ): Promise<Template> {
    if (name in this.fromConfig) {
      throw new RolloutError('CONFLICT', `template '${name}' comes from the config file; change it there`);
    }
    const raw = JSON.stringify({ spec, updatedAt: now });
    if (mode === 'create') {
      if (!(await this.redis.hsetnx(this.key, name, raw)))
        throw new RolloutError('CONFLICT', `template '${name}' already exists; use PUT to replace it`);
    } else {
      if (mode === 'update' && !(await this.redis.hexists(this.key, name))) {
        throw new RolloutError('NOT_FOUND', `no template named '${name}'`);
      }
      await this.redis.hset(this.key, name, raw);
    }
    return { name, spec, source: 'api', updatedAt: now };
  }

  async delete(name: string): Promise<void> {
    if (name in this.fromConfig)
      throw new RolloutError('CONFLICT', `template '${name}' comes from the config file; remove it there`);
    if (!(await this.redis.hdel(this.key, name)))
      throw new RolloutError('NOT_FOUND', `no template named '${name}'`);
  }
}
