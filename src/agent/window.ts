/**
 * The maintenance window: a cron expression says when it opens, a duration
 * how long it stays open. Deploys happen only while it is open.
 */
import cron, { type ScheduledTask } from 'node-cron';

export class MaintenanceWindow {
  private readonly matcher: ScheduledTask;
  /** 1 s when the expression has a seconds field, else 1 min. */
  private readonly stepMs: number;

  constructor(
    readonly expression: string,
    readonly durationMs: number,
  ) {
    this.matcher = cron.createTask(expression, () => undefined);
    this.stepMs = expression.trim().split(/\s+/).length === 6 ? 1000 : 60_000;
  }

  /** The opening of the window that contains `now`, if one does. */
  openedAt(now: Date): Date | undefined {
    const start = Math.floor(now.getTime() / this.stepMs) * this.stepMs;
    for (let t = start; t > now.getTime() - this.durationMs; t -= this.stepMs) {
      if (this.matcher.match(new Date(t))) return new Date(t);
    }
    return undefined;
  }

  isOpen(now: Date): boolean {
    return this.openedAt(now) !== undefined;
  }

  /** When the open window closes, or undefined when it is closed. */
  closesAt(now: Date): Date | undefined {
    const opened = this.openedAt(now);
    return opened && new Date(opened.getTime() + this.durationMs);
  }

  describe(): string {
    return `"${this.expression}" for ${Math.round(this.durationMs / 1000)} s`;
  }

  dispose(): void {
    void this.matcher.destroy();
  }
}
