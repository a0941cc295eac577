/**
 * `ztm completion bash|zsh`: a completion script built from the commands ztm itself defines, so it
 * cannot drift from them. Install: `source <(ztm completion bash)` (or zsh), or write it to the
 * shell's completion directory.
 */
import { ValidationError } from '../lib/errors.js';

export const SHELLS = ['bash', 'zsh'] as const;
export type Shell = (typeof SHELLS)[number];

export function shellOption(v: unknown): Shell {
  const s = String(v);
  if (!(SHELLS as readonly string[]).includes(s)) throw new ValidationError(`invalid shell ${JSON.stringify(s.slice(0, 20))}: expected bash or zsh`);
  return s as Shell;
}

export interface CommandInfo {
  /** e.g. `tenant create` */
  name: string;
  /** long options, e.g. `--bot-token` */
  options: string[];
}

/** The words each position completes to: first words, then second words per group, options per command. */
function tables(commands: CommandInfo[], globals: string[]): { first: string[]; second: Map<string, string[]>; options: Map<string, string[]> } {
  const first = new Set<string>();
  const second = new Map<string, string[]>();
  const options = new Map<string, string[]>();
  for (const c of commands) {
    const [a, b] = c.name.split(' ') as [string, string | undefined];
    first.add(a);
    if (b) second.set(a, [...(second.get(a) ?? []), b]);
    options.set(c.name.replace(' ', '_'), [...new Set([...c.options, ...globals])]);
  }
  return { first: [...first], second, options };
}

export function completionScript(shell: Shell, commands: CommandInfo[], globals: string[]): string {
  const { first, second, options } = tables(commands, globals);
  const cases = (fmt: (k: string, words: string[]) => string, m: Map<string, string[]>): string => [...m].map(([k, w]) => fmt(k, w)).join('\n');
  const body = [
    '_ztm() {',
    '  local cur=${COMP_WORDS[COMP_CWORD]} w1=${COMP_WORDS[1]} w2=${COMP_WORDS[2]} words=""',
    '  if [ "$COMP_CWORD" -eq 1 ]; then words="' + first.join(' ') + '"',
    '  elif [ "$COMP_CWORD" -eq 2 ]; then',
    '    case "$w1" in',
    cases((k, w) => `      ${k}) words="${w.join(' ')}" ;;`, second),
    '    esac',
    '  fi',
    '  if [ -z "$words" ] || [[ "$cur" == -* ]]; then',
    '    local key="$w1"; [ -n "$w2" ] && [[ "$w2" != -* ]] && case "$w1" in ' + [...second.keys()].join('|') + ') key="${w1}_${w2}" ;; esac',
    '    case "$key" in',
    cases((k, w) => `      ${k}) [[ "$cur" == -* ]] && words="${w.join(' ')}" ;;`, options),
    '    esac',
    '  fi',
    '  COMPREPLY=($(compgen -W "$words" -- "$cur"))',
    '}',
  ].join('\n');
  if (shell === 'bash') return `# ztm completion for bash: source <(ztm completion bash)\n${body}\ncomplete -F _ztm ztm\n`;
  // zsh runs the same function through its bash completion layer.
  return `#compdef ztm\n# ztm completion for zsh: source <(ztm completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n${body}\ncomplete -F _ztm ztm\n`;
}
