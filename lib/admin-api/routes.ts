/**
 * The admin API's routes: each is one `ztm` admin command (lib/admin/admin-protocol.ts) as a REST
 * resource. A route only says where the command's arguments come from (path, query, body) and which
 * scope it needs; the arguments are then validated by parseAdminArgs, the janitor's own check, so the
 * API and `ztm` accept exactly the same values. The OpenAPI document (openapi.ts) describes these
 * routes and test/admin-api-openapi.test.ts holds the two together.
 */
import { ValidationError } from '../errors.js';
import type { AdminCommand } from '../admin/admin-protocol.js';
import type { ApiScope } from './api-tokens.js';

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export interface RouteInput {
  params: Record<string, string>;
  query: URLSearchParams;
  /** The parsed JSON body (routes without `body` get none). */
  body: Record<string, unknown> | undefined;
}

export interface Route {
  method: HttpMethod;
  /** OpenAPI path template, e.g. `/v1/tenants/{tenant_id}:wake`. */
  path: string;
  operationId: string;
  scope: ApiScope;
  command: AdminCommand;
  /** Query parameters it reads; any other is refused (a typo must not be a silent no-op). */
  query?: readonly string[];
  /** Body fields it reads; present: the route takes a JSON object body. */
  body?: readonly string[];
  /** The command's arguments (not yet validated: parseAdminArgs does that). */
  args(input: RouteInput): Record<string, unknown>;
  /** Success status (default 200). */
  status?: number;
  /** How long the command may run (default 60 s; a wake or stop starts or checkpoints an agent). */
  timeoutS?: number;
  /** The command's result as the response body (default: as is). */
  respond?(result: unknown): unknown;
}

/** A whole number typed in a query string; anything else is passed on for the validator to refuse. */
function intParam(v: string | null): number | string | undefined {
  if (v === null) return undefined;
  return /^[0-9]{1,9}$/.test(v) ? Number(v) : v;
}

function boolParam(v: string | null, name: string): boolean | undefined {
  if (v === null) return undefined;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new ValidationError(`${name} must be true or false`);
}

function pick(body: Record<string, unknown> | undefined, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (body?.[k] !== undefined) out[k] = body[k];
  return out;
}

const tenantPath = (p: RouteInput['params']) => ({ tenant_id: p.tenant_id });

export const ROUTES: readonly Route[] = [
  {
    method: 'GET', path: '/v1/tenants', operationId: 'listTenants', scope: 'tenants:read', command: 'tenant.list', query: ['limit', 'cursor'],
    args: ({ query }) => ({ limit: intParam(query.get('limit')) ?? 50, ...(query.get('cursor') !== null ? { cursor: query.get('cursor') } : {}) }),
    respond: (r) => {
      const page = r as { items: unknown[]; cursor?: string };
      return { items: page.items, ...(page.cursor ? { next_cursor: page.cursor } : {}) };
    },
  },
  {
    method: 'POST', path: '/v1/tenants', operationId: 'createTenant', scope: 'tenants:write', command: 'tenant.create',
    body: ['tenant_id', 'bot_token', 'idle_timeout_s'], status: 201, args: ({ body }) => pick(body, ['tenant_id', 'bot_token', 'idle_timeout_s']),
  },
  { method: 'GET', path: '/v1/tenants/{tenant_id}', operationId: 'getTenant', scope: 'tenants:read', command: 'tenant.get', args: ({ params }) => tenantPath(params) },
  {
    method: 'PATCH', path: '/v1/tenants/{tenant_id}', operationId: 'updateTenant', scope: 'tenants:write', command: 'tenant.update',
    body: ['bot_token', 'idle_timeout_s'], args: ({ params, body }) => ({ ...pick(body, ['bot_token', 'idle_timeout_s']), ...tenantPath(params) }),
  },
  {
    method: 'DELETE', path: '/v1/tenants/{tenant_id}', operationId: 'deleteTenant', scope: 'tenants:write', command: 'tenant.delete', query: ['purge_state'], timeoutS: 300,
    args: ({ params, query }) => ({ ...tenantPath(params), purge_state: boolParam(query.get('purge_state'), 'purge_state') === true }),
  },
  {
    method: 'POST', path: '/v1/tenants/{tenant_id}:wake', operationId: 'wakeTenant', scope: 'tenants:operate', command: 'tenant.wake', timeoutS: 900,
    args: ({ params }) => tenantPath(params),
  },
  {
    method: 'POST', path: '/v1/tenants/{tenant_id}:stop', operationId: 'stopTenant', scope: 'tenants:operate', command: 'tenant.sleep', timeoutS: 300,
    args: ({ params }) => tenantPath(params),
  },
  { method: 'GET', path: '/v1/tenants/{tenant_id}/webhook', operationId: 'getWebhook', scope: 'tenants:read', command: 'webhook.info', args: ({ params }) => tenantPath(params) },
  {
    method: 'POST', path: '/v1/tenants/{tenant_id}/webhook:register', operationId: 'registerWebhook', scope: 'tenants:operate', command: 'webhook.register',
    args: ({ params }) => tenantPath(params),
  },
  {
    method: 'GET', path: '/v1/dead-letters', operationId: 'listDeadLetters', scope: 'dead-letters', command: 'dead.list', query: ['tenant_id', 'limit'],
    args: ({ query }) => ({
      ...(query.get('tenant_id') !== null ? { tenant_id: query.get('tenant_id') } : {}),
      ...(query.get('limit') !== null ? { limit: intParam(query.get('limit')) } : {}),
    }),
  },
  {
    method: 'POST', path: '/v1/dead-letters/{job_id}:retry', operationId: 'retryDeadLetter', scope: 'dead-letters', command: 'dead.retry',
    args: ({ params }) => ({ job_id: params.job_id }),
  },
  { method: 'POST', path: '/v1/dead-letters:retry-all', operationId: 'retryAllDeadLetters', scope: 'dead-letters', command: 'dead.retry', timeoutS: 300, args: () => ({ all: true }) },
];

interface Compiled {
  route: Route;
  pattern: RegExp;
  names: string[];
}

/** `/v1/tenants/{tenant_id}:wake` → a regex whose groups are the parameters (none spans `/` or `:`). */
function compile(route: Route): Compiled {
  const names: string[] = [];
  const source = route.path.split(/(\{[a-z_]+\})/).map((part) => {
    const m = /^\{([a-z_]+)\}$/.exec(part);
    if (!m) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    names.push(m[1] as string);
    return '([^/:]+)';
  }).join('');
  return { route, pattern: new RegExp(`^${source}$`), names };
}

export type RouteMatch =
  | { kind: 'route'; route: Route; params: Record<string, string> }
  /** The path is one of ours, the method is not (HTTP 405 with Allow). */
  | { kind: 'method'; allow: HttpMethod[] }
  | { kind: 'none' };

export class Router {
  private readonly compiled: Compiled[];
  constructor(routes: readonly Route[] = ROUTES) {
    this.compiled = routes.map(compile);
  }

  match(method: string, pathname: string): RouteMatch {
    const allow: HttpMethod[] = [];
    for (const c of this.compiled) {
      const m = c.pattern.exec(pathname);
      if (!m) continue;
      if (c.route.method !== method) {
        allow.push(c.route.method);
        continue;
      }
      const params: Record<string, string> = {};
      try {
        c.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1] as string)));
      } catch {
        throw new ValidationError('malformed percent-encoding in the path');
      }
      return { kind: 'route', route: c.route, params };
    }
    return allow.length ? { kind: 'method', allow } : { kind: 'none' };
  }
}
