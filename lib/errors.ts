/**
 * Typed errors with stable codes. Callers switch on `code`, never on message text;
 * messages are one line and never contain a secret.
 */
import type { StartFailureReason } from './runtime/runtime.js';

export type ErrorCode =
  | 'E_CONFIG'
  | 'E_VALIDATION'
  | 'E_NOT_FOUND'
  | 'E_EXISTS'
  | 'E_VERSION_CONFLICT'
  | 'E_TELEGRAM'
  | 'E_NO_WORKER'
  | 'E_TIMEOUT'
  | 'E_REDIS_UNAVAILABLE'
  | 'E_RUNTIME'
  | 'E_SANDBOX'
  | 'E_INTERNAL'
  // The admin HTTP API (lib/admin-api/): its own refusals, each with its HTTP status there.
  | 'E_UNAUTHORIZED'
  | 'E_FORBIDDEN'
  | 'E_RATE_LIMITED'
  | 'E_METHOD_NOT_ALLOWED'
  | 'E_PAYLOAD_TOO_LARGE'
  | 'E_UNSUPPORTED_MEDIA_TYPE';

export class ZtmError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A bad environment variable: names the variable and what it accepts. */
export class ConfigError extends ZtmError {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super('E_CONFIG', `${variable}: ${message}`);
    this.variable = variable;
  }
}

export class ValidationError extends ZtmError {
  constructor(message: string) {
    super('E_VALIDATION', message);
  }
}

export class NotFoundError extends ZtmError {
  constructor(message: string) {
    super('E_NOT_FOUND', message);
  }
}

/** Create of something that already exists (HTTP 409 semantics). */
export class AlreadyExistsError extends ZtmError {
  constructor(message: string) {
    super('E_EXISTS', message);
  }
}

/** A conditional write lost against a concurrent writer; re-read and retry. */
export class VersionConflictError extends ZtmError {
  constructor(message: string) {
    super('E_VERSION_CONFLICT', message);
  }
}

export class NoWorkerError extends ZtmError {
  constructor(message: string) {
    super('E_NO_WORKER', message);
  }
}

export class TimeoutError extends ZtmError {
  constructor(message: string) {
    super('E_TIMEOUT', message);
  }
}

export class RuntimeError extends ZtmError {
  /** Why a start failed (a StartFailureReason of lib/runtime/runtime.ts), when known. */
  readonly reason: StartFailureReason | undefined;
  constructor(message: string, options?: { cause?: unknown; reason?: StartFailureReason }) {
    super('E_RUNTIME', message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.reason = options?.reason;
  }
}

/** The local Bot API sandbox is missing, unreachable or refused a request (`status`: its HTTP answer). */
export class SandboxError extends ZtmError {
  readonly status: number | undefined;
  constructor(message: string, options?: { status?: number; cause?: unknown }) {
    super('E_SANDBOX', message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = options?.status;
  }
}

/** An admin API request without a valid, unrevoked bearer token (HTTP 401). */
export class UnauthorizedError extends ZtmError {
  constructor(message: string) {
    super('E_UNAUTHORIZED', message);
  }
}

/** An admin API token without the scope a route needs (HTTP 403). */
export class ForbiddenError extends ZtmError {
  constructor(message: string) {
    super('E_FORBIDDEN', message);
  }
}

/** An admin API token over its rate limit (HTTP 429); `retryAfterS`: when a request is allowed again. */
export class RateLimitedError extends ZtmError {
  readonly retryAfterS: number;
  constructor(message: string, retryAfterS: number) {
    super('E_RATE_LIMITED', message);
    this.retryAfterS = retryAfterS;
  }
}

/** Rebuilds a typed error from `{ code, message }` that crossed a queue. */
export function errorFromWire(code: string, message: string): ZtmError {
  switch (code) {
    case 'E_VALIDATION': return new ValidationError(message);
    case 'E_NOT_FOUND': return new NotFoundError(message);
    case 'E_EXISTS': return new AlreadyExistsError(message);
    case 'E_VERSION_CONFLICT': return new VersionConflictError(message);
    case 'E_NO_WORKER': return new NoWorkerError(message);
    case 'E_TIMEOUT': return new TimeoutError(message);
    default: return new ZtmError(isErrorCode(code) ? code : 'E_INTERNAL', message);
  }
}

const CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'E_CONFIG', 'E_VALIDATION', 'E_NOT_FOUND', 'E_EXISTS', 'E_VERSION_CONFLICT', 'E_TELEGRAM',
  'E_NO_WORKER', 'E_TIMEOUT', 'E_REDIS_UNAVAILABLE', 'E_RUNTIME', 'E_SANDBOX', 'E_INTERNAL',
  'E_UNAUTHORIZED', 'E_FORBIDDEN', 'E_RATE_LIMITED', 'E_METHOD_NOT_ALLOWED', 'E_PAYLOAD_TOO_LARGE', 'E_UNSUPPORTED_MEDIA_TYPE',
]);
function isErrorCode(code: string): code is ErrorCode {
  return CODES.has(code);
}
