import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { RequestMethod } from '@nestjs/common';

/** One row of the startup table: a route, its handler and its rule as written. */
export interface RouteTableRow {
  /** `GET /stock/:sku`, as declared on the controller and method (without a global prefix or version). */
  readonly route: string;
  /** `StockController.get`: the label denial logs and metrics use. */
  readonly handler: string;
  /** `@AllowPeers(orders)`, or `defaultPolicy 'deny'`. */
  readonly rule: string;
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- a controller class or a handler function
type Target = Function;

function paths(value: unknown): string[] {
  if (Array.isArray(value)) return value.length > 0 ? value.map(String) : [''];
  return [value === undefined ? '' : String(value)];
}

function joinPath(...parts: string[]): string {
  const joined = parts
    .flatMap((part) => part.split('/'))
    .filter((segment) => segment !== '')
    .join('/');
  return `/${joined}`;
}

/**
 * The HTTP routes a handler is mapped to, read from Nest's own route metadata, e.g. `['GET /stock/:sku']`; empty for
 * a method that is not a route (a helper, or a microservice handler).
 */
export function routesOf(controller: Target, handler: Target): string[] {
  const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
  const handlerPath = Reflect.getMetadata(PATH_METADATA, handler) as unknown;
  if (method === undefined || handlerPath === undefined) return [];
  const verb = RequestMethod[method] ?? String(method);
  const controllerPaths = paths(Reflect.getMetadata(PATH_METADATA, controller));
  return controllerPaths.flatMap((base) => paths(handlerPath).map((path) => `${verb} ${joinPath(base, path)}`));
}

/**
 * The table logged at startup: every route, its handler and its rule, with the mode and default policy in the title,
 * and the named peers the rules use, so one look tells who may call what.
 */
export function formatRouteTable(
  rows: readonly RouteTableRow[],
  settings: { mode: string; defaultPolicy: string; namedPeers: ReadonlyMap<string, string> },
): string {
  const title = `mTLS routes (mode '${settings.mode}', defaultPolicy '${settings.defaultPolicy}'):`;
  const header: RouteTableRow = { route: 'route', handler: 'handler', rule: 'rule' };
  const all = [header, ...rows];
  const width = (key: keyof RouteTableRow) => Math.max(...all.map((row) => row[key].length));
  const [routeWidth, handlerWidth] = [width('route'), width('handler')];
  const lines = all.map((row) => `  ${row.route.padEnd(routeWidth)}  ${row.handler.padEnd(handlerWidth)}  ${row.rule}`);
  if (rows.length === 0) lines.push('  (no routes)');
  const peers = [...settings.namedPeers].map(([name, id]) => `  ${name} = ${id}`);
  return [title, ...lines, ...(peers.length > 0 ? ['named peers:', ...peers] : [])].join('\n');
}
