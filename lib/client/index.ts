export { MtlsHttpClient, MtlsUpstreamClient } from './mtls-http-client.js';
export { MtlsDispatcher } from './mtls-dispatcher.js';
export { MtlsHttpsAgent } from './mtls-https-agent.js';
export type {
  ExpectedPeer,
  HttpMethod,
  MtlsBodyRequestOptions,
  MtlsConnectionOptions,
  MtlsRequestOptions,
  MtlsResponse,
  MtlsUpstreamBodyRequestOptions,
  MtlsUpstreamRequestOptions,
  QueryValue,
} from './client.interfaces.js';
