/**
 * Soak of the model-based engine test (test/helpers/model.ts): many seeded runs of random rollouts
 * through 1–3 in-process engine instances on the kube simulator and a real Redis, every invariant
 * checked after each command and after the drain. Prints the runs, the failures (invariant, seed,
 * commands) and the duration, then a `RESULT {json}` line.
 * Run: npx tsx bench/engine-soak.ts --runs 5000 [--seed N] [--shrink] [--max-commands 14]
 */
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { modelProperty, startModelWorld } from '../test/helpers/model.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '200' },
    seed: { type: 'string', default: '1' },
    shrink: { type: 'boolean', default: false },
    'max-commands': { type: 'string', default: '14' },
  },
});
const RUNS = Number(values.runs);
const SEED = Number(values.seed);

const world = await startModelWorld();
const property = modelProperty(world, Number(values['max-commands']));
const failures: { seed: number; invariant: string; counterexample: string; message: string }[] = [];
const durations: number[] = [];
const started = performance.now();
for (let i = 0; i < RUNS; i++) {
  const seed = SEED + i;
  const t0 = performance.now();
  const out = await fc.check(property, { seed, numRuns: 1, endOnFailure: !values.shrink });
  durations.push(performance.now() - t0);
  if (out.failed) {
    const message = String((out.errorInstance as Error | undefined)?.message ?? 'failed');
    const invariant = /invariant "([^"]+)"/.exec(message)?.[1] ?? message.split('\n')[0]!.slice(0, 120);
    const counterexample = fc.stringify(out.counterexample);
    failures.push({ seed, invariant, counterexample, message: message.slice(0, 600) });
    console.log(
      `run ${i + 1} seed ${seed} FAILED: ${invariant}\n  ${counterexample}\n  ${message.slice(0, 600)}`,
    );
  }
  if ((i + 1) % 50 === 0 || i + 1 === RUNS) {
    const s = (performance.now() - started) / 1000;
    console.log(`${i + 1}/${RUNS} runs, ${failures.length} failed, ${s.toFixed(0)}s`);
  }
}
const seconds = (performance.now() - started) / 1000;
await world.close();

durations.sort((a, b) => a - b);
const q = (p: number) =>
  Math.round(durations[Math.min(durations.length - 1, Math.floor(p * durations.length))] ?? 0);
const byInvariant: Record<string, number> = {};
for (const f of failures) byInvariant[f.invariant] = (byInvariant[f.invariant] ?? 0) + 1;
console.log(
  `runs ${RUNS}, failed ${failures.length}, ${seconds.toFixed(0)}s (run p50 ${q(0.5)}ms, p95 ${q(0.95)}ms, max ${q(1)}ms)`,
);
console.log(`outcomes: ${JSON.stringify(world.outcomes)}`);
console.log(`commands: ${JSON.stringify(world.commands)}`);
console.log(
  `RESULT ${JSON.stringify({
    runs: RUNS,
    failed: failures.length,
    seconds: Math.round(seconds),
    seed: SEED,
    runMs: { p50: q(0.5), p95: q(0.95), max: q(1) },
    outcomes: world.outcomes,
    failuresByInvariant: byInvariant,
    firstFailures: failures.slice(0, 5).map((f) => ({ seed: f.seed, invariant: f.invariant })),
  })}`,
);
process.exit(failures.length ? 1 : 0);
