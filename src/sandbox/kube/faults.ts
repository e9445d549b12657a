import { z } from 'zod';
import { qualifiedResource, type ResourceType } from './resources.ts';
import { KubeError } from './status.ts';

export interface FaultRule {
  /** get|list|watch|create|update|patch|delete or * (default *). */
  verb?: string;
  /** Plural such as virtualservices, or * (default *). */
  resource?: string;
  /** The error to answer with; without it the rule only adds latency. */
  status?: 409 | 500 | 429;
  /** Chance per matching request, 0..1 (default 1). */
  rate?: number;
  /** Inject this many times, then stop (default: no limit). */
  count?: number;
  /** Retry-After of a 429 (default 1). */
  retryAfterSeconds?: number;
  latencyMs?: number;
}

const FaultRulesSchema = z.array(
  z
    .object({
      verb: z.enum(['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', '*']).optional(),
      resource: z.string().min(1).optional(),
      status: z.union([z.literal(409), z.literal(500), z.literal(429)]).optional(),
      rate: z.number().min(0).max(1).optional(),
      count: z.number().int().min(0).optional(),
      retryAfterSeconds: z.number().int().min(0).optional(),
      latencyMs: z.number().min(0).max(600_000).optional(),
    })
    .strict(),
);

/** Rules sent to the admin endpoint; a mistake is a 400 that says which rule and field. */
export function parseFaultRules(input: unknown): FaultRule[] {
  const r = FaultRulesSchema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new KubeError(
    400,
    'BadRequest',
    `fault rule faults${issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}: ${issue.message}; send {"faults": [{verb, resource, status: 409|500|429, rate: 0..1, count, retryAfterSeconds, latencyMs}]}`,
  );
}

const matches = (want: string | undefined, got: string) => !want || want === '*' || want === got;

/** Test-only failures; none unless rules are set. */
export class Faults {
  private rules: FaultRule[] = [];

  set(rules: FaultRule[]): void {
    this.rules = rules.map((r) => ({ ...r }));
  }

  clear(): void {
    this.rules = [];
  }

  list(): FaultRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /** Waits for any latency, then returns the error to answer with, if a rule fires. */
  async apply(verb: string, t: ResourceType, name: string | undefined): Promise<KubeError | undefined> {
    for (const rule of this.rules) {
      if (!matches(rule.verb, verb) || !matches(rule.resource, t.plural)) continue;
      if (rule.count !== undefined && rule.count <= 0) continue;
      if (rule.rate !== undefined && Math.random() >= rule.rate) continue;
      if (rule.count !== undefined) rule.count -= 1;
      if (rule.latencyMs) await new Promise((r) => setTimeout(r, rule.latencyMs));
      if (!rule.status) continue;
      const what = `${qualifiedResource(t)}${name ? ` "${name}"` : ''}`;
      const details = { ...(name ? { name } : {}), ...(t.group ? { group: t.group } : {}), kind: t.plural };
      if (rule.status === 409)
        return new KubeError(
          409,
          'Conflict',
          `Operation cannot be fulfilled on ${what}: the object has been modified; please apply your changes to the latest version and try again`,
          details,
        );
      if (rule.status === 429) {
        const retryAfterSeconds = rule.retryAfterSeconds ?? 1;
        return new KubeError(
          429,
          'TooManyRequests',
          `too many requests for ${what}, retry after ${retryAfterSeconds}s (injected fault)`,
          {
            ...details,
            retryAfterSeconds,
          },
        );
      }
      return new KubeError(
        500,
        'InternalError',
        `Internal error occurred: injected fault on ${verb} ${what}`,
        details,
      );
    }
    return undefined;
  }
}
