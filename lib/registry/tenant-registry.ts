/**
 * The tenant registry: one DynamoDB item per tenant, keyed by tenant_id. Every write is
 * conditional so several platform replicas can share the table without lost updates:
 * versioned writes check `version = :expected`, creates check `attribute_not_exists`.
 */
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand, UpdateCommand,
  type TranslateConfig,
} from '@aws-sdk/lib-dynamodb';
import {
  AlreadyExistsError, NotFoundError, TimeoutError, ValidationError, VersionConflictError, ZtmError,
} from '../errors.js';
import { redactSecrets } from '../redact.js';
import { assertBotToken, assertIdleTimeout, assertTenantId, IDLE_TIMEOUT_DEFAULT_S } from '../validate.js';
import {
  assertIsoTimestamp, assertTenantStatus, assertTransition, newIncarnation, tenantFromItem, validateTenantPatch,
  type Tenant, type TenantPatch, type TenantStatus,
} from './tenant.js';

export interface TenantRegistryOptions {
  client: DynamoDBClient | DynamoDBDocumentClient;
  table: string;
}
export interface CreateTenantInput {
  tenant_id: string;
  bot_token: string;
  idle_timeout_s?: number;
}
export interface ListOptions { limit?: number; cursor?: string }
export interface TenantPage { items: Tenant[]; cursor?: string }
export interface TransitionExtra {
  pod_name?: string | null;
  pod_ip?: string | null;
  /** Precondition: the current status must be one of these, else VersionConflictError. */
  from?: TenantStatus[];
}
export type MutateFn = (current: Tenant) => TenantPatch | undefined | Promise<TenantPatch | undefined>;

const TABLE_NAME_PATTERN = /^[A-Za-z0-9_.-]{3,255}$/;
const LIST_LIMIT_DEFAULT = 100;
const LIST_LIMIT_MAX = 1000;
const BACKOFF_BASE_MS = 10;
const BACKOFF_CAP_MS = 250;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const errName = (err: unknown) => (err instanceof Error ? err.name : '');
// Matched by name, not instanceof: a second copy of the SDK in node_modules has other classes.
const isConditionFailed = (err: unknown) => errName(err) === 'ConditionalCheckFailedException';

function assertPositiveInt(value: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new ValidationError(`invalid ${what}: expected a whole number from 1 to ${max}`);
  }
  return value;
}

/** Cursor = base64url JSON of the last evaluated key; opaque to callers, checked on the way in. */
function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify({ k: key.tenant_id }), 'utf8').toString('base64url');
}
function decodeCursor(cursor: string): Record<string, string> {
  const invalid = () => new ValidationError('invalid cursor: pass back the cursor returned by the previous list call');
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) throw invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  const k = (parsed as { k?: unknown } | null)?.k;
  if (typeof parsed !== 'object' || parsed === null || Object.keys(parsed).length !== 1 || typeof k !== 'string') {
    throw invalid();
  }
  try {
    return { tenant_id: assertTenantId(k) };
  } catch {
    throw invalid();
  }
}

export class TenantRegistry {
  readonly table: string;
  private readonly doc: DynamoDBDocumentClient;
  /** For table-level calls. A document client shares its base client's config and middleware
   *  stack, so native commands sent through it behave exactly as through the base client. */
  private readonly control: DynamoDBClient;

  constructor(options: TenantRegistryOptions) {
    if (options === null || typeof options !== 'object') {
      throw new ValidationError('TenantRegistry: options must be an object with client and table');
    }
    const { client, table } = options;
    if (typeof table !== 'string' || !TABLE_NAME_PATTERN.test(table)) {
      throw new ValidationError('TenantRegistry: table must be 3-255 characters of A-Z a-z 0-9 _ . -');
    }
    if (client instanceof DynamoDBDocumentClient) {
      this.doc = client;
      this.control = client as unknown as DynamoDBClient;
    } else if (client instanceof DynamoDBClient) {
      // DynamoDBDocumentClient.from() writes translateConfig into the *shared* client config;
      // pass the existing one back so wrapping here never changes another wrapper's behaviour.
      // Our reads and writes never depend on translate options (no undefined values are sent,
      // numbers are decoded with Number()).
      const existing = (client.config as { translateConfig?: TranslateConfig }).translateConfig;
      this.doc = DynamoDBDocumentClient.from(client, existing);
      this.control = client;
    } else {
      throw new ValidationError('TenantRegistry: client must be a DynamoDBClient or DynamoDBDocumentClient');
    }
    this.table = table;
  }

  /** Creates the table if missing and waits until ACTIVE. Safe to race from several processes. */
  async ensureTable(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = assertPositiveInt(options.timeoutMs ?? 30_000, 'ensureTable timeoutMs');
    const deadline = Date.now() + timeoutMs;
    let status = await this.describeStatus();
    if (status === undefined) {
      try {
        await this.control.send(new CreateTableCommand({
          TableName: this.table,
          AttributeDefinitions: [{ AttributeName: 'tenant_id', AttributeType: 'S' }],
          KeySchema: [{ AttributeName: 'tenant_id', KeyType: 'HASH' }],
          BillingMode: 'PAY_PER_REQUEST',
        }));
      } catch (err) {
        // Another replica created it first: fine, wait for ACTIVE below like everyone else.
        if (errName(err) !== 'ResourceInUseException') throw this.storageError('CreateTable', err);
      }
      status = await this.describeStatus();
    }
    for (let delay = 50; status !== 'ACTIVE'; delay = Math.min(delay * 2, 1000)) {
      if (Date.now() + delay > deadline) {
        throw new TimeoutError(`table ${this.table} not ACTIVE after ${timeoutMs} ms (status ${status ?? 'missing'})`);
      }
      await sleep(delay);
      status = await this.describeStatus();
    }
  }

  private async describeStatus(): Promise<string | undefined> {
    try {
      const out = await this.control.send(new DescribeTableCommand({ TableName: this.table }));
      const key = out.Table?.KeySchema;
      if (key && (key.length !== 1 || key[0]?.AttributeName !== 'tenant_id')) {
        throw new ZtmError('E_CONFIG', `table ${this.table} exists with a key other than tenant_id`);
      }
      return out.Table?.TableStatus ?? 'UNKNOWN';
    } catch (err) {
      if (errName(err) === 'ResourceNotFoundException') return undefined;
      throw this.storageError('DescribeTable', err);
    }
  }

  async create(input: CreateTenantInput): Promise<Tenant> {
    if (input === null || typeof input !== 'object') throw new ValidationError('invalid tenant: expected an object');
    for (const key of Object.keys(input)) {
      if (!['tenant_id', 'bot_token', 'idle_timeout_s'].includes(key)) {
        throw new ValidationError(`invalid tenant: unknown field ${JSON.stringify(key.slice(0, 40))}`);
      }
    }
    const tenant_id = assertTenantId(input.tenant_id);
    const bot_token = assertBotToken(input.bot_token);
    const idle_timeout_s = input.idle_timeout_s === undefined
      ? IDLE_TIMEOUT_DEFAULT_S : assertIdleTimeout(input.idle_timeout_s);
    const now = new Date().toISOString();
    // A new incarnation with every create: a re-created id derives none of the old one's secrets.
    const tenant: Tenant = {
      tenant_id, bot_token, status: 'idle', idle_timeout_s, created_at: now, updated_at: now, version: 1, incarnation: newIncarnation(),
    };
    try {
      await this.doc.send(new PutCommand({
        TableName: this.table,
        Item: { ...tenant },
        ConditionExpression: 'attribute_not_exists(#id)',
        ExpressionAttributeNames: { '#id': 'tenant_id' },
      }));
    } catch (err) {
      if (isConditionFailed(err)) throw new AlreadyExistsError(`tenant ${tenant_id} already exists`);
      throw this.storageError('PutItem', err);
    }
    return tenant;
  }

  /** Strongly consistent: a replica must see the write another replica just acknowledged. */
  async get(id: string): Promise<Tenant | undefined> {
    assertTenantId(id);
    try {
      const out = await this.doc.send(new GetCommand({
        TableName: this.table, Key: { tenant_id: id }, ConsistentRead: true,
      }));
      return out.Item ? tenantFromItem(out.Item) : undefined;
    } catch (err) {
      throw this.storageError('GetItem', err);
    }
  }

  async require(id: string): Promise<Tenant> {
    const t = await this.get(id);
    if (!t) throw new NotFoundError(`tenant ${id} not found`);
    return t;
  }

  /** One page of a Scan. A page may be short or even empty while a cursor is still returned. */
  async list(options: ListOptions = {}): Promise<TenantPage> {
    const limit = assertPositiveInt(options.limit ?? LIST_LIMIT_DEFAULT, 'list limit', LIST_LIMIT_MAX);
    if (options.cursor !== undefined && typeof options.cursor !== 'string') {
      throw new ValidationError('invalid cursor: expected a string');
    }
    const start = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    try {
      const out = await this.doc.send(new ScanCommand({
        TableName: this.table, Limit: limit, ExclusiveStartKey: start, ConsistentRead: true,
      }));
      const page: TenantPage = { items: (out.Items ?? []).map((item) => tenantFromItem(item)) };
      if (out.LastEvaluatedKey) page.cursor = encodeCursor(out.LastEvaluatedKey);
      return page;
    } catch (err) {
      throw this.storageError('Scan', err);
    }
  }

  /** Every tenant, fetched one page at a time so memory stays bounded by pageSize. */
  async *iterate(options: { pageSize?: number } = {}): AsyncGenerator<Tenant, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await this.list({ limit: options.pageSize ?? LIST_LIMIT_DEFAULT, cursor });
      yield* page.items;
      cursor = page.cursor;
    } while (cursor !== undefined);
  }

  /**
   * Versioned partial update. Only the patched attributes are SET/REMOVEd (never a whole-item
   * Put), so unversioned touches of last_active_at are not clobbered by it. Without
   * expectedVersion the current version is read first, which still detects writes that land
   * between that read and this write. A status in the patch is checked as a value only; the
   * status machine is enforced by transition(), which callers should use for status changes.
   */
  async update(id: string, patch: TenantPatch, options: { expectedVersion?: number } = {}): Promise<Tenant> {
    assertTenantId(id);
    const p = validateTenantPatch(patch);
    const expected = options.expectedVersion === undefined
      ? (await this.require(id)).version
      : assertPositiveInt(options.expectedVersion, 'expectedVersion');
    const names: Record<string, string> = { '#id': 'tenant_id', '#version': 'version', '#updated_at': 'updated_at' };
    const values: Record<string, unknown> = {
      ':expected': expected, ':next': expected + 1, ':now': new Date().toISOString(),
    };
    const sets = ['#updated_at = :now', '#version = :next'];
    const removes: string[] = [];
    for (const [field, value] of Object.entries(p)) {
      names[`#${field}`] = field;
      if (value === null) {
        removes.push(`#${field}`);
      } else {
        values[`:${field}`] = value;
        sets.push(`#${field} = :${field}`);
      }
    }
    try {
      const out = await this.doc.send(new UpdateCommand({
        TableName: this.table,
        Key: { tenant_id: id },
        UpdateExpression: `SET ${sets.join(', ')}${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`,
        ConditionExpression: 'attribute_exists(#id) AND #version = :expected',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW',
      }));
      if (!out.Attributes) throw new ZtmError('E_INTERNAL', `UpdateItem on tenant ${id} returned no attributes`);
      return tenantFromItem(out.Attributes);
    } catch (err) {
      if (!isConditionFailed(err)) throw this.storageError('UpdateItem', err);
      // Rare path: one extra read tells "gone" from "someone else wrote first".
      const current = await this.get(id);
      if (!current) throw new NotFoundError(`tenant ${id} not found`);
      throw new VersionConflictError(
        `tenant ${id} was modified concurrently: expected version ${expected}, found ${current.version}`,
      );
    }
  }

  /**
   * Optimistic read-modify-write: read, let fn compute a patch from the current record, write
   * conditioned on the version read, and start over on conflict with jittered backoff (so
   * competing replicas spread out instead of colliding in lock-step). Errors thrown by fn
   * itself are not retried. fn returning undefined means "nothing to do": no write.
   * `current`: a record the caller just read, used for the first attempt instead of reading again
   * (a stale one costs one conflict and a fresh read, never a lost write).
   */
  async mutate(id: string, fn: MutateFn, options: { attempts?: number; current?: Tenant } = {}): Promise<Tenant> {
    const attempts = assertPositiveInt(options.attempts ?? 5, 'mutate attempts', 1000);
    for (let attempt = 1; ; attempt++) {
      const current = attempt === 1 && options.current?.tenant_id === id ? options.current : await this.require(id);
      const patch = await fn(current);
      if (patch === undefined) return current;
      try {
        return await this.update(id, patch, { expectedVersion: current.version });
      } catch (err) {
        if (!(err instanceof VersionConflictError)) throw err;
        if (attempt >= attempts) {
          throw new VersionConflictError(`tenant ${id} kept changing concurrently: gave up after ${attempts} attempts`);
        }
      }
      await sleep(Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1)));
    }
  }

  /**
   * Status change checked against the transition table, atomically with respect to the record
   * read (via mutate). `from` states the caller's assumption, e.g. "provision only if idle";
   * a mismatch means another actor moved the tenant first, hence VersionConflictError.
   * Moving to idle or terminated clears pod_name/pod_ip unless given, so a stale address can
   * never route traffic to a pod that is gone. Re-entering the current status is a no-op
   * apart from the pod fields, which keeps reconcilers idempotent.
   */
  async transition(id: string, to: TenantStatus, extra: TransitionExtra = {}): Promise<Tenant> {
    assertTenantId(id);
    assertTenantStatus(to);
    const { from, ...podFields } = extra;
    if (from !== undefined && (!Array.isArray(from) || from.length === 0)) {
      throw new ValidationError('invalid transition precondition: from must be a non-empty list of statuses');
    }
    from?.forEach((s) => assertTenantStatus(s));
    const pods = validateTenantPatch(podFields);
    return this.mutate(id, (current) => {
      if (from && !from.includes(current.status)) {
        throw new VersionConflictError(`tenant ${id} is ${current.status}, expected ${from.join('|')}`);
      }
      const patch: TenantPatch = { ...pods };
      if (to === 'idle' || to === 'terminated') {
        if (!('pod_name' in patch)) patch.pod_name = null;
        if (!('pod_ip' in patch)) patch.pod_ip = null;
      }
      // Drop fields that would not change anything, so a repeated transition writes nothing.
      for (const field of ['pod_name', 'pod_ip'] as const) {
        if ((patch[field] ?? undefined) === current[field]) delete patch[field];
      }
      if (current.status !== to) {
        assertTransition(current.status, to);
        patch.status = to;
      }
      return Object.keys(patch).length ? patch : undefined;
    });
  }

  /**
   * Moves last_active_at forward, never back; returns false when a newer value is already
   * stored. Deliberately unversioned (no version bump, no updated_at): it runs on every inbound
   * message, and bumping the version would make every concurrent mutate conflict and retry.
   * It cannot lose other fields because it SETs only last_active_at, and versioned writers
   * SET only the fields they patch. Timestamps are canonical ISO strings, so `<` is time order.
   */
  async touchLastActive(id: string, at: string | Date): Promise<boolean> {
    assertTenantId(id);
    const iso = assertIsoTimestamp(at, 'last_active_at');
    try {
      await this.doc.send(new UpdateCommand({
        TableName: this.table,
        Key: { tenant_id: id },
        UpdateExpression: 'SET #t = :t',
        ConditionExpression: 'attribute_exists(#id) AND (attribute_not_exists(#t) OR #t < :t)',
        ExpressionAttributeNames: { '#id': 'tenant_id', '#t': 'last_active_at' },
        ExpressionAttributeValues: { ':t': iso },
      }));
      return true;
    } catch (err) {
      if (!isConditionFailed(err)) throw this.storageError('UpdateItem', err);
      if (!(await this.get(id))) throw new NotFoundError(`tenant ${id} not found`);
      return false;
    }
  }

  /** Idempotent: true if the tenant existed. */
  async delete(id: string): Promise<boolean> {
    assertTenantId(id);
    try {
      const out = await this.doc.send(new DeleteCommand({
        TableName: this.table, Key: { tenant_id: id }, ReturnValues: 'ALL_OLD',
      }));
      return out.Attributes !== undefined;
    } catch (err) {
      throw this.storageError('DeleteItem', err);
    }
  }

  /** Non-conditional AWS failures: one line, token-scrubbed, original kept as cause. */
  private storageError(op: string, err: unknown): ZtmError {
    if (err instanceof ZtmError) return err;
    const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    const oneLine = redactSecrets(detail).replace(/\s+/g, ' ').slice(0, 300);
    return new ZtmError('E_INTERNAL', `dynamodb ${op} on ${this.table} failed: ${oneLine}`, { cause: err });
  }
}
