/**
 * `ztm chat`'s "alice is typing…" while the bot sends the typing chat action, on a terminal only:
 * shown in the prompt itself, so what the user is typing stays as it is, and gone when the bot's
 * message arrives, when it cancels, or after 5 s without a new one (Telegram's own duration).
 */
import type { Interface } from 'node:readline';

/** How long Telegram shows a chat action unless it is sent again. */
export const CHAT_ACTION_S = 5;

export class TypingIndicator {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly rl: Interface, private readonly who: string, private readonly prompt: string) {}

  /** The bot sent `typing` again: show it (again) for CHAT_ACTION_S. */
  show(): void {
    clearTimeout(this.timer);
    if (!this.timer) this.refresh(`(${this.who} is typing…) ${this.prompt}`);
    this.timer = setTimeout(() => this.clear(), CHAT_ACTION_S * 1000);
    this.timer.unref();
  }

  /** Back to the plain prompt; `redraw` false when the caller redraws it anyway (a message arrived). */
  clear(redraw = true): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (redraw) this.refresh(this.prompt);
    else this.rl.setPrompt(this.prompt);
  }

  private refresh(prompt: string): void {
    this.rl.setPrompt(prompt);
    this.rl.prompt(true);
  }
}
