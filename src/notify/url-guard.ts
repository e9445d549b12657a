import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Agent, type Dispatcher } from 'undici';

/**
 * The one guard of every outgoing URL (webhooks, gates, notifications). It refuses link-local
 * and cloud-metadata addresses always, loopback unless allowed, and is applied twice: to the URL
 * when a spec is validated, and to every address the name resolves to when vane connects (a
 * name that resolved to a public address at validation may resolve to 169.254.169.254 later).
 * Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) stay allowed: in-cluster services live there.
 */

export interface OutboundPolicy {
  /** Allow 127.0.0.0/8 and ::1 (a receiver on the same machine, tests, the sandbox). Default false. */
  allowLoopback: boolean;
}

const METADATA_NAMES = new Set(['metadata.google.internal', 'metadata', 'metadata.goog']);

const linkLocal = new BlockList();
linkLocal.addSubnet('169.254.0.0', 16, 'ipv4');
linkLocal.addSubnet('fe80::', 10, 'ipv6');
linkLocal.addSubnet('::ffff:a9fe:0', 112, 'ipv6'); // 169.254.0.0/16 written as IPv6
linkLocal.addAddress('fd00:ec2::254', 'ipv6'); // AWS metadata over IPv6

const unspecified = new BlockList();
unspecified.addSubnet('0.0.0.0', 8, 'ipv4');
unspecified.addAddress('::', 'ipv6');
unspecified.addSubnet('::ffff:0:0', 104, 'ipv6');

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');
loopback.addSubnet('::ffff:7f00:0', 104, 'ipv6'); // 127.0.0.0/8 written as IPv6

/** Why vane will not connect to this IP address, or undefined when it may. */
export function refusedAddress(ip: string, policy: OutboundPolicy): string | undefined {
  const family = isIP(ip);
  if (family === 0) return `'${ip}' is not an IP address`;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (linkLocal.check(ip, type)) return `${ip} is a link-local or cloud-metadata address`;
  if (unspecified.check(ip, type)) return `${ip} is an unspecified address`;
  if (!policy.allowLoopback && loopback.check(ip, type))
    return `${ip} is a loopback address (allowLoopbackWebhooks / VANE_ALLOW_LOOPBACK_WEBHOOKS allows it)`;
  return undefined;
}

/** Why vane will not send to this URL (scheme, metadata host names, literal addresses), or undefined. */
export function refusedUrl(url: string, policy: OutboundPolicy): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `scheme ${u.protocol} is not http or https`;
  const host = u.hostname
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();
  if (METADATA_NAMES.has(host)) return `${host} is a cloud-metadata host`;
  if (host === 'localhost' || host.endsWith('.localhost')) {
    return policy.allowLoopback
      ? undefined
      : `${host} is a loopback address (allowLoopbackWebhooks / VANE_ALLOW_LOOPBACK_WEBHOOKS allows it)`;
  }
  if (isIP(host)) return refusedAddress(host, policy);
  return undefined;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;
/** The shape of dns.lookup with `all: true`, replaceable in tests. */
export type Resolver = (
  hostname: string,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

const systemResolver: Resolver = (hostname, cb) => dnsLookup(hostname, { all: true }, cb);

/** Thrown (as the connect error) when a name resolves to a refused address. */
export class RefusedAddressError extends Error {
  code = 'EVANEREFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'RefusedAddressError';
  }
}

/** A `lookup` for net.connect that resolves the name and refuses it when ANY address is refused. */
export function guardedLookup(policy: OutboundPolicy, resolve: Resolver = systemResolver) {
  return (
    hostname: string,
    options: { all?: boolean; family?: number | string },
    callback: LookupCallback,
  ) => {
    resolve(hostname, (err, addresses) => {
      if (err) return callback(err, []);
      const wanted =
        options?.family === 4 || options?.family === 'IPv4'
          ? addresses.filter((a) => a.family === 4)
          : options?.family === 6 || options?.family === 'IPv6'
            ? addresses.filter((a) => a.family === 6)
            : addresses;
      for (const a of addresses) {
        const why = refusedAddress(a.address, policy);
        if (why) return callback(new RefusedAddressError(`${hostname} resolves to ${why}`), []);
      }
      if (wanted.length === 0) {
        const e: NodeJS.ErrnoException = new Error(`${hostname} has no address of the asked family`);
        e.code = 'ENOTFOUND';
        return callback(e, []);
      }
      if (options?.all) return callback(null, wanted);
      return callback(null, wanted[0]!.address, wanted[0]!.family);
    });
  };
}

/** What deliveries use: the policy, and a connection pool whose every connection passes the guard. */
export interface OutboundGuard {
  policy: OutboundPolicy;
  /** Why this URL is refused before any connection, or undefined. */
  refused(url: string): string | undefined;
  dispatcher: Dispatcher;
}

export function createOutboundGuard(policy: OutboundPolicy, resolve?: Resolver): OutboundGuard {
  const dispatcher = new Agent({
    connect: { lookup: guardedLookup(policy, resolve) as never },
    // Keep-alive sockets were checked when they connected; a pool per guard keeps policies apart.
    keepAliveTimeout: 10_000,
  });
  return { policy, refused: (url) => refusedUrl(url, policy), dispatcher };
}

function truthy(v: string | undefined): boolean {
  return v === '1' || v === 'true';
}

// The process-wide guard: from VANE_ALLOW_LOOPBACK_WEBHOOKS at load, replaced once at start-up from
// the parsed configuration (setOutboundPolicy). Specs are validated and deliveries made with it.
let current: OutboundGuard | undefined;
let currentPolicy: OutboundPolicy = { allowLoopback: truthy(process.env.VANE_ALLOW_LOOPBACK_WEBHOOKS) };

/** Sets the process-wide policy (called once at start-up from the configuration). */
export function setOutboundPolicy(policy: OutboundPolicy): void {
  if (current && current.policy.allowLoopback === policy.allowLoopback) return;
  void current?.dispatcher.close().catch(() => {});
  current = undefined;
  currentPolicy = { ...policy };
}

export function outboundPolicy(): OutboundPolicy {
  return currentPolicy;
}

export function outboundGuard(): OutboundGuard {
  current ??= createOutboundGuard(currentPolicy);
  return current;
}

/** Replaces the user:password of every URL in a text, so credentials never reach logs or events. */
export function redactCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, '$1***@');
}
