/**
 * What a test of the Kubernetes runtime runs against: the API stand-in with its kubelet, an embedded
 * S3 with the state bucket, and a log capture; the runtime the test builds on them is closed first
 * at teardown, then the kubelet, the API server and the store.
 */
import type { Test } from 'tap';
import type { S3Client } from '@aws-sdk/client-s3';
import { startEmbeddedS3, type EmbeddedS3 } from '../../../lib/state/embedded-s3.js';
import { createS3Client } from '../../../lib/state/s3-client.js';
import { StateStore } from '../../../lib/state/state-store.js';
import { freePort } from '../../../lib/util/free-port.js';
import { KubeApiServer } from './api-server.js';
import { Kubelet } from './kubelet.js';
import type { BehaviourOptions } from './behaviour.js';
import { LogCapture } from '../log-capture.js';

export interface StandInStack {
  api: KubeApiServer;
  kubelet: Kubelet;
  s3: EmbeddedS3;
  s3client: S3Client;
  store: StateStore;
  logs: LogCapture;
}

/**
 * Starts the stack for namespace `ns`, builds the test's runtime on it, and closes both at `t`'s
 * teardown. `behaviour`: the cluster's knobs from the start (behaviour.ts; `api.behaviour.set` later).
 */
export async function startStandInStack<R extends { close(): Promise<void> }>(t: Test, ns: string, runtimeOf: (s: StandInStack) => R, behaviour?: BehaviourOptions): Promise<StandInStack & { runtime: R }> {
  const logs = new LogCapture();
  const api = await KubeApiServer.start({ namespaces: [ns], ...(behaviour ? { behaviour } : {}) });
  const kubelet = new Kubelet(api);
  const s3 = await startEmbeddedS3({ port: await freePort() });
  const s3client = createS3Client({ endpoint: s3.endpoint, region: 'us-east-1' });
  const store = new StateStore({ s3: s3client, bucket: 'zeroclaw-tenant-state' });
  await store.ensureBucket();
  const stack = { api, kubelet, s3, s3client, store, logs };
  const runtime = runtimeOf(stack);
  t.teardown(async () => {
    await runtime.close();
    await kubelet.close();
    await api.close();
    s3client.destroy();
    await s3.close();
  });
  return { ...stack, runtime };
}
