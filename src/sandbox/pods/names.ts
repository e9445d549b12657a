import { randomInt } from 'node:crypto';

/** The alphabet Kubernetes uses for generated name suffixes and template hashes (no vowels, no 0/1/3). */
const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function fnv32a(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Null, and objects of nothing else: what a typed decoder reads as a field left out. */
function empty(v: unknown): boolean {
  return (
    v === null ||
    v === undefined ||
    (typeof v === 'object' && !Array.isArray(v) && Object.values(v).every(empty))
  );
}

/**
 * JSON with object keys sorted and empty fields left out, so equal templates hash equally whatever
 * the key order or how a client wrote "nothing" (`kubectl rollout undo` sends `creationTimestamp: null`).
 */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .filter((k) => !empty((v as Record<string, unknown>)[k]))
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/**
 * The `pod-template-hash` of a pod template: a 32-bit FNV-1a of the template, its decimal digits
 * (zero-padded to 10) mapped onto the name alphabet, as Kubernetes encodes it — always 10 characters.
 */
export function podTemplateHash(template: unknown): string {
  const digits = String(fnv32a(canonical(template))).padStart(10, '0');
  let out = '';
  for (const d of digits) out += ALPHABET[d.charCodeAt(0) % ALPHABET.length];
  return out;
}

/** Five random characters, as a `generateName` suffix. */
export function nameSuffix(): string {
  let out = '';
  for (let i = 0; i < 5; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}
