/** Human rendering of each admin command's result; free text passes redaction like the tables. */
import type { AdminCommand } from '../lib/admin/admin-protocol.js';
import { redactSecrets } from '../lib/redact.js';
import type { Printer } from './output.js';

interface Printers {
  printTable(p: Printer, rows: Array<Record<string, unknown>>, columns: string[]): void;
  printRecord(p: Printer, record: Record<string, unknown>): void;
}

const TENANT_COLUMNS = ['tenant_id', 'status', 'idle_timeout_s', 'last_active_at', 'pod_name', 'bot_token'];

function webhookLine(p: Printer, webhook: { registered: boolean; url?: string; reason?: string } | undefined): void {
  if (!webhook) return;
  // The URL is ROUTER_PUBLIC_URL's (it may carry credentials), the reason a library's message.
  if (webhook.registered) p.out(redactSecrets(`webhook registered: ${webhook.url}`));
  else if (webhook.reason === 'ROUTER_PUBLIC_URL is not set') p.out('webhook not registered: ROUTER_PUBLIC_URL is not set (run `ztm webhook register <id>` once it is)');
  else p.err(redactSecrets(`ztm: webhook registration failed: ${webhook.reason ?? 'unknown'}; fix it, then run \`ztm webhook register <id>\``));
}

export function renderResult(p: Printer, command: AdminCommand, result: unknown, f: Printers): void {
  const r = result as Record<string, unknown>;
  switch (command) {
    case 'tenant.create':
    case 'tenant.update':
      f.printRecord(p, r.tenant as Record<string, unknown>);
      webhookLine(p, r.webhook as never);
      return;
    case 'tenant.get':
      f.printRecord(p, r);
      return;
    case 'tenant.list':
      f.printTable(p, (r.items as Array<Record<string, unknown>>) ?? [], TENANT_COLUMNS);
      return;
    case 'tenant.delete':
      for (const step of (r.steps as string[]) ?? []) p.out(redactSecrets(step));
      return;
    case 'webhook.register':
      webhookLine(p, r as never);
      return;
    case 'dead.list':
      f.printTable(p, (r.items as Array<Record<string, unknown>>) ?? [], ['id', 'tenant_id', 'chat_id', 'update_id', 'failed_at', 'reason']);
      return;
    default:
      f.printRecord(p, typeof result === 'object' && result ? r : { result });
  }
}
