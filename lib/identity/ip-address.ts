import { isIP } from 'node:net';

/**
 * IPv4 as given, IPv6 compressed to pure hex groups, so that SANs and requests compare as text; undefined for
 * anything else (zone IDs included). @peculiar/asn1-x509 mis-encodes IPv6 with an IPv4 tail (`::ffff:1.2.3.4`) and
 * the WHATWG URL parser rewrites that tail to hex, so the CA encodes this form.
 */
export function canonicalIp(ip: string): string | undefined {
  const family = isIP(ip);
  if (family === 4) return ip;
  if (family === 6 && !ip.includes('%')) return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  return undefined;
}
