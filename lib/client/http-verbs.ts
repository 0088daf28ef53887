import type { HttpMethod, MtlsResponse } from './client.interfaces.js';

/**
 * The verb methods of both clients, written once over their `send`. `Target` is a URL for `MtlsHttpClient` and a
 * path for an upstream client; `RequestOptions` are the options of `request()`, which carry the body.
 */
export abstract class HttpVerbs<Target, RequestOptions extends { body?: unknown }> {
  /** @internal Checks the arguments and sends; rejects with an MtlsError, never throws. */
  protected abstract send<T>(
    method: HttpMethod,
    target: Target,
    options: Omit<RequestOptions, 'body'> | undefined,
    body: unknown,
  ): Promise<MtlsResponse<T>>;

  /** Sends a request and collects the response. */
  request<T = unknown>(method: HttpMethod, target: Target, options?: RequestOptions): Promise<MtlsResponse<T>> {
    return this.send(method, target, options, options?.body);
  }

  /** GET `target`. */
  get<T = unknown>(target: Target, options?: Omit<RequestOptions, 'body'>): Promise<MtlsResponse<T>> {
    return this.send('GET', target, options, undefined);
  }

  /** DELETE `target`. */
  delete<T = unknown>(target: Target, options?: Omit<RequestOptions, 'body'>): Promise<MtlsResponse<T>> {
    return this.send('DELETE', target, options, undefined);
  }

  /** HEAD `target`; the response's body is empty. */
  head(target: Target, options?: Omit<RequestOptions, 'body'>): Promise<MtlsResponse<undefined>> {
    return this.send('HEAD', target, options, undefined);
  }

  /** POST `body` (JSON unless a string, bytes or a stream) to `target`. */
  post<T = unknown>(target: Target, body?: unknown, options?: Omit<RequestOptions, 'body'>): Promise<MtlsResponse<T>> {
    return this.send('POST', target, options, body);
  }

  /** PUT `body` (JSON unless a string, bytes or a stream) to `target`. */
  put<T = unknown>(target: Target, body?: unknown, options?: Omit<RequestOptions, 'body'>): Promise<MtlsResponse<T>> {
    return this.send('PUT', target, options, body);
  }

  /** PATCH `body` (JSON unless a string, bytes or a stream) to `target`. */
  patch<T = unknown>(target: Target, body?: unknown, options?: Omit<RequestOptions, 'body'>): Promise<MtlsResponse<T>> {
    return this.send('PATCH', target, options, body);
  }
}
