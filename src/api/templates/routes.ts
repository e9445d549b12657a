import { createRoute, z } from '@hono/zod-openapi';
import type { DomainContext } from '../../rollouts/context.ts';
import { RolloutError } from '../../rollouts/errors.ts';
import { TEMPLATE_NAME } from '../../rollouts/templates.ts';
import type { App } from '../app.ts';
import { errorResponses } from '../errors.ts';

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
  .object({
    name: z.string().regex(TEMPLATE_NAME, 'lower-case letters, digits and -, at most 100'),
    spec: z.record(z.string(), z.unknown()),
  })
  .openapi('TemplateBody');
const One = { 'application/json': { schema: z.object({ template: TemplateSchema }) } };

const list = createRoute({
  method: 'get',
  path: '/api/v1/templates',
  summary: 'Named templates (per-service defaults)',
  responses: {
    200: {
      description: 'Templates',
      content: { 'application/json': { schema: z.object({ templates: z.array(TemplateSchema) }) } },
    },
    ...errorResponses('UNAUTHORIZED'),
  },
});
const create = createRoute({
  method: 'post',
  path: '/api/v1/templates',
  summary: 'Create a template',
  request: { body: { required: true, content: { 'application/json': { schema: Body } } } },
  responses: {
    201: { description: 'Created', content: One },
    ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'CONFLICT'),
  },
});
const get = createRoute({
  method: 'get',
  path: '/api/v1/templates/{name}',
  summary: 'A template',
  request: { params: NameParam },
  responses: {
    200: { description: 'The template', content: One },
    ...errorResponses('UNAUTHORIZED', 'NOT_FOUND'),
  },
});
const update = createRoute({
  method: 'put',
  path: '/api/v1/templates/{name}',
  summary: 'Replace a template',
  request: {
    params: NameParam,
    body: {
      required: true,
      content: { 'application/json': { schema: z.object({ spec: z.record(z.string(), z.unknown()) }) } },
    },
  },
  responses: {
    200: { description: 'Replaced', content: One },
    ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'NOT_FOUND', 'CONFLICT'),
  },
});
const remove = createRoute({
  method: 'delete',
  path: '/api/v1/templates/{name}',
  summary: 'Delete a template',
  request: { params: NameParam },
  responses: { 204: { description: 'Deleted' }, ...errorResponses('UNAUTHORIZED', 'NOT_FOUND', 'CONFLICT') },
});

export function registerTemplates(app: App, ctx: DomainContext): void {
  app.openapi(list, async (c) => c.json({ templates: await ctx.templates.list() }, 200));
  app.openapi(create, async (c) => {
    const { name, spec } = c.req.valid('json');
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
    return c.json(
      { template: await ctx.templates.put(name, c.req.valid('json').spec, 'update', ctx.now()) },
      200,
    );
  });
  app.openapi(remove, async (c) => {
    await ctx.templates.delete(c.req.valid('param').name);
    return c.body(null, 204);
  });
}
