/**
 * The whole platform (ingress, forwarder, waker with the Kubernetes runtime, janitor) on the API
 * stand-in with the reference agent in real shims, for the end-to-end realism scenarios
 * (test/kubernetes-realism-*.test.ts): tenants of their own per scenario, what each chat saw, the
 * operator's view (`ztm tenant get`, dead letters), and the API requests made for a tenant's pod.
 * The stand-in's behaviour is turned per scenario (`api.behaviour.set`) and reset after it.
 */
import type { Test } from 'tap';
import { startTestPlatform, type TestPlatform } from '../platform.js';
import { scenarioAgent } from '../scenario-agents.js';
import { STARTING_UP_TEXT } from '../../../services/forwarder/drainer.js';
import type { KubeApiServer, RecordedRequest } from './api-server.js';
import type { Kubelet } from './kubelet.js';
import type { StoreEvent } from './store.js';

export { STARTING_UP_TEXT };

export interface RealismPlatform {
  p: TestPlatform;
  api: KubeApiServer;
  kubelet: Kubelet;
  namespace: string;
  /** Registers the tenant (its own bot) with `ztm tenant create`. */
  createTenant(id: string): Promise<void>;
  /** Posts a text message as Telegram would; resolves once the ingress acknowledged it (200). */
  send(id: string, chat: number, text: string): Promise<void>;
  /** What the chat got from the tenant's bot: the notice as it is, each answer as the text it echoes. */
  seen(id: string, chat: number): string[];
  /** The memory count the reference agent put in each answer of the chat (notices left out). */
  memoryCounts(id: string, chat: number): number[];
  /** The messages the tenant's agent holds: in its saved state (sleeping or last checkpoint) or live. */
  memories(id: string, from: 'saved' | 'live'): Promise<number>;
  /** `ztm tenant get <id> --json`. */
  tenantView(id: string): Promise<Record<string, unknown>>;
  /** `ztm dead list --tenant <id>` (stdout). */
  deadLetters(id: string): Promise<string>;
  /** Every status the tenant's cold pod went through, oldest first (recorded as the store changed). */
  podStatuses(id: string): Array<Record<string, unknown>>;
  /** Pod creates the runtime sent for the tenant's cold pod (any answer). */
  podCreates(id: string): RecordedRequest[];
}

export async function startRealismPlatform(t: Test, env: Record<string, string> = {}): Promise<RealismPlatform> {
  const agent = scenarioAgent('reference');
  const p = await startTestPlatform({
    full: true, runtime: 'kubernetes',
    env: { ROUTER_PUBLIC_URL: 'https://bots.example.test', WARM_POOL_TARGET: '0', ...(await agent.env()), ...env },
  });
  t.teardown(async () => {
    await p.close();
    await agent.close();
  });
  if (!p.kube) throw new Error('realism platform: no Kubernetes stand-in');
  const { api, kubelet } = p.kube;
  const tokens = new Map<string, string>();
  const statuses = new Map<string, Array<Record<string, unknown>>>();
  api.store.on('event', (ev: StoreEvent) => {
    if (ev.rt.kind !== 'Pod' || ev.object.status === undefined) return;
    const name = ev.object.metadata.name ?? '';
    statuses.set(name, [...(statuses.get(name) ?? []), ev.object.status as Record<string, unknown>]);
  });
  let nextUpdate = 5000;
  const answers = (id: string, chat: number): string[] =>
    p.emulator.sentMessages(tokens.get(id)).filter((m) => m.chat_id === chat).map((m) => m.text);
  return {
    p, api, kubelet, namespace: p.config.k8sNamespace,
    async createTenant(id) {
      const token = `${7_000_000 + tokens.size}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDs${id.padEnd(4, 'x').slice(0, 4)}`;
      tokens.set(id, token);
      p.emulator.addBot(token);
      const created = await p.ztm('tenant', 'create', id, token);
      if (created.code !== 0) throw new Error(`tenant create ${id}: ${created.stderr}`);
    },
    async send(id, chat, text) {
      const update = nextUpdate++;
      const body = {
        update_id: update,
        message: { message_id: update, date: Math.floor(Date.now() / 1000), chat: { id: chat, type: 'private' }, from: { id: chat, is_bot: false, first_name: 'u' }, text },
      };
      // Telegram redelivers a webhook answered 5xx (the ingress says 503 while it is not ready to accept).
      for (let attempt = 1; ; attempt++) {
        const res = await p.postUpdate(id, body);
        if (res.status === 200) return;
        if (res.status !== 503 || attempt >= 50) throw new Error(`update refused: ${res.status} ${res.body}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    seen: (id, chat) => answers(id, chat).map((a) => (a === STARTING_UP_TEXT ? a : agent.said(a) ?? `<not an answer: ${a}>`)),
    memories: (id, from) => agent.memories(p, id, from),
    memoryCounts: (id, chat) => answers(id, chat).map((a) => agent.countIn(a)).filter((n): n is number => n !== undefined),
    async tenantView(id) {
      const res = await p.ztm('tenant', 'get', id, '--json');
      if (res.code !== 0) throw new Error(`tenant get ${id}: ${res.stderr}`);
      return JSON.parse(res.stdout) as Record<string, unknown>;
    },
    async deadLetters(id) {
      return (await p.ztm('dead', 'list', '--tenant', id)).stdout;
    },
    podStatuses: (id) => statuses.get(`zeroclaw-${id}`) ?? [],
    podCreates: (id) => api.requests.filter((r) => r.method === 'POST' && r.path === `/api/v1/namespaces/${p.config.k8sNamespace}/pods`
      && (r.body as { metadata?: { name?: string } } | undefined)?.metadata?.name === `zeroclaw-${id}`),
  };
}
