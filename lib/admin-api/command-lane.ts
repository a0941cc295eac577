/**
 * A lane of admin commands: one backend (an AdminClient) and at most `limit` of its commands in
 * flight, the rest waiting in order. Bounded because each command in flight adds a listener per
 * event to the AdminClient's one QueueEvents, whose emitter warns past 10; the API keeps long
 * commands (a wake, a stop, a delete: minutes) in a lane of their own, so they never hold up reads.
 */
import type { AdminCommand } from '../admin/admin-protocol.js';

/** Runs an admin command and returns its result (an AdminClient; a typed error on refusal). */
export interface AdminBackend {
  run(command: AdminCommand, args: never, timeoutMs: number): Promise<unknown>;
}

export class CommandLane {
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly backend: AdminBackend, private readonly limit = 8) {
    if (!backend) throw new TypeError('CommandLane: backend is required');
  }

  async run(command: AdminCommand, args: unknown, timeoutMs: number): Promise<unknown> {
    // A finished command hands its slot straight to the next waiter, so a newcomer cannot jump in between.
    if (this.inFlight >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.inFlight++;
    try {
      return await this.backend.run(command, args as never, timeoutMs);
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.inFlight--;
    }
  }
}
