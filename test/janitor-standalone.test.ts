/**
 * The janitor as production runs it: services/janitor/main.ts as its own OS process with the env of
 * the chart's Deployment (RUNTIME=kubernetes against the API stand-in, the ConfigMap's settings,
 * its two secrets), nothing else of the platform in its process. `ztm dead list` and `ztm dead
 * retry` (the real CLI, a child process) are answered by it, for a dead letter the forwarder made
 * on the real path (an update accepted as the ingress does, refused by the agent with 413).
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { botToken, startOutboxHarness } from './support/outbox-harness.js';
import { ScriptedAgent, type AgentReply } from './support/outbox-agent.js';
import { ServiceSet } from './support/services.js';
import { KubeApiServer } from './support/kube/api-server.js';
import { spawnZtm } from './support/platform.js';
import { waitUntil } from './support/wait.js';

t.test('the standalone janitor serves ztm dead list and ztm dead retry', async (t) => {
  const h = await startOutboxHarness();
  const api = await KubeApiServer.start({ namespaces: ['tenants-agents'] });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-janitor-'));
  const services = new ServiceSet();
  let reply: AgentReply = { status: 413, body: { error: 'payload too large' } };
  const agent = await ScriptedAgent.start(() => reply);
  t.teardown(async () => {
    await services.close();
    await agent.close();
    await api.close();
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const token = botToken(12);
  await h.addTenant('dl', token);
  await h.setEndpoint('dl', agent.address);
  await h.startForwarder({ FORWARD_ATTEMPTS: '2' });

  // The chart's janitor Deployment: the image's entrypoint runs this main with the ConfigMap and
  // the janitor's secretKeyRefs (WEBHOOK_SECRET, WARM_POOL_SECRET) and the in-cluster API.
  const janitor = services.add({
    name: 'janitor',
    entry: 'services/janitor/main.ts',
    env: {
      ...h.env,
      RUNTIME: 'kubernetes', K8S_NAMESPACE: 'tenants-agents', KUBECONFIG: api.writeKubeconfig(path.join(dir, 'kubeconfig')),
      WARM_POOL_SECRET: randomBytes(24).toString('base64url'), WARM_POOL_TARGET: '0', ADMIN_PORT: '0',
      S3_BUCKET: 'state-bucket', LOG_LEVEL: 'info',
    },
    readyMsg: 'janitor started: admin worker, idle shutdown, reconciler',
    keep: ['admin command'],
  });
  await janitor.start(60_000);
  const ztm = (...argv: string[]) => spawnZtm(argv, { ZTM_REDIS_URL: h.redis.url, DATA_DIR: dir });

  await h.send('dl', 7, 4001, 'too big for the agent');
  await waitUntil('the update dead-lettered by the forwarder', async () => (await h.deadLetterList()).length === 1, 30_000);

  const listed = await ztm('dead', 'list', '--json');
  t.equal(listed.code, 0, `ztm dead list exits 0 (stderr: ${listed.stderr.trim()})`);
  const { items } = JSON.parse(listed.stdout) as { items: Array<{ id: string; tenant_id: string; update_id: number; reason: string }> };
  t.match(items, [{ id: 'dl.7.4001', tenant_id: 'dl', update_id: 4001, reason: /413/ }], 'the dead letter, listed by the janitor');
  t.notOk(listed.stdout.includes('too big for the agent'), 'the update body is not listed');

  const table = await ztm('dead', 'list', '--tenant', 'dl');
  t.equal(table.code, 0);
  t.match(table.stdout, /dl\.7\.4001/, 'the table form too');

  // The operator fixes the agent; the retry puts the update back into its chat's mailbox.
  reply = { status: 200, body: { response: 'fits now' } };
  const retried = await ztm('dead', 'retry', 'dl.7.4001', '--json');
  t.equal(retried.code, 0, `ztm dead retry exits 0 (stderr: ${retried.stderr.trim()})`);
  t.match(JSON.parse(retried.stdout), { id: 'dl.7.4001' });
  await waitUntil('the retried update answered in its chat', () => h.emulator.sentMessages(token).some((m) => m.text === 'fits now'), 30_000);
  t.equal(agent.asked('too big for the agent').length, 2, 'delivered once more, by the retry');
  t.same(await h.deadLetterList(), [], 'the dead letter is gone');

  const again = await ztm('dead', 'retry', 'dl.7.4001', '--json');
  t.equal(again.code, 1, 'a retry of a letter no longer there fails');
  t.match(JSON.parse(again.stderr.trim()), { error: { code: 'E_NOT_FOUND' } }, 'with its typed code');
  t.ok(janitor.find('admin command done').length >= 3, 'every command ran in the janitor process');
  t.equal(janitor.running, true, 'the janitor is still running');
});
