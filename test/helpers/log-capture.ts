/** The agent's logfmt lines caught in memory, to assert on events and their fields. */
import { createLogger, type Logger } from '../../src/agent/log.js';

export interface Captured {
  log: Logger;
  lines: string[];
  /** Log lines with this msg, as field maps. */
  events(msg: string): Record<string, string>[];
}

/** Fields of one logfmt line: `level=warn msg="…" name=x` → { level, msg, name }. */
export function parseLine(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)) out[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
  return out;
}

export function captureLog(): Captured {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', colour: false, write: (l) => lines.push(l) });
  return { log, lines, events: (msg) => lines.map(parseLine).filter((f) => f.msg === msg) };
}
