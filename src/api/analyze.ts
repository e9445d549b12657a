import { createRoute, z } from '@hono/zod-openapi';
import type { DomainContext } from '../rollouts/context.ts';
import { meshTarget } from '../rollouts/engine.ts';
import { RolloutError } from '../rollouts/errors.ts';
import { describeZodError, RolloutSpecSchema } from '../rollouts/spec.ts';
import type { App } from './app.ts';
import { assertNamespace, principalOf } from './auth/require-scope.ts';
import { scoped } from './auth/scoped.ts';
import { errorResponses } from './errors.ts';

const FindingSchema = z
  .object({
    code: z.string(),
    severity: z.string().openapi({ example: 'error' }),
    message: z.string(),
    fix: z.string(),
  })
  .openapi('Finding');

const route = createRoute({
  ...scoped('read'),
  method: 'post',
  path: '/api/v1/analyze',
  summary: 'Preflight: check a target in the cluster before a rollout (the body is a rollout spec)',
  request: {
    body: { required: true, content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } },
  },
  responses: {
    200: {
      description: 'The findings; errors stop a rollout, warnings do not',
      content: {
        'application/json': {
          schema: z.object({ errors: z.number(), warnings: z.number(), findings: z.array(FindingSchema) }),
        },
      },
    },
    ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'PAYLOAD_TOO_LARGE'),
  },
});

export function registerAnalyze(app: App, ctx: DomainContext): void {
  app.openapi(route, async (c) => {
    if (!ctx.analyzeTarget)
      throw new RolloutError('BAD_REQUEST', 'no Kubernetes cluster is configured in vane');
    const parsed = RolloutSpecSchema.safeParse(c.req.valid('json'));
    if (!parsed.success) {
      const issues = describeZodError(parsed.error);
      const i = issues[0]!;
      throw new RolloutError('BAD_REQUEST', `${i.path || 'spec'}: ${i.message}`, { issues });
    }
    assertNamespace(principalOf(c), parsed.data.target.namespace);
    const target = meshTarget({ spec: parsed.data } as Parameters<typeof meshTarget>[0]);
    const report = await ctx.analyzeTarget(target);
    return c.json({ errors: report.errors, warnings: report.warnings, findings: report.findings }, 200);
  });
}
