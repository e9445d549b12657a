import { createRoute, z } from '@hono/zod-openapi';
import type { DomainContext } from '../../rollouts/context.ts';
import { RolloutError } from '../../rollouts/errors.ts';
import { TEMPLATE_NAME } from '../../rollouts/templates.ts';
import type { App } from '../app.ts';
import { scoped } from '../auth/scoped.ts';
import { errorResponses } from '../errors.ts';
import { templateIssues } from './check.ts';

const TemplateSchema = z
  .object({
    name: z.string(),
    spec: z.record(z.string(), z.unknown()),
    source: z.enum(['config', 'api']),
    updatedAt: z.number().optional(),
  })
  .openapi('Template');
const NameParam = z.object({
  // built here, with the API's zod, so it carries OpenAPI metadata whatever the import order
  name: z
    .string()
    .regex(TEMPLATE_NAME, 'lower-case letters, digits and -, at most 100')
    .openapi({ param: { name: 'name', in: 'path' }, example: 'reviews' }),
});
const Body = z
  .strictObject({
    name: z.string().regex(TEMPLATE_NAME, 'lower-case letters, digits and -, at most 100'),
    spec: z.record(z.string(), z.unknown()),
  })
  .openapi('TemplateBody');
const One = { 'application/json': { schema: z.object({ template: TemplateSchema }) } };

const list = createRoute({
  ...scoped('read'),
  method: 'get',
  path: '/api/v1/templates',
  summary: 'Named templates (per-service defaults)',
  responses: {
    200: {
      description: 'Templates',
      content: { 'application/json': { schema: z.object({ templates: z.array(TemplateSchema) }) } },
    },
    ...errorResponses('UNAUTHORIZED', 'FORBIDDEN'),
  },
});
const create = createRoute({
  ...scoped('admin'),
  method: 'post',
  path: '/api/v1/templates',
  summary: 'Create a template',
  request: { body: { required: true, content: { 'application/json': { schema: Body } } } },
  responses: {
    201: { description: 'Created', content: One },
    ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'CONFLICT', 'RATE_LIMITED'),
  },
});
const get = createRoute({
  ...scoped('read'),
  method: 'get',
  path: '/api/v1/templates/{name}',
  summary: 'A template',
  request: { params: NameParam },
  responses: {
    200: { description: 'The template', content: One },
    ...errorResponses('UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND'),
  },
});
const update = createRoute({
  ...scoped('admin'),
  method: 'put',
  path: '/api/v1/templates/{name}',
  summary: 'Replace a template',
  request: {
    params: NameParam,
    body: {
      required: true,
      content: {
        'application/json': { schema: z.strictObject({ spec: z.record(z.string(), z.unknown()) }) },
      },
    },
  },
  responses: {
    200: { description: 'Replaced', content: One },
    ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT', 'RATE_LIMITED'),
  },
});
const remove = createRoute({
  ...scoped('admin'),
  method: 'delete',
  path: '/api/v1/templates/{name}',
  summary: 'Delete a template',
  request: { params: NameParam },
  responses: {
    204: { description: 'Deleted' },
    ...errorResponses('UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT'),
  },
});

export function registerTemplates(app: App, ctx: DomainContext): void {
  app.openapi(list, async (c) => c.json({ templates: await ctx.templates.list() }, 200));
  app.openapi(create, async (c) => {
    const { name, spec } = c.req.valid('json');
    const issues = templateIssues(spec);
    if (issues[0])
      throw new RolloutError('BAD_REQUEST', `${issues[0].path}: ${issues[0].message}`, { issues });
    return c.json({ template: await ctx.templates.put(name, spec, 'create', ctx.now()) }, 201);
  });
  app.openapi(get, async (c) => {
    const { name } = c.req.valid('param');
    const template = await ctx.templates.get(name);
    if (!template) throw new RolloutError('NOT_FOUND', `no template named '${name}'`);
    return c.json({ template }, 200);
  });
  app.openapi(update, async (c) => {
    const { name } = c.req.valid('param');
    const { spec } = c.req.valid('json');
    const issues = templateIssues(spec);
    if (issues[0])
      throw new RolloutError('BAD_REQUEST', `${issues[0].path}: ${issues[0].message}`, { issues });
    return c.json({ template: await ctx.templates.put(name, spec, 'update', ctx.now()) }, 200);
  });
  app.openapi(remove, async (c) => {
    await ctx.templates.delete(c.req.valid('param').name);
    return c.body(null, 204);
  });
}
