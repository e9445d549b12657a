import { z } from '@hono/zod-openapi';
import { PHASES } from '../../rollouts/phases.ts';

export const RolloutIdParam = z.object({
  id: z
    .string()
    .min(1)
    .openapi({ param: { name: 'id', in: 'path' }, example: 'ro-3f2a9c1b7d004e8f9a1b' }),
});

/** The request body of a start: a rollout spec (DESIGN.md "The rollout"), or a template name plus overrides. */
export const RolloutSpecInputSchema = z.record(z.string(), z.unknown()).openapi('RolloutSpecInput', {
  example: {
    target: { namespace: 'bookinfo', virtualService: 'reviews', destinationRule: 'reviews' },
    stable: { subset: 'v1' },
    canary: { subset: 'v2', labels: { version: 'v2' } },
    strategy: { type: 'canary', steps: [5, 10, 25, 50], stepInterval: '30s' },
    analysis: {
      metrics: [
        {
          name: 'success-rate',
          template: 'request-success-rate',
          thresholdRange: { min: 99 },
          critical: true,
        },
      ],
    },
    idempotencyKey: 'build-4711',
  },
});

export const RolloutSchema = z
  .object({
    id: z.string(),
    version: z.number(),
    phase: z.enum(PHASES),
    reason: z.string(),
    createdAt: z.number(),
    updatedAt: z.number(),
    phaseStartedAt: z.number(),
    endedAt: z.number().optional(),
    weights: z.object({ stable: z.number(), canary: z.number() }),
    spec: z.record(z.string(), z.unknown()),
    input: z.record(z.string(), z.unknown()),
    progress: z.record(z.string(), z.unknown()),
    lastAnalysis: z.unknown().optional(),
    pendingCommands: z.array(z.string()),
    after: z
      .object({
        state: z.enum(['scheduled', 'kept', 'scaled-down', 'undoing', 'undone', 'undo-failed']),
        workload: z.string().optional(),
        scaleDownAt: z.number().optional(),
        scaledDownAt: z.number().optional(),
        replicas: z.number().optional(),
        undoneAt: z.number().optional(),
        undoneBy: z.string().optional(),
        message: z.string().optional(),
      })
      .optional()
      .openapi({
        description: 'After the verdict: the old (or failed canary) workload scale-down, and undo',
      }),
  })
  .passthrough()
  .openapi('Rollout');

export const EventSchema = z
  .object({
    id: z.string().optional(),
    time: z.number(),
    type: z.string(),
    reason: z.string(),
    from: z.string().optional(),
    to: z.string().optional(),
    weights: z.object({ stable: z.number(), canary: z.number() }).optional(),
    results: z.array(z.unknown()).optional(),
    verdict: z.string().optional(),
    by: z.string().optional(),
  })
  .openapi('RolloutEvent');

export const CommandBodySchema = z
  .strictObject({
    by: z
      .string()
      .max(200)
      .optional()
      .openapi({ description: 'A note of who asks; the history records the token name as the actor' }),
    reason: z.string().max(1000).optional(),
  })
  .openapi('CommandBody');
