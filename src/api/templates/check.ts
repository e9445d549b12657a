import { RolloutSpecSchema } from '../../rollouts/spec.ts';
import { describeIssues } from '../../zod-issues.ts';

/**
 * A template is part of a spec, so required fields may be missing; but every field it has must be
 * one a spec knows (naming the nearest), and a URL, secretEnv or metadata in it must pass the same
 * checks. Used for templates from the API (400) and from the config file (start-up refused).
 */
export function templateIssues(
  spec: Record<string, unknown>,
  prefix = 'spec',
): { path: string; message: string }[] {
  const strategy = spec.strategy;
  // Without its `type` a strategy's fields cannot be checked: check them against each type and keep the closest.
  const probes =
    typeof strategy === 'object' && strategy !== null && !Array.isArray(strategy) && !('type' in strategy)
      ? STRATEGY_TYPES.map((type) => ({ ...spec, strategy: { type, ...strategy } }))
      : [spec];
  return probes.map((p) => issuesOf(p, prefix)).sort((x, y) => x.length - y.length)[0]!;
}

const STRATEGY_TYPES = ['canary', 'blue-green', 'ab-test'];

function issuesOf(spec: Record<string, unknown>, prefix: string): { path: string; message: string }[] {
  const parsed = RolloutSpecSchema.safeParse(spec);
  if (parsed.success) return [];
  return describeIssues(parsed.error, prefix).filter(
    (i) =>
      /unknown field/.test(i.message) ||
      /\.(url|secretEnv)$/.test(i.path) ||
      i.path.startsWith(`${prefix}.metadata`),
  );
}
