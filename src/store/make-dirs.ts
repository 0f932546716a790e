import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { configError, type AirlockError } from '../errors/index.js';
import { kindOf } from '../config/paths.js';

/**
 * `mkdir -p` that always ends. Node's own (`mkdir(p, { recursive: true })`)
 * reads ENOENT from mkdir as "the parent is missing", makes the parent
 * (EEXIST: fine) and tries the child again, for ever, where the parent exists
 * but cannot hold it: under /proc, whose mkdir says ENOENT, or through a link
 * to nothing (`key generate --out /proc/nope/x` hung at 100% CPU). This walks
 * up once to the first folder that exists, then makes each missing one below
 * it; the first refusal is the answer. `what` names the path to the operator
 * (`state dir`), `context` where it came from (`--out keys/vendor`).
 */
export function makeDirs(path: string, opts: { mode?: number; what?: string; context?: string } = {}): void {
  const target = resolve(path);
  const what = opts.what ?? 'folder';
  const cannotCreate = (subject: string, why: string, reason: string): AirlockError =>
    configError(`${opts.context ? `${opts.context}: ` : ''}cannot create ${what} ${path}: ${why}`, {
      reason,
      subject,
      hint: 'give a path in a folder that exists on a disk and that this user may write to',
    });
  const missing: string[] = [];
  for (let p = target; ; p = dirname(p)) {
    const kind = kindOf(p, what);
    if (kind === 'folder') break;
    if (kind !== 'absent') throw cannotCreate(p, `${p} is a file, not a folder`, 'not-a-folder');
    missing.push(p);
    if (dirname(p) === p) break;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir, opts.mode === undefined ? {} : { mode: opts.mode });
    } catch (e) {
      // Made by someone else meanwhile: fine, if it is a folder now.
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && kindOf(dir, what) === 'folder') continue;
      throw cannotCreate(dir, why(dir, e as NodeJS.ErrnoException), 'cannot-create');
    }
  }
}

function why(dir: string, e: NodeJS.ErrnoException): string {
  const parent = dirname(dir);
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      return `this user may not make folders in ${parent}`;
    case 'EROFS':
      return `${parent} is on a read-only file system`;
    case 'ENOSPC':
      return `no space left on the device of ${parent}`;
    case 'EEXIST':
      return `${dir} is a link to nothing`;
    case 'ENOENT':
      // The walk saw the parent, yet mkdir says "no such file": a file system such as /proc or /sys.
      return `${parent} does not let folders be made in it`;
    default:
      return `mkdir ${dir}: ${e.message}`;
  }
}
