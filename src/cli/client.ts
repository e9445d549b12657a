import { ApiCallError, CliError } from './errors.ts';
import type { ClientSettings } from './settings.ts';

/** Every plain API call ends within this time. */
export const REQUEST_TIMEOUT_MS = 15_000;
/** Largest answer body the CLI reads. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface ApiResult<T> {
  status: number;
  data: T;
}

/** vane's HTTP API as the CLI uses it: JSON in and out, a timeout on every call, errors as ApiCallError. */
export class ApiClient {
  constructor(
    readonly settings: Pick<ClientSettings, 'server' | 'token'>,
    readonly timeoutMs = REQUEST_TIMEOUT_MS,
  ) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      'User-Agent': 'vane-cli',
      ...(this.settings.token ? { Authorization: `Bearer ${this.settings.token}` } : {}),
      ...extra,
    };
  }

  /** fetch with the token and a deadline; a network failure is a CliError naming the server. */
  async raw(path: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Response> {
    const { timeoutMs = this.timeoutMs, ...rest } = init;
    const url = `${this.settings.server}${path}`;
    try {
      return await fetch(url, {
        ...rest,
        headers: this.headers((rest.headers as Record<string, string>) ?? {}),
        signal: rest.signal
          ? AbortSignal.any([rest.signal, AbortSignal.timeout(timeoutMs)])
          : AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      const why =
        err.name === 'TimeoutError'
          ? `no answer within ${Math.round(timeoutMs / 1000)}s`
          : (err.cause?.code ?? err.cause?.message ?? err.message);
      throw new CliError(`cannot reach vane at ${this.settings.server}: ${why} (set --server or VANE_URL)`);
    }
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<ApiResult<T>> {
    const res = await this.raw(path, {
      method,
      ...(body !== undefined
        ? { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } }
        : {}),
    });
    return { status: res.status, data: await readJson<T>(res, this.settings.server) };
  }
}

/** The JSON of an answer; a non-2xx answer becomes ApiCallError with the envelope's code and message. */
export async function readJson<T>(res: Response, server: string): Promise<T> {
  let text: string;
  try {
    text = await res.text();
  } catch (e) {
    throw new CliError(`vane at ${server} stopped answering: ${(e as Error).message}`);
  }
  if (text.length > MAX_BODY_BYTES)
    throw new CliError(`vane at ${server} sent more than ${MAX_BODY_BYTES} bytes`);
  let data: unknown;
  if (text !== '') {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string; details?: unknown } } | undefined)
      ?.error;
    const issues = (err?.details as { issues?: { path: string; message: string }[] } | undefined)?.issues;
    const more =
      issues && issues.length > 1 ? `\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}` : '';
    throw new ApiCallError(
      err?.code ?? `HTTP_${res.status}`,
      err?.message ?? (res.statusText || 'no error message'),
      res.status,
      more,
    );
  }
  if (data === undefined && text !== '')
    throw new CliError(`vane at ${server} answered with something other than JSON`);
  return (data ?? {}) as T;
}
