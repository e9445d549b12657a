import { startKubeSimulator } from './index.ts';

const USAGE = `usage: vane sandbox kube [--port N] [--host ADDR] [--crds FILE] [--snapshot FILE] [--token T] [--pods]
  --pods runs Deployments: each Pod a demo app on 127.0.0.1 (its port in the annotation sandbox.vane.dev/port).
  --token makes the token required; kubectl sends credentials only over TLS, so use it with client-node or curl, not kubectl.`;

/** `vane sandbox kube ...`: runs the simulator until SIGTERM/SIGINT and prints a kubeconfig to use it. */
export async function runKubeSimulatorCli(argv: string[]): Promise<number> {
  const opts: Record<string, string> = {};
  let pods = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--pods') {
      pods = true;
      continue;
    }
    const m = /^--(port|host|crds|snapshot|token)(?:=(.*))?$/.exec(a);
    if (!m) {
      console.error(`vane: unknown option '${a}'\n${USAGE}`);
      return 2;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined) {
      console.error(`vane: --${m[1]} needs a value\n${USAGE}`);
      return 2;
    }
    opts[m[1]!] = value;
  }
  const port = opts.port === undefined ? undefined : Number(opts.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    console.error(`vane: --port must be an integer from 0 to 65535, not '${opts.port}'`);
    return 2;
  }
  const sim = await startKubeSimulator({
    port,
    host: opts.host,
    crdsFile: opts.crds,
    snapshotFile: opts.snapshot,
    token: opts.token,
    pods,
    log: (m) => console.error(m),
  });
  console.error(`kube simulator listening on ${sim.url}${pods ? ', running pods' : ''}; kubeconfig:`);
  console.log(sim.kubeconfigYaml());
  return new Promise<number>((done) => {
    const stop = () => void sim.close().then(() => done(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
