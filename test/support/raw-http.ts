/**
 * HTTP over a raw TCP socket, for requests no well-behaved client would send (malformed request
 * lines and headers, lying Content-Length, slow-loris dribbling). Every exchange is bounded in time.
 */
import net from 'node:net';

export interface RawOutcome {
  /** Status of the first response on the connection, if any arrived. */
  status: number | undefined;
  /** The server closed (or reset) the connection within the wait. */
  closed: boolean;
  /** Milliseconds from connect to close (or to the end of the wait). */
  ms: number;
  /** The socket, still open, when `keepOpen` was asked and the server had not closed it. */
  socket?: net.Socket;
}

export function statusOf(data: string): number | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
  return m ? Number(m[1]) : undefined;
}

/**
 * Connects, writes `payload` (all at once, or by the `write` callback), and waits up to `waitMs`
 * for a response and/or the server's close. With `untilClose`, a response alone does not end the
 * wait. With `keepOpen`, a socket the server left open is handed back instead of destroyed.
 */
export function rawExchange(port: number, payload: string | Buffer | ((s: net.Socket) => void), options: { waitMs: number; untilClose?: boolean; keepOpen?: boolean }): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ port, host: '127.0.0.1' });
    let data = '';
    let settled = false;
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const outcome: RawOutcome = { status: statusOf(data), closed, ms: Date.now() - started };
      if (!closed && options.keepOpen) outcome.socket = socket;
      else if (!closed) socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish(false), options.waitMs);
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      if (data.length < 4096) data += d.toString('latin1');
      if (!options.untilClose && statusOf(data) !== undefined && /\r\n\r\n/.test(data)) finish(false);
    });
    socket.on('error', () => undefined); // a reset is a close
    socket.on('close', () => finish(true));
    socket.once('connect', () => {
      try {
        if (typeof payload === 'function') payload(socket);
        else socket.write(payload);
      } catch {
        /* the server may already have closed */
      }
    });
  });
}

/** Resolves when the socket closes, or with false after `timeoutMs`. */
export function closedWithin(socket: net.Socket, timeoutMs: number): Promise<boolean> {
  if (socket.destroyed || socket.closed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
