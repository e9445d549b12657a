import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { eventually, startTestPrometheus } from '../helpers/services.ts';

describe('a real Prometheus', () => {
  let prom: ManagedProcess;
  let server: Server;
  const registry = new Registry();
  const gauge = new Gauge({ name: 'vane_test_value', help: 'set by the test', registers: [registry] });

  beforeAll(async () => {
    server = createServer(async (_req, res) => {
      res.setHeader('Content-Type', registry.contentType);
      res.end(await registry.metrics());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    prom = await startTestPrometheus([{ job: 'probe', target: `127.0.0.1:${port}` }]);
  });
  afterAll(async () => {
    await prom?.stop();
    server?.close();
  });

  it('scrapes an endpoint the test serves and answers the value through its HTTP API', async () => {
    gauge.set(42.5);
    const value = await eventually(async () => {
      const res = await fetch(`${prom.url}/api/v1/query?query=vane_test_value`, {
        signal: AbortSignal.timeout(2_000),
      });
      const body = (await res.json()) as { data: { result: { value: [number, string] }[] } };
      const v = body.data.result[0]?.value[1];
      return v === '42.5' ? v : undefined;
    }, 30_000);
    expect(Number(value)).toBe(42.5);
  });
});
