import 'reflect-metadata';
import { Controller, Post } from '@nestjs/common';
import { writeFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { AllowPeers, RequireToken, type MtlsModuleOptions } from '../../lib/index.js';
import { TestPki } from '../../lib/testing/index.js';
import { startMtlsApp } from '../support/app.js';

@Controller('misspelt')
@AllowPeers('spiffe://shop.test/ns/web/sa/frontend')
class MisspeltController {
  @Post()
  @RequireToken('shpo')
  create() {
    return {};
  }
}

@Controller('ok')
class OkController {
  @Post()
  @RequireToken('shop')
  create() {
    return {};
  }
}

describe('token configuration fails closed at startup', () => {
  let options: MtlsModuleOptions;
  let jwksFile: string;

  beforeAll(async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/orders');
    jwksFile = await (await pki.tokenIssuer()).writeJwks();
    options = {
      credentials: server.credentials,
      reload: { enabled: false },
      tokens: { issuers: { shop: { issuer: 'https://issuer.test', audience: 'orders', jwks: jwksFile } } },
    };
  });

  it('refuses a decorator naming an unknown issuer, naming the route and the configured issuers', async () => {
    await expect(startMtlsApp(options, [MisspeltController])).rejects.toMatchObject({
      code: 'ERR_MTLS_CONFIG_INVALID',
      message:
        'MisspeltController.create: @RequireToken(\'shpo\') names no issuer of MtlsModule option "tokens.issuers"; configured: shop',
    });
  });

  it('refuses a JWKS file with a symmetric key, naming the option and the file', async () => {
    const bad = `${jwksFile}.bad.json`;
    await writeFile(bad, JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'k' }] }));
    const broken = { ...options, tokens: { issuers: { shop: { ...options.tokens!.issuers.shop!, jwks: bad } } } };
    await expect(startMtlsApp(broken, [OkController])).rejects.toMatchObject({
      code: 'ERR_MTLS_JWKS_INVALID',
      message: expect.stringContaining(
        `MtlsModule option "tokens.issuers.shop.jwks": ${bad}: keys[0] is a symmetric ("oct") key`,
      ),
    });
  });

  it('refuses a missing JWKS file', async () => {
    const broken = {
      ...options,
      tokens: { issuers: { shop: { ...options.tokens!.issuers.shop!, jwks: `${jwksFile}.missing` } } },
    };
    await expect(startMtlsApp(broken, [OkController])).rejects.toMatchObject({
      code: 'ERR_MTLS_JWKS_INVALID',
      message: expect.stringContaining('cannot be read (ENOENT)'),
    });
  });
});
