/**
 * The embedded stores in their own process for the benchmarks, so the CPU and memory figures of the
 * processes under test do not include theirs: dynalite (DynamoDB protocol, in memory) and, with the
 * argument `s3`, s3rver (S3 protocol, in a temp dir). Reports `{ endpoint, s3Endpoint? }`; answers
 * `usage` with its CPU and memory.
 */
import { startEmbeddedDynamo } from '../../lib/registry/embedded-dynamodb.js';
import { startEmbeddedS3 } from '../../lib/state/embedded-s3.js';
import { serveParent } from './common.js';

const store = await startEmbeddedDynamo({});
const s3 = process.argv.includes('s3') ? await startEmbeddedS3({}) : undefined;
serveParent({ endpoint: store.endpoint, s3Endpoint: s3?.endpoint }, { usage: () => ({ cpu: process.cpuUsage(), mem: process.memoryUsage() }) }, async () => {
  await s3?.close();
  await store.close();
});
