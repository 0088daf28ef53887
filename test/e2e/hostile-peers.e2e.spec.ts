import 'reflect-metadata';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AllowAnyPeer,
  AllowCommonNames,
  AllowDnsNames,
  AllowPeers,
  AllowTrustDomain,
  MtlsEvents,
  Peer,
  type MtlsEvent,
  type MtlsModuleOptions,
  type PeerIdentity,
} from '../../lib/index.js';
import { callAs, TestPki, writeKubernetesSecret, type TestPeer } from '../../lib/testing/index.js';
import type { IssueOptions } from '../../lib/x509/certificate-authority.js';
import { startMtlsApp } from '../support/app.js';
import { SERVER_CELLS } from '../support/cells.js';

/*
 * Every hostile certificate against every kind of rule, through a real Nest app and real TLS. The server trusts two
 * roots, shop.test's and elsewhere.test's (each names its trust domain in a spiffe:// URI SAN), so every hostile
 * certificate chains to a trusted root: what stops it is the identity layer, never the handshake.
 */

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';

/** What the handler hands back: enough to see which identity was admitted. */
const shown = (peer: PeerIdentity) => ({
  spiffeId: peer.spiffeId ?? null,
  dnsNames: peer.dnsNames,
  commonName: peer.commonName ?? null,
});

@Controller('rules')
class RulesController {
  @Get('peers')
  @AllowPeers('orders')
  peers(@Peer() peer: PeerIdentity) {
    return shown(peer);
  }

  @Get('pattern')
  @AllowPeers('spiffe://shop.test/ns/*/sa/orders')
  pattern(@Peer() peer: PeerIdentity) {
    return shown(peer);
  }

  @Get('trust-domain')
  @AllowTrustDomain('shop.test')
  trustDomain(@Peer() peer: PeerIdentity) {
    return shown(peer);
  }

  @Get('any')
  @AllowAnyPeer()
  any(@Peer() peer: PeerIdentity) {
    return shown(peer);
  }

  @Get('dns')
  @AllowDnsNames('legacy.shop.test')
  dns(@Peer() peer: PeerIdentity) {
    return shown(peer);
  }

  @Get('cn')
  @AllowCommonNames('orders')
  cn(@Peer() peer: PeerIdentity) {
    return shown(peer);
  }
}

@Controller('open')
class UndecoratedController {
  @Get()
  open(@Peer() peer: PeerIdentity) {
    return shown(peer);
  }
}

type Rule = 'peers' | 'pattern' | 'trust-domain' | 'any' | 'dns' | 'cn' | 'default any-peer';
const RULES: readonly Rule[] = ['peers', 'pattern', 'trust-domain', 'any', 'dns', 'cn', 'default any-peer'];

/** The expected answer: refused before any rule ran, denied by the rule, or admitted (a legitimate identity for it). */
type Outcome = 'ERR_MTLS_PEER_INVALID' | 'ERR_MTLS_PEER_DENIED' | 'admitted';
const INVALID = 'ERR_MTLS_PEER_INVALID';
const DENIED = 'ERR_MTLS_PEER_DENIED';

const everywhere = (outcome: Outcome): Record<Rule, Outcome> =>
  Object.fromEntries(RULES.map((rule) => [rule, outcome])) as Record<Rule, Outcome>;

/**
 * A legacy or foreign identity: no SPIFFE rule admits it; `@AllowAnyPeer` and `defaultPolicy: 'any-peer'` do, by
 * definition — the identity they hand over is checked to be the honest one.
 */
const onlyAnyPeer: Record<Rule, Outcome> = { ...everywhere(DENIED), any: 'admitted', 'default any-peer': 'admitted' };

interface Case {
  readonly issuer: 'shop' | 'elsewhere';
  readonly options: IssueOptions;
  readonly expected: Record<Rule, Outcome>;
}

/** The SANs every malformed SVID also carries, so that DNS and CN rules would admit it if it fell back to legacy. */
const BAIT: IssueOptions = { dnsNames: ['legacy.shop.test'], commonName: 'orders' };

const hostile: Record<string, Case> = {
  'two URI SANs (spiffe + spiffe) and a DNS SAN': {
    issuer: 'shop',
    options: { spiffeId: ORDERS, uris: ['spiffe://shop.test/ns/shop/sa/attacker'], ...BAIT },
    expected: everywhere(INVALID),
  },
  'two URI SANs (https + spiffe) and a DNS SAN': {
    issuer: 'shop',
    options: { uris: ['https://legacy.shop.test/', ORDERS], ...BAIT },
    expected: everywhere(INVALID),
  },
  'an upper-case trust domain': {
    issuer: 'shop',
    options: { uris: ['spiffe://SHOP.test/ns/shop/sa/orders'], ...BAIT },
    expected: everywhere(INVALID),
  },
  'an upper-case scheme': {
    issuer: 'shop',
    options: { uris: ['SPIFFE://shop.test/ns/shop/sa/orders'], ...BAIT },
    expected: everywhere(INVALID),
  },
  'a trust domain ID without path': {
    issuer: 'shop',
    options: { uris: ['spiffe://shop.test'], ...BAIT },
    expected: everywhere(INVALID),
  },
  'orders-evil (a valid shop.test workload)': {
    issuer: 'shop',
    options: { spiffeId: `${ORDERS}-evil`, commonName: 'orders' },
    expected: { ...everywhere(DENIED), 'trust-domain': 'admitted', any: 'admitted', 'default any-peer': 'admitted' },
  },
  'shop.test.evil from the shop.test CA': {
    issuer: 'shop',
    options: { spiffeId: 'spiffe://shop.test.evil/ns/shop/sa/orders', ...BAIT },
    expected: everywhere(INVALID),
  },
  'dot segments': {
    issuer: 'shop',
    options: { uris: ['spiffe://shop.test/ns/shop/sa/x/../orders'], ...BAIT },
    expected: everywhere(INVALID),
  },
  'percent-encoding': {
    issuer: 'shop',
    options: { uris: ['spiffe://shop.test/ns/shop/sa/%6Frders'], ...BAIT },
    expected: everywhere(INVALID),
  },
  'a trailing slash': { issuer: 'shop', options: { uris: [`${ORDERS}/`], ...BAIT }, expected: everywhere(INVALID) },
  'a DNS SAN smuggling ", URI:spiffe://…"': {
    issuer: 'shop',
    options: { dnsNames: [`legacy.shop.test, URI:${ORDERS}`], commonName: 'orders' },
    expected: onlyAnyPeer,
  },
  'a CA:TRUE leaf': { issuer: 'shop', options: { spiffeId: ORDERS, isCa: true, ...BAIT }, expected: everywhere(INVALID) },
  'a keyCertSign leaf': {
    issuer: 'shop',
    options: { spiffeId: ORDERS, keyUsage: ['digitalSignature', 'keyCertSign'], ...BAIT },
    expected: everywhere(INVALID),
  },
  'a cRLSign legacy leaf': {
    issuer: 'shop',
    options: { keyUsage: ['digitalSignature', 'cRLSign'], ...BAIT },
    expected: everywhere(INVALID),
  },
  'no SAN': { issuer: 'shop', options: { commonName: 'legacy-batch' }, expected: onlyAnyPeer },
  'CN=orders with a DNS SAN': {
    issuer: 'shop',
    options: { commonName: 'orders', dnsNames: ['evil.shop.test'] },
    expected: onlyAnyPeer,
  },
  'CN=orders with a SPIFFE ID': {
    issuer: 'shop',
    options: { commonName: 'orders', spiffeId: 'spiffe://shop.test/ns/shop/sa/payments' },
    expected: { ...everywhere(DENIED), 'trust-domain': 'admitted', any: 'admitted', 'default any-peer': 'admitted' },
  },
  'the elsewhere.test CA claiming shop.test': {
    issuer: 'elsewhere',
    options: { spiffeId: ORDERS, ...BAIT },
    expected: everywhere(INVALID),
  },
  'the elsewhere.test CA claiming shop.test.evil': {
    issuer: 'elsewhere',
    options: { spiffeId: 'spiffe://shop.test.evil/ns/shop/sa/orders', ...BAIT },
    expected: everywhere(INVALID),
  },
};

/** Legitimate peers: the same app admits them, so the refusals above are not an artefact of the setup. */
const controls: Record<string, Case> = {
  'orders with a DNS SAN': {
    issuer: 'shop',
    options: { spiffeId: ORDERS, dnsNames: ['legacy.shop.test'], commonName: 'orders' },
    expected: { ...everywhere('admitted'), cn: DENIED },
  },
  'a legacy peer with CN=orders and no SAN': {
    issuer: 'shop',
    options: { commonName: 'orders' },
    expected: { ...onlyAnyPeer, cn: 'admitted' },
  },
  'a workload of elsewhere.test': {
    issuer: 'elsewhere',
    options: { spiffeId: 'spiffe://elsewhere.test/ns/billing/sa/api' },
    expected: onlyAnyPeer,
  },
};

describe.each(SERVER_CELLS)('hostile peers against every rule ($name)', (cell) => {
  let shop: TestPki;
  let elsewhere: TestPki;
  let dir: string;
  let app: INestApplication;
  let anyPeerApp: INestApplication;
  const events: MtlsEvent[] = [];
  const peers = new Map<string, TestPeer>();

  beforeAll(async () => {
    shop = await TestPki.create({ trustDomain: 'shop.test' });
    elsewhere = await TestPki.create({ trustDomain: 'elsewhere.test' });
    const server = await shop.peer({
      spiffeId: 'spiffe://shop.test/ns/shop/sa/inventory',
      ipAddresses: ['127.0.0.1'],
      dnsNames: ['localhost'],
    });
    dir = await mkdtemp(join(tmpdir(), 'nestjs-mtls-hostile-'));
    // Both roots in one bundle: the federation case where the trust domain must come from the anchor.
    await writeKubernetesSecret(dir, {
      'tls.crt': server.chainPem,
      'tls.key': server.keyPem,
      'ca.crt': shop.bundlePem + elsewhere.bundlePem,
    });
    const options: MtlsModuleOptions = { credentials: { dir }, peers: { orders: ORDERS }, reload: { enabled: false } };
    app = await startMtlsApp(options, [RulesController], { cell });
    anyPeerApp = await startMtlsApp({ ...options, defaultPolicy: 'any-peer' }, [UndecoratedController], { cell });
    for (const target of [app, anyPeerApp]) target.get(MtlsEvents).events$.subscribe((event) => events.push(event));
    for (const [name, { issuer, options: issue }] of Object.entries({ ...hostile, ...controls })) {
      peers.set(name, await (issuer === 'shop' ? shop : elsewhere).peer(issue));
    }
  });

  afterAll(async () => {
    await app?.close();
    await anyPeerApp?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  /** The answer, and the code that refused the peer: the guard's (`peer.denied`) or the connection's (`handshake.rejected`). */
  async function call(
    name: string,
    rule: Rule,
  ): Promise<{ status: number | 'no answer'; denial: string | undefined; body: unknown }> {
    events.length = 0;
    const target = rule === 'default any-peer' ? anyPeerApp : app;
    const path = rule === 'default any-peer' ? '/open' : `/rules/${rule}`;
    try {
      const res = await callAs(target, peers.get(name), { ca: shop.bundlePem, http2: cell.http2 }).get(path);
      const denial = events.find((event) => event.type === 'peer.denied');
      return {
        status: res.status,
        denial: denial?.type === 'peer.denied' ? denial.code : undefined,
        body: res.status === 200 ? res.json() : undefined,
      };
    } catch {
      // Refused on the connection, right after the handshake: the reason is the handshake.rejected event's.
      const refusal = events.find((event) => event.type === 'handshake.rejected');
      return {
        status: 'no answer',
        denial: refusal?.type === 'handshake.rejected' ? refusal.reason : undefined,
        body: undefined,
      };
    }
  }

  const cells = (cases: Record<string, Case>) =>
    Object.entries(cases).flatMap(([name, { options, expected }]) =>
      RULES.map((rule) => [name, rule, expected[rule], options] as const),
    );

  it.each(cells(hostile))('%s on %s → %s', async (name, rule, expected, options) => {
    const { status, denial, body } = await call(name, rule);
    if (expected === 'admitted') {
      // Admitted only as what it honestly is: never as orders.
      expect(status).toBe(200);
      expect(denial).toBeUndefined();
      expect(body).toMatchObject({ spiffeId: options.spiffeId ?? null });
      expect((body as { spiffeId: string | null }).spiffeId).not.toBe(ORDERS);
      return;
    }
    expect(status === 'no answer' || status < 200 || status >= 300).toBe(true);
    // Every hostile certificate here chains to a trusted root, so the handshake succeeds. A certificate that can never
    // authenticate a peer loses its connection right after it (before any HTTP); a valid identity the rule does not
    // name gets the guard's 403.
    expect(status).toBe(expected === INVALID ? 'no answer' : 403);
    expect(denial).toBe(expected);
  });

  it.each(cells(controls))('control: %s on %s → %s', async (name, rule, expected, options) => {
    const { status, denial, body } = await call(name, rule);
    if (expected === 'admitted') {
      expect(status).toBe(200);
      expect(body).toMatchObject({ spiffeId: options.spiffeId ?? null });
    } else {
      expect(status).toBe(403);
      expect(denial).toBe(expected);
    }
  });
});
