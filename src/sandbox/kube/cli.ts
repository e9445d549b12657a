import { startKubeSimulator } from './index.ts';

/** The options of `vane sandbox kube`, parsed by the command line (src/cli/commands/sandbox.ts). */
export interface KubeSimulatorCliOptions {
  port?: number;
  host?: string;
  crds?: string;
  snapshot?: string;
  /** makes the token required; kubectl sends credentials only over TLS, so use it with client-node or curl */
  token?: string;
  /** runs Deployments: each Pod a demo app on 127.0.0.1 (its port in the annotation sandbox.vane.dev/port) */
  pods?: boolean;
}

/** `vane sandbox kube ...`: runs the simulator until SIGTERM/SIGINT and prints a kubeconfig to use it. */
export async function runKubeSimulatorCli(opts: KubeSimulatorCliOptions): Promise<number> {
  if (opts.port !== undefined && !(Number.isInteger(opts.port) && opts.port >= 0 && opts.port <= 65535)) {
    console.error(`vane: --port must be an integer from 0 to 65535, not '${opts.port}'`);
    return 2;
  }
  const sim = await startKubeSimulator({
    port: opts.port,
    host: opts.host,
    crdsFile: opts.crds,
    snapshotFile: opts.snapshot,
    token: opts.token,
    pods: opts.pods ?? false,
    log: (m) => console.error(m),
  });
  console.error(`kube simulator listening on ${sim.url}${opts.pods ? ', running pods' : ''}; kubeconfig:`);
  console.log(sim.kubeconfigYaml());
  return new Promise<number>((done) => {
    const stop = () => void sim.close().then(() => done(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
