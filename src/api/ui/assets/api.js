// Calls to vane's API. The token lives in sessionStorage only (gone when the tab closes) and
// travels in the Authorization header only: never in a URL, never in localStorage.

const TOKEN_KEY = 'vane.token';
/** A request that takes longer than this is abandoned with an error the page shows. */
const TIMEOUT_MS = 15_000;

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Headers of every call: the bearer token when there is one. */
export function authHeaders(extra = {}) {
  const token = getToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : { ...extra };
}

/** An error answered by the API, with its envelope's code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** One JSON call; throws ApiError with the envelope's message on a non-2xx answer. */
export async function api(path, { method = 'GET', body } = {}) {
  const res = await fetch(path, {
    method,
    headers: authHeaders(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
    cache: 'no-store',
  });
  const data = await res.json().catch(() => undefined);
  if (!res.ok) {
    const e = data?.error;
    throw new ApiError(res.status, e?.code ?? 'HTTP', e?.message ?? `${method} ${path}: HTTP ${res.status}`);
  }
  return data;
}

export const whoami = () => api('/api/v1/whoami');
export const listRollouts = () => api('/api/v1/rollouts?limit=200');
export const getRollout = (id) => api(`/api/v1/rollouts/${encodeURIComponent(id)}`).then((d) => d.rollout);
export const rolloutEvents = (id, after) =>
  api(
    `/api/v1/rollouts/${encodeURIComponent(id)}/events?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`,
  ).then((d) => d.events);

/** An operator command: promote, approve, abort, pause or resume. */
export const command = (id, type, reason) =>
  api(`/api/v1/rollouts/${encodeURIComponent(id)}/${type}`, {
    method: 'POST',
    body: reason ? { reason } : {},
  });
