/** A pino destination that keeps every line, so tests can grep what a service logged. */
import { createLogger, type Logger } from '../../lib/logger.js';

export class LogCapture {
  readonly lines: string[] = [];
  write(chunk: string): void {
    for (const line of chunk.split('\n')) if (line) this.lines.push(line);
  }
  logger(service: string, level = 'debug'): Logger {
    return createLogger({ service, level, destination: this });
  }
  text(): string {
    return this.lines.join('\n');
  }
  /** Parsed entries whose msg contains `needle`. */
  find(needle: string): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => String(e.msg ?? '').includes(needle));
  }
}
