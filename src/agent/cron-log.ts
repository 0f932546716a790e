import type { Logger } from './log.js';

type CronMessage = string | Error;
const text = (m: CronMessage, err?: Error): string => (m instanceof Error ? m.message : err ? `${m}: ${err.message}` : m);

/**
 * node-cron's own messages (a run "missed" while the host was busy, a task
 * that threw) as lines of the agent's log, with the schedule's name: never
 * bare text on stderr, which journald and the log's readers would take for
 * one of ours.
 */
export function cronLogger(log: Logger, schedule: string) {
  const slog = log.with({ schedule });
  return {
    info: (m: string) => slog.debug('scheduler', { message: m }),
    debug: (m: CronMessage, err?: Error) => slog.debug('scheduler', { message: text(m, err) }),
    warn: (m: string) => slog.warn('scheduler', { message: m }),
    error: (m: CronMessage, err?: Error) => slog.error('scheduler', { message: text(m, err) }),
  };
}
