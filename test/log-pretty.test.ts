/**
 * Readable log lines on a terminal: the same redacted record pino writes as JSON, shown as
 * `time LEVEL service msg key=value`, and JSON when the output is not a terminal.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createLogger } from '../lib/logger.js';
import { prettyDestination, prettyLine, wantsPretty } from '../lib/log-pretty.js';
import { ROOT } from './support/platform.js';

const TOKEN = '123456789:AAHfakefakefakefakefakefakefakefake0';

t.test('a record becomes one readable line; secrets stay redacted', async (t) => {
  const lines: string[] = [];
  const log = createLogger({ service: 'janitor', level: 'info', destination: prettyDestination({ colors: false, write: (s) => lines.push(s) }) });
  log.child({ tenant: 'alice' }).warn({ attempts: 2, token: TOKEN, reason: 'wake failed: no node' }, 'dead-lettered');
  t.equal(lines.length, 1);
  const line = lines[0] ?? '';
  t.match(line, /^\d{2}:\d{2}:\d{2}\.\d{3} WARN  janitor dead-lettered  /);
  t.match(line, /tenant=alice/);
  t.match(line, /attempts=2/);
  t.match(line, /reason="wake failed: no node"/, 'a value with spaces is quoted');
  t.notMatch(line, /AAHfake/, 'the bot token is not shown');
  t.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'), 'exactly one line');
});

t.test('colors only when asked; non-JSON passes through', async (t) => {
  const rec = JSON.stringify({ level: 50, time: '2026-12-01T12:00:00.000Z', service: 'waker', msg: 'wake failed' });
  t.equal(prettyLine(rec, false), '12:00:00.000 ERROR waker wake failed\n');
  t.match(prettyLine(rec, true), /\x1b\[31mERROR\x1b\[0m/);
  t.equal(prettyLine('not json', false), 'not json\n');
});

t.test('auto is pretty on a terminal only; LOG_FORMAT forces either', async (t) => {
  t.equal(wantsPretty('auto', true), true);
  t.equal(wantsPretty('auto', false), false);
  t.equal(wantsPretty('json', true), false);
  t.equal(wantsPretty('pretty', false), true);
});

t.test('a bad LOG_FORMAT stops a service with one clear line and exit code 2', async (t) => {
  const run = (env: Record<string, string>) => spawnSync(process.execPath, ['--import', 'tsx', 'services/janitor/main.ts'], {
    cwd: ROOT, encoding: 'utf8', timeout: 30_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...env },
  });
  const bad = run({ LOG_FORMAT: 'fancy' });
  t.equal(bad.status, 2);
  t.match(bad.stderr, /configuration error: LOG_FORMAT/);
});
