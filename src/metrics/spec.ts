// Placeholder until the metric analysis lands: the rollout spec only needs the check's name and criticality.
import { z } from 'zod';

export const MetricCheckSchema = z.looseObject({
  name: z.string().min(1),
  critical: z.boolean().default(false),
});
