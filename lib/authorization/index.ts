export {
  authorizeAny,
  authorizeAnyOf,
  authorizeCommonName,
  authorizeDnsName,
  authorizeId,
  authorizeMatch,
  authorizeMemberOf,
  authorizeNone,
  authorizeOneOf,
  compileSpiffePattern,
} from './authorizer.js';
export type { Authorizer } from './authorizer.js';
