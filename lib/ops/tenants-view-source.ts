/**
 * Where the tenants view reads the registry. The dashboard holds no registry credentials: it asks
 * the janitor, as `ztm tenant list` does (`tenant.list` through the admin queue, one Scan page per
 * call, tokens masked by the janitor before they cross the queue). In a process that holds the
 * registry itself (`npm start`), the registry can be read directly. Either way only the fields the
 * view shows are kept.
 */
import { AdminClient } from '../admin/admin-client.js';
import type { TenantRegistry } from '../registry/tenant-registry.js';
import type { ListedTenant, ListTenants } from './tenants-view.js';

/** A registry page reduced to what the view shows (the token and the incarnation dropped here). */
function listed(items: ReadonlyArray<ListedTenant>): ListedTenant[] {
  return items.map((t) => ({
    tenant_id: t.tenant_id, status: t.status, idle_timeout_s: t.idle_timeout_s,
    ...(t.pod_name ? { pod_name: t.pod_name } : {}), ...(t.last_active_at ? { last_active_at: t.last_active_at } : {}),
  }));
}

export function registryTenantLister(registry: TenantRegistry): ListTenants {
  return async (args) => {
    const page = await registry.list(args);
    return { items: listed(page.items), ...(page.cursor ? { cursor: page.cursor } : {}) };
  };
}

/** Per call: how long the janitor may take to pick the listing up and to answer it. */
const PICKUP_TIMEOUT_MS = 5000;
const RUN_TIMEOUT_MS = 15_000;

export interface AdminTenantLister {
  list: ListTenants;
  close(): Promise<void>;
}

/** `tenant.list` through the admin queue; connects on first use (and again after a failed connect). */
export function adminTenantLister(o: { redisUrl: string; cluster?: boolean | undefined }): AdminTenantLister {
  let client: Promise<AdminClient> | undefined;
  const connected = (): Promise<AdminClient> => {
    client ??= (async () => {
      const c = new AdminClient({ redisUrl: o.redisUrl, cluster: o.cluster, pickupTimeoutMs: PICKUP_TIMEOUT_MS });
      try {
        await c.connect();
        return c;
      } catch (err) {
        client = undefined;
        await c.close();
        throw err;
      }
    })();
    return client;
  };
  return {
    async list(args) {
      const page = (await (await connected()).run('tenant.list', args, RUN_TIMEOUT_MS)) as { items: ListedTenant[]; cursor?: string };
      return { items: listed(page.items), ...(page.cursor ? { cursor: page.cursor } : {}) };
    },
    async close() {
      const c = client;
      client = undefined;
      if (c) await (await c.catch(() => undefined))?.close();
    },
  };
}
