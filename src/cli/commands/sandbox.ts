import { type Command, InvalidArgumentError } from 'commander';
import { examples } from '../common.ts';

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535)
    throw new InvalidArgumentError('expected an integer from 0 to 65535');
  return n;
}

export function registerSandbox(program: Command): void {
  const sandbox = program.command('sandbox').description('a local cluster for demos and tests');

  sandbox
    .option('--no-demo', 'bring the sandbox up without the two demo rollouts')
    .addHelpText(
      'after',
      `
Without a subcommand it runs the whole sandbox: the Kubernetes API simulator with pods, the mesh
gateway, a real Prometheus scraping it every second, steady load, vane's API and workers, and a
bookinfo-like reviews service (v1 stable, v2 good, v3 bad). Then the demo: one rollout promoted,
one rolled back on v3's errors, every step printed. It stays up until Ctrl-C, which stops every
process it started. Data (Redis, Prometheus, the cluster's objects) lives under VANE_DATA_DIR
(default .vane); <VANE_DATA_DIR>/sandbox.json names every part's address.`,
    )
    .action(async (o: { demo: boolean }) => {
      const { sandboxAction } = await import('../main.ts');
      process.exitCode = await sandboxAction({ demo: o.demo });
    });
  examples(sandbox, 'vane sandbox', 'vane sandbox --no-demo', 'vane sandbox kube --port 6443');

  const kube = sandbox
    .command('kube')
    .description('a Kubernetes API simulator for kubectl and tests; prints a kubeconfig for it on stdout')
    .option('--port <n>', 'port to listen on (default: a free one)', port)
    .option('--host <addr>', 'address to bind (default 127.0.0.1)')
    .option('--crds <file>', 'CustomResourceDefinitions to serve and validate against (YAML)')
    .option('--snapshot <file>', 'keep the objects in this JSON file across restarts')
    .option(
      '--token <token>',
      'require this bearer token; kubectl sends credentials only over TLS, so use it with client-node or curl, not kubectl',
    )
    .option(
      '--pods',
      'run Deployments: each Pod a demo app on 127.0.0.1 (its port in the annotation sandbox.vane.dev/port)',
    )
    .addHelpText('after', '\nIt runs until SIGTERM or Ctrl-C.')
    .action(
      async (o: {
        port?: number;
        host?: string;
        crds?: string;
        snapshot?: string;
        token?: string;
        pods?: boolean;
      }) => {
        const { runKubeSimulatorCli } = await import('../../sandbox/kube/cli.ts');
        process.exitCode = await runKubeSimulatorCli(o);
      },
    );
  examples(
    kube,
    'vane sandbox kube --port 6443 --snapshot kube.json > kubeconfig && kubectl --kubeconfig kubeconfig get ns',
  );
}
