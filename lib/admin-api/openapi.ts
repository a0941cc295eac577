/**
 * The OpenAPI 3.1 document of the admin API, served at /v1/openapi.json. Written out here, not
 * generated from the route table, so test/admin-api-openapi.test.ts can hold the two against each
 * other: every path and method here is served and every route is here, and every answer of a real
 * run validates against its schema here.
 */
import { STATUS_OF } from './http-errors.js';
import { API_SCOPES } from './api-tokens.js';
import { TENANT_STATUSES } from '../registry/tenant.js';
import { BOT_TOKEN_PATTERN, IDLE_TIMEOUT_MAX_S, IDLE_TIMEOUT_MIN_S, TENANT_ID_PATTERN } from '../validate.js';

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ 'application/json': { schema } });
const ok = (description: string, schema: unknown) => ({ description, content: json(schema) });
const err = (description: string) => ({ description, content: json(ref('Error')) });
const str = { type: 'string' };
const isoTime = { type: 'string', format: 'date-time' };

const ERRORS = {
  400: err('Invalid input (E_VALIDATION)'),
  401: err('Missing, invalid or revoked bearer token (E_UNAUTHORIZED)'),
  403: err('The token lacks the scope of the route (E_FORBIDDEN)'),
  429: { ...err('Over the token\'s rate limit (E_RATE_LIMITED)'), headers: { 'Retry-After': { description: 'Seconds until a request is allowed again', schema: { type: 'integer' } } } },
  500: err('Internal error (E_INTERNAL)'),
  502: err('Telegram or the runtime failed the command (E_TELEGRAM, E_RUNTIME)'),
  503: err('No admin worker (janitor) or Redis is unavailable (E_NO_WORKER, E_REDIS_UNAVAILABLE)'),
  504: err('The command did not finish in time (E_TIMEOUT); it may still complete'),
};
const NOT_FOUND = { 404: err('No such tenant (E_NOT_FOUND)') };
const CONFLICT = { 409: err('Already exists, or a concurrent change won (E_EXISTS, E_VERSION_CONFLICT)') };

const tenantIdParam = { name: 'tenant_id', in: 'path', required: true, schema: { type: 'string', pattern: TENANT_ID_PATTERN.source } };

function op(operationId: string, scope: string, summary: string, responses: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { operationId, summary, 'x-scope': scope, ...extra, responses: { ...responses, ...ERRORS } };
}

export const OPENAPI_DOCUMENT = {
  openapi: '3.1.0',
  info: {
    title: 'agentic-tenancy admin API',
    version: '1',
    description: '`ztm`\'s admin commands over HTTP. Bearer tokens come from `ztm api-token create` (shown once, stored hashed); '
      + `scopes: ${API_SCOPES.join(', ')}. Errors are {"error":{"code","message"}} with a stable code. Bot tokens are never returned.`,
  },
  servers: [{ url: '/' }],
  security: [{ bearerAuth: [] }],
  paths: {
    '/healthz': { get: { operationId: 'healthz', summary: 'Liveness', security: [], responses: { 200: { description: 'ok', content: { 'text/plain': { schema: str } } } } } },
    '/readyz': {
      get: {
        operationId: 'readyz', summary: 'Readiness (Redis connected)', security: [],
        responses: { 200: { description: 'ready', content: { 'text/plain': { schema: str } } }, 503: { description: 'not ready', content: { 'text/plain': { schema: str } } } },
      },
    },
    '/v1/openapi.json': { get: { operationId: 'openapi', summary: 'This document', security: [], responses: { 200: ok('The OpenAPI document', { type: 'object' }) } } },
    '/v1/tenants': {
      get: op('listTenants', 'tenants:read', 'One page of tenants (a registry page per call, never the whole table)', { 200: ok('A page; follow next_cursor for the next', ref('TenantPage')) }, {
        parameters: [
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } },
          { name: 'cursor', in: 'query', schema: { type: 'string', maxLength: 2048 }, description: 'next_cursor of the previous page' },
        ],
      }),
      post: op('createTenant', 'tenants:write', 'Create a tenant; registers its webhook when ROUTER_PUBLIC_URL is set', {
        201: { ...ok('Created', ref('TenantCreated')), headers: { Location: { schema: str } } }, ...CONFLICT,
      }, { requestBody: { required: true, content: json(ref('CreateTenantRequest')) } }),
    },
    '/v1/tenants/{tenant_id}': {
      parameters: [tenantIdParam],
      get: op('getTenant', 'tenants:read', 'One tenant', { 200: ok('The tenant', ref('Tenant')), ...NOT_FOUND }),
      patch: op('updateTenant', 'tenants:write', 'Change the bot token (re-registers the webhook) and/or the idle timeout', {
        200: ok('Updated', ref('TenantUpdated')), ...NOT_FOUND, ...CONFLICT,
      }, { requestBody: { required: true, content: json(ref('UpdateTenantRequest')) } }),
      delete: op('deleteTenant', 'tenants:write', 'Delete the tenant and all it left behind (record, pod, secret, caches, webhook)', {
        200: ok('Deleted', ref('TenantDeleted')), ...NOT_FOUND,
      }, { parameters: [{ name: 'purge_state', in: 'query', schema: { type: 'boolean', default: false }, description: 'Also delete the saved agent state' }] }),
    },
    '/v1/tenants/{tenant_id}:wake': {
      parameters: [tenantIdParam],
      post: op('wakeTenant', 'tenants:operate', 'Wake the tenant now and wait until its agent is ready', { 200: ok('Awake', ref('WakeResult')), ...NOT_FOUND }),
    },
    '/v1/tenants/{tenant_id}:stop': {
      parameters: [tenantIdParam],
      post: op('stopTenant', 'tenants:operate', 'Stop the tenant gracefully, saving its state', { 200: ok('Stopped', ref('StopResult')), ...NOT_FOUND }),
    },
    '/v1/tenants/{tenant_id}/webhook': {
      parameters: [tenantIdParam],
      get: op('getWebhook', 'tenants:read', 'What Telegram knows of the tenant\'s webhook (getWebhookInfo)', { 200: ok('Telegram\'s WebhookInfo', ref('WebhookInfo')), ...NOT_FOUND }),
    },
    '/v1/tenants/{tenant_id}/webhook:register': {
      parameters: [tenantIdParam],
      post: op('registerWebhook', 'tenants:operate', 'Register (again) the tenant\'s webhook', { 200: ok('Registered', ref('WebhookOutcome')), ...NOT_FOUND }),
    },
    '/v1/dead-letters': {
      get: op('listDeadLetters', 'dead-letters', 'Updates whose delivery failed for good', { 200: ok('Dead letters, newest first', ref('DeadLetterList')) }, {
        parameters: [
          { name: 'tenant_id', in: 'query', schema: { type: 'string', pattern: TENANT_ID_PATTERN.source } },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000 } },
        ],
      }),
    },
    '/v1/dead-letters/{job_id}:retry': {
      parameters: [{ name: 'job_id', in: 'path', required: true, schema: { type: 'string', minLength: 1, maxLength: 200 } }],
      post: op('retryDeadLetter', 'dead-letters', 'Deliver a dead letter again', { 200: ok('Back in its chat\'s mailbox', ref('DeadLetter')), ...NOT_FOUND }),
    },
    '/v1/dead-letters:retry-all': {
      post: op('retryAllDeadLetters', 'dead-letters', 'Deliver every dead letter again', { 200: ok('How many', { type: 'object', required: ['retried'], additionalProperties: false, properties: { retried: { type: 'integer', minimum: 0 } } }) }),
    },
  },
  components: {
    securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'ztm_<id>_<secret> from ztm api-token create' } },
    schemas: {
      Error: {
        type: 'object', required: ['error'], additionalProperties: false,
        properties: {
          error: {
            type: 'object', required: ['code', 'message'], additionalProperties: false,
            properties: { code: { type: 'string', enum: Object.keys(STATUS_OF) }, message: { type: 'string', maxLength: 500 } },
          },
        },
      },
      Tenant: {
        type: 'object', additionalProperties: false,
        required: ['tenant_id', 'bot_token', 'status', 'idle_timeout_s', 'created_at', 'updated_at', 'version'],
        properties: {
          tenant_id: { type: 'string', pattern: TENANT_ID_PATTERN.source },
          bot_token: { type: 'string', pattern: String.raw`^([0-9]{1,20}:)?\[REDACTED\]$`, description: 'Always redacted: the public bot id at most' },
          status: { type: 'string', enum: [...TENANT_STATUSES] },
          pod_name: str,
          pod_ip: str,
          idle_timeout_s: { type: 'integer', minimum: IDLE_TIMEOUT_MIN_S, maximum: IDLE_TIMEOUT_MAX_S },
          created_at: isoTime,
          updated_at: isoTime,
          last_active_at: isoTime,
          version: { type: 'integer', minimum: 0 },
          incarnation: str,
        },
      },
      WebhookOutcome: {
        type: 'object', required: ['registered'], additionalProperties: false,
        properties: { registered: { type: 'boolean' }, url: str, reason: str },
      },
      CreateTenantRequest: {
        type: 'object', required: ['tenant_id', 'bot_token'], additionalProperties: false,
        properties: {
          tenant_id: { type: 'string', pattern: TENANT_ID_PATTERN.source },
          bot_token: { type: 'string', pattern: BOT_TOKEN_PATTERN.source, writeOnly: true },
          idle_timeout_s: { type: 'integer', minimum: IDLE_TIMEOUT_MIN_S, maximum: IDLE_TIMEOUT_MAX_S, default: 300 },
        },
      },
      UpdateTenantRequest: {
        type: 'object', minProperties: 1, additionalProperties: false,
        properties: {
          bot_token: { type: 'string', pattern: BOT_TOKEN_PATTERN.source, writeOnly: true },
          idle_timeout_s: { type: 'integer', minimum: IDLE_TIMEOUT_MIN_S, maximum: IDLE_TIMEOUT_MAX_S },
        },
      },
      TenantCreated: { type: 'object', required: ['tenant', 'webhook'], additionalProperties: false, properties: { tenant: ref('Tenant'), webhook: ref('WebhookOutcome') } },
      TenantUpdated: { type: 'object', required: ['tenant'], additionalProperties: false, properties: { tenant: ref('Tenant'), webhook: ref('WebhookOutcome') } },
      TenantPage: {
        type: 'object', required: ['items'], additionalProperties: false,
        properties: { items: { type: 'array', items: ref('Tenant') }, next_cursor: { type: 'string' } },
      },
      TenantDeleted: {
        type: 'object', required: ['deleted', 'steps'], additionalProperties: false,
        properties: { deleted: { const: true }, steps: { type: 'array', items: str } },
      },
      WakeResult: {
        type: 'object', required: ['tenant_id', 'address', 'ms'], additionalProperties: false,
        properties: { tenant_id: str, address: { type: 'string', description: 'host:port of the ready agent' }, ms: { type: 'integer', minimum: 0 } },
      },
      StopResult: {
        type: 'object', required: ['tenant_id', 'stopped', 'status'], additionalProperties: false,
        properties: { tenant_id: str, stopped: { type: 'boolean' }, status: { type: 'string', enum: [...TENANT_STATUSES] } },
      },
      WebhookInfo: {
        type: 'object', required: ['url'], additionalProperties: true,
        properties: { url: str, has_custom_certificate: { type: 'boolean' }, pending_update_count: { type: 'integer' }, allowed_updates: { type: 'array', items: str } },
      },
      DeadLetter: {
        type: 'object', required: ['id', 'tenant_id', 'chat_id', 'update_id', 'failed_at', 'attempts', 'reason'], additionalProperties: false,
        properties: { id: str, tenant_id: str, chat_id: str, update_id: { type: 'integer' }, failed_at: isoTime, attempts: { type: 'integer' }, reason: str },
      },
      DeadLetterList: { type: 'object', required: ['items'], additionalProperties: false, properties: { items: { type: 'array', items: ref('DeadLetter') } } },
    },
  },
} as const;
