/**
 * The agent's log: one line per event, `level=info msg="…" key=value`, in
 * logfmt so journald and grep read it alike. Colour only on a TTY.
 */
import { printable } from '../units/printable.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | null | undefined>;

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const COLOUR: Record<LogLevel, string> = { debug: '\x1b[2m', info: '\x1b[36m', warn: '\x1b[33m', error: '\x1b[31m' };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  with(fields: LogFields): Logger;
  /** Changes the level of this logger and every one made from it (a config reload). */
  setLevel(level: LogLevel): void;
}

/**
 * A bare word, or a JSON string with every control character escaped: a
 * value from a bundle, an FTP listing or the engine can neither end the
 * line early nor send escape sequences to whoever reads the log.
 */
const quote = (v: string): string => (/^[^\s"=\\]+$/.test(v) && printable(v) === v ? v : printable(JSON.stringify(v)));

export function formatLine(level: LogLevel, msg: string, fields: LogFields, colour = false): string {
  const parts = [colour ? `${COLOUR[level]}level=${level}\x1b[0m` : `level=${level}`, `msg=${quote(msg)}`];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    parts.push(`${k}=${quote(String(v))}`);
  }
  return parts.join(' ');
}

export interface LoggerOptions {
  level?: LogLevel;
  write?: (line: string) => void;
  colour?: boolean;
}

export function createLogger(opts: LoggerOptions = {}, base: LogFields = {}): Logger {
  const state = { level: opts.level ?? 'info' };
  const write = opts.write ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const colour = opts.colour ?? (process.stderr.isTTY === true && !process.env.NO_COLOR);
  const make = (fixed: LogFields): Logger => {
    const emit = (level: LogLevel) => (msg: string, fields: LogFields = {}) => {
      if (ORDER[level] < ORDER[state.level]) return;
      write(formatLine(level, msg, { ...fixed, ...fields }, colour));
    };
    return {
      debug: emit('debug'),
      info: emit('info'),
      warn: emit('warn'),
      error: emit('error'),
      with: (f) => make({ ...fixed, ...f }),
      setLevel: (level) => void (state.level = level),
    };
  };
  return make(base);
}

/** A logger that drops everything: for library calls made outside the agent. */
export const silentLogger: Logger = createLogger({ write: () => undefined });
