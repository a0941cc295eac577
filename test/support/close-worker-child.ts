/**
 * Child of test/close-worker.test.ts: a BullMQ worker whose one job never ends, closed with a bound.
 * argv: redis URL, mode ('closeWorker' | 'disconnect-only'). Prints `closed <true|false>` and then
 * closes everything else it made; whether the process exits on its own is what the test watches.
 */
import { Queue, Worker } from 'bullmq';
import { createRedis, closeRedis } from '../../lib/redis.js';
import { closeWorker } from '../../lib/platform/close-worker.js';

const [url, mode] = process.argv.slice(2) as [string, string];
const bull = createRedis({ url, blocking: true });
const queue = new Queue('close-worker-test', { connection: bull });
let started: () => void = () => undefined;
const running = new Promise<void>((r) => { started = r; });
const worker = new Worker('close-worker-test', () => { started(); return new Promise(() => undefined); }, { connection: bull, lockDuration: 2_000 });
await queue.add('never-ends', {});
await running;
if (mode === 'closeWorker') {
  process.stdout.write(`closed ${await closeWorker(worker, 500)}\n`);
} else {
  await Promise.race([worker.close(), new Promise((r) => setTimeout(r, 500))]);
  await worker.disconnect();
  process.stdout.write('closed false\n');
}
await queue.close();
await closeRedis(bull);
