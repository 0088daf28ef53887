import { createRequire } from 'node:module';
import { createServer } from 'node:net';

// The CommonJS module object, whose `lookup` Fastify calls to resolve the host it listens on (an ES namespace cannot
// be patched).
const dns = createRequire(import.meta.url)('node:dns') as typeof import('node:dns');

/** Whether this host can listen on ::1 (IPv6 loopback). */
export const canListenOnIpv6: boolean = await new Promise<boolean>((resolve) => {
  const probe = createServer().once('error', () => resolve(false));
  probe.listen(0, '::1', () => probe.close(() => resolve(true)));
});

/**
 * Runs `listen` while `localhost` resolves to both 127.0.0.1 and ::1, as on a dual-stack host, so that Fastify
 * listens on both (the second through a server of its own). Where the host's resolver already answers both, nothing
 * is changed; elsewhere (this machine's /etc/hosts maps `localhost` to 127.0.0.1 only) only the answer for
 * `localhost` is, and only during `listen`: servers, sockets and TLS stay real.
 */
export async function withDualStackLocalhost<T>(listen: () => Promise<T>): Promise<T> {
  const resolved = await dns.promises.lookup('localhost', { all: true });
  if (resolved.some((entry) => entry.address === '::1')) return listen();
  const originalLookup = dns.lookup;
  (dns as { lookup: unknown }).lookup = function lookup(hostname: string, options: unknown, callback: unknown) {
    if (hostname === 'localhost' && typeof options === 'object' && (options as { all?: boolean }).all === true) {
      const answer = [
        { address: '127.0.0.1', family: 4 },
        { address: '::1', family: 6 },
      ];
      process.nextTick(callback as (error: null, addresses: typeof answer) => void, null, answer);
      return;
    }
    return (originalLookup as (...args: unknown[]) => void).call(dns, hostname, options, callback);
  };
  try {
    return await listen();
  } finally {
    dns.lookup = originalLookup;
  }
}
