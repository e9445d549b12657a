import { ApiError } from '../errors.ts';

/**
 * The request's raw bytes, refused past `maxBytes` without reading the rest: a declared
 * Content-Length over the limit is refused at once, a body that grows past it is cut off.
 */
export async function readRawBody(req: Request, maxBytes: number): Promise<Buffer> {
  const tooBig = (n: string) =>
    new ApiError('BAD_REQUEST', `body: at most ${maxBytes} bytes are accepted here; this one has ${n}`);
  const declared = Number(req.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooBig(String(declared));
  if (!req.body) return Buffer.alloc(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooBig(`more than ${maxBytes}`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** Levenshtein distance, for "did you mean" on unknown fields. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** "did you mean x?" when a known field is close to the unknown one, else the list of fields. */
export function suggestField(unknown: string, known: readonly string[]): string {
  const best = known
    .map((k) => ({ k, d: distance(unknown.toLowerCase(), k.toLowerCase()) }))
    .sort((a, b) => a.d - b.d)[0];
  if (best && best.d <= Math.max(2, Math.floor(best.k.length / 3))) return `did you mean ${best.k}?`;
  return `fields are: ${known.join(', ')}`;
}
