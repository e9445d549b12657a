import { z } from 'zod';

/**
 * What a firing alert does to a rollout it matches (the spec's `analysis.alerts`): roll back
 * (default), pause, or nothing; optionally only for some alert names or one severity.
 */
export const AlertPolicySchema = z.strictObject({
  /** rollback (default): abort and restore stable at once; pause: hold where it is; ignore: record only. */
  action: z.enum(['rollback', 'pause', 'ignore']).default('rollback'),
  /** Only alerts with one of these `alertname` labels act; others are recorded and ignored. Default: every alert. */
  alertnames: z.array(z.string().min(1).max(200)).min(1).max(50).optional(),
  /** Only alerts whose `severity` label is this act (e.g. critical). Default: any severity. */
  severity: z.string().min(1).max(100).optional(),
});
export type AlertPolicy = z.infer<typeof AlertPolicySchema>;
