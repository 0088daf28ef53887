/** The string `code` of a thrown value (Node's `ENOENT`, undici's `UND_ERR_*`, ours `ERR_MTLS_*`), else undefined. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
