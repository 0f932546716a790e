/**
 * Variable substitution in one string, with the syntax and the quirks of
 * docker/cli's cli/compose/template package (what `docker stack deploy`
 * uses):
 *
 * - `$$` is a literal `$`.
 * - `$VAR` and `${VAR}`; a name is `[_a-zA-Z][_a-zA-Z0-9]*`. An unset
 *   variable becomes the empty string.
 * - `${VAR:-default}` (unset or empty), `${VAR-default}` (unset only),
 *   `${VAR:?message}` (error if unset or empty), `${VAR?message}` (error if
 *   unset). The modifiers are tried in that order, each on the first
 *   occurrence of its separator, exactly as docker does.
 * - The text after the modifier runs to the first `}` and is used as it is:
 *   docker does not substitute inside a default, so `${A:-${B}}` with A unset
 *   gives the literal `${B` followed by the `}` left in the string.
 * - The unbraced form takes a modifier too, up to the first `}` or the end
 *   of the string: `$A-b c` is read as `${A-b c}`.
 * - Any other `$` (`$}`, `${`, `$1`, `${ x}`, a trailing `$`) is an invalid
 *   template.
 *
 * One deliberate difference: docker can lose an error when a later
 * substitution in the same string succeeds; here the first error always
 * stands.
 */

const SUBST = '[_a-z][_a-z0-9]*(?::?[-?][^}]*)?';
const PATTERN = new RegExp(`\\$(?:(\\$)|(${SUBST})|\\{(${SUBST})\\}|())`, 'gi');

export type Lookup = (name: string) => string | undefined;

export class TemplateError extends Error {
  constructor(
    readonly kind: 'invalid' | 'required',
    message: string,
    /** The whole string that failed, for `invalid`. */
    readonly template: string,
  ) {
    super(message);
    this.name = 'TemplateError';
  }
}

function cut(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + sep.length)];
}

function resolve(substitution: string, lookup: Lookup): string {
  if (substitution.includes(':-')) {
    const [name, fallback] = cut(substitution, ':-');
    const v = lookup(name);
    return v === undefined || v === '' ? fallback : v;
  }
  if (substitution.includes('-')) {
    const [name, fallback] = cut(substitution, '-');
    const v = lookup(name);
    return v === undefined ? fallback : v;
  }
  for (const [sep, nonEmpty] of [[':?', true], ['?', false]] as const) {
    if (!substitution.includes(sep)) continue;
    const [name, message] = cut(substitution, sep);
    const v = lookup(name);
    if (v === undefined || (nonEmpty && v === '')) {
      const text = message === '' ? `required variable ${name} is missing a value` : `required variable ${name} is missing a value: ${message}`;
      throw new TemplateError('required', text, substitution);
    }
    return v;
  }
  return lookup(substitution) ?? '';
}

/** Substitutes every variable in `template`; throws TemplateError. */
export function substitute(template: string, lookup: Lookup): string {
  return template.replace(PATTERN, (_m, escaped?: string, named?: string, braced?: string) => {
    if (escaped !== undefined) return '$';
    const substitution = named ?? braced;
    if (substitution === undefined) {
      throw new TemplateError('invalid', `invalid interpolation format ${JSON.stringify(template)}`, template);
    }
    return resolve(substitution, lookup);
  });
}

/** The variables `template` names, in order, each once (`$$` names none). */
export function templateVariables(template: string): string[] {
  const names = new Set<string>();
  for (const m of template.matchAll(PATTERN)) {
    const name = /^[_a-z][_a-z0-9]*/i.exec(m[2] ?? m[3] ?? '')?.[0];
    if (name !== undefined) names.add(name);
  }
  return [...names];
}
