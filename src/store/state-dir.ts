/**
 * A host's state dir and what lives in it: the journal (journal.db, with
 * SQLite's -wal and -shm beside it), the content store (blobs/) and the
 * agent's default inbox (inbox/). Code that needs one of them asks here
 * rather than joining paths itself. The journal opens itself from the state
 * dir (Journal.open), using the path this module gives: journal/ depends on
 * store/, not the other way round.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { notFound, type AirlockError } from '../errors/index.js';
import { ContentStore } from './content-store.js';

export const DEFAULT_STATE_DIR = '/var/lib/airlock';

export const JOURNAL_FILE = 'journal.db';

export function stateDirFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.AIRLOCK_STATE_DIR ?? DEFAULT_STATE_DIR;
}

export const journalPathIn = (stateDir: string): string => join(stateDir, JOURNAL_FILE);

export const inboxPathIn = (stateDir: string): string => join(stateDir, 'inbox');

/** The names key of a host that holds no site identity (src/seal/host-keys.ts). */
export const namesKeyPathIn = (stateDir: string): string => join(stateDir, 'names.key');

/** The content store of a state dir. */
export const contentStoreOf = (stateDir: string): ContentStore => new ContentStore(join(stateDir, 'blobs'));

/**
 * Whether a state dir holds a journal with something in it, without opening
 * (and so without creating or migrating) it. A journal airlock made is never
 * an empty file: opening it writes the header at once.
 */
export function journalPresence(stateDir: string): 'missing' | 'empty' | 'present' {
  const path = journalPathIn(stateDir);
  if (!existsSync(path)) return 'missing';
  const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);
  return size(path) === 0 && size(`${path}-wal`) === 0 ? 'empty' : 'present';
}

/** For a state dir that is not one, or holds no journal this user may use. */
export const STATE_DIR_HINT = `point --state (or AIRLOCK_STATE_DIR, or the agent's state dir) at the folder that holds ${JOURNAL_FILE}`;

/** For a command that needs the record of what runs and finds none: never make a new journal in place of a lost one. */
const LOST_JOURNAL_HINT = `nothing was changed. Put ${JOURNAL_FILE} back (from where it was moved, or a backup), or recover a damaged one as docs/journal.md describes`;

/**
 * The refusal when a state dir has no journal to read: "no journal in DIR",
 * or "journal PATH is empty" for a file with nothing in it, then `why`
 * (which starts with its own punctuation). `lost` when something says a
 * journal should be there: the hint says how to put it back.
 */
export function noJournalHere(stateDir: string, why: string, opts: { lost: boolean }): AirlockError {
  const path = journalPathIn(stateDir);
  const where = existsSync(path) ? `journal ${path} is empty` : `no journal in ${stateDir}`;
  return notFound(`${where}${why}`, { reason: 'no-journal', subject: path, ...(opts.lost ? { hint: LOST_JOURNAL_HINT } : {}) });
}
