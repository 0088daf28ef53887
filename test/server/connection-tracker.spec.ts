import 'reflect-metadata';
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { parseCrlPem } from '../../lib/x509/crl.js';
import { parseCertificatesPem } from '../../lib/x509/certificate.js';
import { peerIdentityFromCertificate } from '../../lib/identity/peer-identity.js';
import { PeerCertificates } from '../../lib/server/connection-admission.js';
import { ConnectionTracker, type AdmittedConnection } from '../../lib/server/connection-tracker.js';
import type { TrustGeneration } from '../../lib/server/trust-generation.js';
import type { MtlsEvent } from '../../lib/observability/mtls-events.js';
import { CertificateAuthority } from '../../lib/testing/index.js';

/** A socket stand-in: the re-check's bookkeeping, measured without thousands of real connections (e2e tests use real ones). */
class FakeSocket extends EventEmitter {
  destroyed = false;
  readonly remoteAddress = '127.0.0.1';
  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      queueMicrotask(() => this.emit('close'));
    }
    return this;
  }
}

describe('ConnectionTracker.recheck', () => {
  it('verifies each chain once per pass, closes only the revoked, in slices, and yields to a newer trust change', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'root', trustDomain: 'shop.test' });
    const root = parseCertificatesPem(ca.rootPem)[0]!;
    const certificates = new PeerCertificates();
    const peers = await Promise.all(Array.from({ length: 20 }, (_, i) => ca.issue({ spiffeId: `spiffe://shop.test/sa/p${i}` })));
    const generation = (id: number, revoked: string[]): Promise<TrustGeneration> =>
      ca.createCrl(revoked).then((pem) => {
        const parsed = parseCrlPem(pem);
        if (!parsed.ok) throw new Error(parsed.reason);
        return { id, roots: [root], crls: [parsed.crl], key: String(id) };
      });
    const events: MtlsEvent[] = [];
    const warnings: string[] = [];
    const tracker = new ConnectionTracker({
      events: { emit: (event) => events.push(event) },
      logRateLimitPerMinute: 5,
      logger: { log: () => undefined, warn: (line: string) => warnings.push(line), error: () => undefined },
      // A yield after every connection whose check took any time at all: the pass below cannot finish in one slice.
      sliceMs: 0,
    });
    const connections: AdmittedConnection[] = [];
    for (let i = 0; i < 5_000; i++) {
      const leaf = certificates.parse(parseCertificatesPem(peers[i % peers.length]!.certPem)[0]!.der);
      const chain = certificates.chain(leaf, []);
      const connection = {
        socket: new FakeSocket(),
        identity: peerIdentityFromCertificate(leaf),
        chain,
        deadline: leaf.notAfter.getTime(),
        generation: 1,
      };
      tracker.track(connection);
      connections.push(connection);
    }
    expect(tracker.size).toBe(5_000);

    const nobody = await tracker.recheck(await generation(2, []));
    expect(nobody).toMatchObject({ checked: 5_000, closed: 0, completed: true });
    expect(nobody.slices).toBeGreaterThan(1);

    // Both generations exist before either re-check starts: nothing is awaited between the two calls, so the older
    // pass cannot run to its end before the newer one supersedes it (it has yielded once at most).
    const [revoking, revokingAgain] = await Promise.all([
      generation(3, [peers[0]!.serialNumber]),
      generation(4, [peers[0]!.serialNumber]),
    ]);
    const superseded = tracker.recheck(revoking);
    const newer = tracker.recheck(revokingAgain);
    expect((await superseded).completed).toBe(false);
    const result = await newer;
    expect(result.completed).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(tracker.size).toBe(5_000 - 250);
    expect(events).toHaveLength(250);
    expect(events[0]).toEqual({ type: 'connection.revoked', reason: 'revoked', peer: 'spiffe://shop.test/sa/p0' });
    // Rate-limited log: the first five lines, then silence.
    expect(warnings).toHaveLength(5);
    expect(connections.filter((c) => c.socket.destroyed)).toHaveLength(250);
    tracker.stop();
  });
});
