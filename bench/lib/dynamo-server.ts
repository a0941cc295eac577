/**
 * dynalite in its own process for the benchmarks, so the memory figures of the process under test
 * do not include the store's. Arg: optional data dir (LevelDB on disk; in memory without it).
 * Reports `{ endpoint }`; answers `usage` with its CPU and memory.
 */
import { startEmbeddedDynamo } from '../../lib/registry/embedded-dynamodb.js';
import { serveParent } from './common.js';

const dataDir = process.argv[2];
const store = await startEmbeddedDynamo(dataDir ? { dataDir } : {});
serveParent({ endpoint: store.endpoint }, { usage: () => ({ cpu: process.cpuUsage(), mem: process.memoryUsage() }) }, () => store.close());
