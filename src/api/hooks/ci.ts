import { z } from '@hono/zod-openapi';
import { HEADERS, verify as verifyVaneSignature } from '../../notify/signing.ts';
import type { DomainContext } from '../../rollouts/context.ts';
import { publicView } from '../../rollouts/model.ts';
import { startRollout } from '../../rollouts/verbs.ts';
import type { App } from '../app.ts';
import { ApiError, errorResponses } from '../errors.ts';
import { RolloutSchema } from '../rollouts/schema.ts';
import { readRawBody, suggestField } from './raw-body.ts';
import { verifyHubSignature } from './signatures.ts';

/** The acting identity of every rollout the CI webhook starts. */
export const CI_WEBHOOK_ACTOR = 'ci-webhook';

/** A CI webhook's body is small; anything bigger is not one. */
const MAX_BODY_BYTES = 256 * 1024;

const Name = z.string().min(1).max(253);

/** What a CI system may send: a template and the canary's overrides, nothing else. */
export const CiHookBodySchema = z
  .strictObject({
    template: z
      .string()
      .regex(/^[a-z0-9][-a-z0-9.]{0,62}$/, 'the name of a template (lowercase, digits, - and .)'),
    canary: z
      .strictObject({
        subset: Name.optional(),
        labels: z
          .record(z.string().min(1).max(317), z.string().max(63))
          .refine((l) => Object.keys(l).length <= 20, 'at most 20 labels')
          .optional(),
      })
      .refine((c) => c.subset !== undefined || c.labels !== undefined, 'give labels, subset or both'),
    idempotencyKey: z
      .string({
        error:
          'required: a key unique to this deploy (e.g. the CI run id), so a retried delivery starts no second rollout',
      })
      .min(1)
      .max(200),
    metadata: z
      .record(z.string().min(1).max(100), z.string().max(1024))
      .refine((m) => Object.keys(m).length <= 50, 'at most 50 keys')
      .optional(),
  })
  .openapi('CiHookBody');

export type CiHookBody = z.infer<typeof CiHookBodySchema>;

/** The first problem of a body, naming its field: "canary.lables: unknown field; did you mean labels?". */
export function describeBodyIssue(error: z.ZodError, known: Record<string, readonly string[]>): string {
  const issue = error.issues[0]!;
  const at = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const path = at ? `${at}.${key}` : key;
    return `${path}: unknown field; ${suggestField(key, known[at] ?? [])}`;
  }
  return `${at || 'body'}: ${issue.message}`;
}

const KNOWN_FIELDS = {
  '': Object.keys(CiHookBodySchema.shape),
  canary: ['subset', 'labels'],
} as const;

/** Verifies the raw bytes with either scheme; throws 401 naming what is wrong. */
function verifyCiSignature(secret: string, raw: Buffer, headers: Headers, now: number): void {
  const hub = headers.get('x-hub-signature-256');
  const vane = headers.get(HEADERS.signature);
  if (hub) {
    const v = verifyHubSignature(secret, raw, hub);
    if (!v.ok) throw new ApiError('UNAUTHORIZED', v.reason);
    return;
  }
  if (vane) {
    const v = verifyVaneSignature(secret, headers, raw.toString('utf8'), { now });
    if (!v.ok) throw new ApiError('UNAUTHORIZED', `X-Vane-Signature: ${v.reason}`);
    return;
  }
  throw new ApiError(
    'UNAUTHORIZED',
    'missing signature: send X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>, or X-Vane-Timestamp and X-Vane-Signature: v1=<hex HMAC-SHA256 of timestamp.body>, keyed with VANE_CI_WEBHOOK_SECRET',
  );
}

export interface CiHookOptions {
  /** The HMAC secret (VANE_CI_WEBHOOK_SECRET); without it the route answers 404 saying how to enable it. */
  secret?: string | undefined;
  /** Clock for the timestamp window (ms). Default Date.now. */
  now?: () => number;
}

/**
 * POST /api/v1/hooks/ci: a CI system's signed request to start a rollout from a template. Verify
 * the raw bytes, then parse, then call startRollout — the verb POST /api/v1/rollouts calls.
 */
export function registerCiHook(app: App, ctx: DomainContext, opts: CiHookOptions): void {
  const now = opts.now ?? Date.now;
  app.openAPIRegistry.registerPath({
    method: 'post',
    // Authenticated by the caller's signature over the body, not by a bearer token.
    security: [],
    path: '/api/v1/hooks/ci',
    summary:
      'Start a rollout from a template, signed by a CI system (X-Hub-Signature-256 or X-Vane-Signature)',
    request: { body: { required: true, content: { 'application/json': { schema: CiHookBodySchema } } } },
    responses: {
      201: {
        description: 'Started',
        content: { 'application/json': { schema: z.object({ rollout: RolloutSchema }) } },
      },
      200: {
        description: 'A rollout with this idempotencyKey exists; it is returned',
        content: { 'application/json': { schema: z.object({ rollout: RolloutSchema }) } },
      },
      ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'NOT_FOUND', 'TARGET_BUSY'),
    },
  });
  app.post('/api/v1/hooks/ci', async (c) => {
    if (!opts.secret) {
      throw new ApiError(
        'NOT_FOUND',
        'the CI webhook is off: set VANE_CI_WEBHOOK_SECRET (at least 16 characters) in vane to enable POST /api/v1/hooks/ci',
      );
    }
    const raw = await readRawBody(c.req.raw, MAX_BODY_BYTES);
    verifyCiSignature(opts.secret, raw, c.req.raw.headers, now());

    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      throw new ApiError('BAD_REQUEST', `body: not valid JSON (${(e as Error).message})`);
    }
    const parsed = CiHookBodySchema.safeParse(json);
    if (!parsed.success) {
      throw new ApiError('BAD_REQUEST', describeBodyIssue(parsed.error, KNOWN_FIELDS), {
        issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      });
    }
    const { metadata = {}, ...body } = parsed.data;
    // The acting identity is the door, never a string the caller chose; theirs is kept as a note.
    const { triggeredBy: claimed, ...rest } = metadata;
    const input = {
      ...body,
      metadata: { ...rest, ...(claimed ? { requestedBy: claimed } : {}), triggeredBy: CI_WEBHOOK_ACTOR },
    };
    const { rollout, created } = await startRollout({ ctx, input, by: 'ci-webhook' });
    c.header('Location', `/api/v1/rollouts/${rollout.id}`);
    return c.json({ rollout: publicView(rollout) }, created ? 201 : 200);
  });
}
