/**
 * Notices found while converting, each tied to the compose key path the
 * operator wrote. A notice never carries secret or config data: messages name
 * keys, paths and versions only.
 */
import type { ComposeNotice } from '../model.js';

export class Notices {
  readonly list: ComposeNotice[] = [];

  constructor(private readonly file?: string) {}

  warn(path: string, message: string): void {
    this.push('warning', path, message);
  }

  error(path: string, message: string): void {
    this.push('error', path, message);
  }

  get hasErrors(): boolean {
    return this.list.some((n) => n.level === 'error');
  }

  private push(level: ComposeNotice['level'], path: string, message: string): void {
    this.list.push(this.file === undefined ? { level, path, message } : { level, path, message, file: this.file });
  }
}
