/**
 * Starts an http.Server listening and says where: `http://<host>:<port>`. A failed listen (the
 * port taken) rejects instead of being left as an unhandled 'error' event on the server.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function listenHttp(server: Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${hostPart}:${address.port}`;
}
