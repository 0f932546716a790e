import { printable } from '../units/printable.js';
import { formatBytes } from '../units/bytes.js';

export interface Progress {
  update(phase: string, done: number, total: number): void;
  finish(): void;
}

const BAR = 24;

/**
 * A progress bar on a TTY (one line, redrawn at most 10 times a second) and
 * plain lines at each quarter otherwise, so logs stay readable. Writes to
 * stderr: stdout is kept for results and --json.
 */
export function progress(stream: NodeJS.WriteStream = process.stderr, quiet = false): Progress {
  if (quiet) return { update: () => undefined, finish: () => undefined };
  const tty = stream.isTTY === true;
  let lastDraw = 0;
  let lastQuarter = new Map<string, number>();
  let drawn = false;
  return {
    update(phase, done, total) {
      const share = total > 0 ? Math.min(1, done / total) : 1;
      if (tty) {
        const now = Date.now();
        if (now - lastDraw < 100 && share < 1) return;
        lastDraw = now;
        const filled = Math.round(share * BAR);
        stream.write(`\r${phase.padEnd(7)} [${'#'.repeat(filled)}${' '.repeat(BAR - filled)}] ${String(Math.floor(share * 100)).padStart(3)}%  ${formatBytes(done)} of ${formatBytes(total)}\x1b[K`);
        drawn = true;
      } else {
        const quarter = Math.floor(share * 4);
        if (quarter > (lastQuarter.get(phase) ?? 0)) {
          lastQuarter.set(phase, quarter);
          stream.write(`${phase}: ${quarter * 25}% (${formatBytes(done)} of ${formatBytes(total)})\n`);
        }
      }
    },
    finish() {
      if (drawn) stream.write('\n');
      drawn = false;
      lastQuarter = new Map();
    },
  };
}

/**
 * One status line per host. On a TTY the block is redrawn in place (at most
 * 10 times a second); otherwise a line is written when a host changes phase.
 */
export function hostLines(hosts: string[], stream: NodeJS.WriteStream = process.stderr): { set(host: string, phase: string, detail: string): void; finish(): void } {
  const tty = stream.isTTY === true;
  const state = new Map(hosts.map((h) => [h, { phase: 'waiting', detail: '' }]));
  const width = Math.max(...hosts.map((h) => h.length));
  let drawn = false;
  let lastDraw = 0;
  const draw = (force: boolean) => {
    const now = Date.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    if (drawn) stream.write(`\x1b[${state.size}A`);
    for (const [h, s] of state) stream.write(`\r${h.padEnd(width)}  ${s.phase.padEnd(8)} ${s.detail}\x1b[K\n`);
    drawn = true;
  };
  return {
    set(host, phase, raw) {
      // A remote host's answer: one line, no escape sequences of its own.
      const detail = printable(raw);
      const before = state.get(host);
      state.set(host, { phase, detail });
      if (tty) draw(phase !== before?.phase);
      else if (phase !== before?.phase) stream.write(`${host}: ${phase}${detail ? ` ${detail}` : ''}\n`);
    },
    finish() {
      if (tty) draw(true);
    },
  };
}
