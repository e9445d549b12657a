import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CliError } from './errors.ts';

export const OUTPUTS = ['table', 'json', 'yaml'] as const;
export type Output = (typeof OUTPUTS)[number];

/** `~/.config/vane/config.yaml`: where a client finds vane. Unknown keys are errors. */
export const ClientConfigSchema = z.strictObject({
  /** vane's API, e.g. https://vane.example.com */
  server: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }).optional(),
  /** API token sent as a bearer token */
  token: z.string().min(1).max(4096).optional(),
  /** default --output */
  output: z.enum(OUTPUTS).optional(),
});
export type ClientConfig = z.infer<typeof ClientConfigSchema>;

const MAX_CONFIG_BYTES = 64 * 1024;

/** The client config file's path: $XDG_CONFIG_HOME/vane/config.yaml, else ~/.config/vane/config.yaml. */
export function clientConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'vane', 'config.yaml');
}

/** Reads the client config file; absent is empty, anything else wrong is a CliError naming the field. */
export function loadClientConfig(env: NodeJS.ProcessEnv = process.env): ClientConfig {
  const file = clientConfigPath(env);
  let text: string;
  try {
    if (statSync(file).size > MAX_CONFIG_BYTES)
      throw new CliError(`${file}: larger than ${MAX_CONFIG_BYTES} bytes`);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof CliError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(
      `${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (e) {
    throw new CliError(`${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const parsed = ClientConfigSchema.safeParse(doc);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    const where = i.path.map(String).join('.') || '(top level)';
    const hint =
      i.code === 'unrecognized_keys'
        ? `; the keys are: ${Object.keys(ClientConfigSchema.shape).join(', ')}`
        : '';
    throw new CliError(`${file}: ${where}: ${i.message}${hint}`);
  }
  return parsed.data;
}

export interface ClientFlags {
  server?: string;
  url?: string;
  token?: string;
  output?: string;
}

export interface ClientSettings {
  server: string;
  token?: string;
  output: Output;
}

/** Flags win over the environment (VANE_URL, VANE_TOKEN), which wins over the config file. */
export function resolveClientSettings(
  flags: ClientFlags,
  env: NodeJS.ProcessEnv = process.env,
): ClientSettings {
  const file = loadClientConfig(env);
  const server =
    flags.server ?? flags.url ?? (env.VANE_URL || undefined) ?? file.server ?? 'http://localhost:8080';
  if (!/^https?:\/\/[^/]/.test(server))
    throw new CliError(`--server ${server}: expected an http:// or https:// URL, e.g. http://localhost:8080`);
  const token = flags.token ?? (env.VANE_TOKEN || undefined) ?? file.token;
  const output = (flags.output ?? file.output ?? 'table') as Output;
  return { server: server.replace(/\/+$/, ''), ...(token ? { token } : {}), output };
}
