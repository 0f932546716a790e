import type { ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface CommandContext {
  positionals: string[];
  values: Record<string, string | boolean | string[] | undefined>;
  json: boolean;
  /** Prints a line of output; control characters in it are escaped (src/cli/format.ts). */
  out: (text: string) => void;
  /** Prints signed bytes (a manifest, a receipt): unchanged into a file or pipe, escaped on a terminal. */
  outSigned: (text: string) => void;
}

/** One CLI command. `path` is the words that name it, e.g. ['bundle', 'verify']. */
export interface Command {
  path: string[];
  summary: string;
  usage: string;
  /** Paragraphs shown by --help after the usage line. */
  details?: string;
  options: OptionSpec;
  /** Positional arguments: exact count, or min/max. */
  args: { min: number; max: number };
  run(ctx: CommandContext): Promise<number | void>;
}

export const stringOpt = (short?: string) => ({ type: 'string' as const, ...(short ? { short } : {}) });
export const boolOpt = (short?: string) => ({ type: 'boolean' as const, ...(short ? { short } : {}) });
export const jsonOpt = { json: boolOpt() };
/** A string option's value, or undefined when it was not given. */
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
