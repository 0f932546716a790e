/**
 * YAML files an operator writes (bundle.yaml, agent.yaml): parsed with
 * positions kept, so every error names the file, the line and the key.
 */
import type { ErrorObject } from 'ajv';
import YAML, { LineCounter, type Document } from 'yaml';
import { configError, type AirlockError } from '../errors/index.js';
import { keyName, keyPathOf, type KeyPath } from './key-path.js';

/**
 * How far aliases may multiply a file's values (the yaml package's
 * maxAliasCount). An alias bomb ("billion laughs": aliases of aliases of
 * aliases) would otherwise take every byte of memory; a definition or config
 * written by hand never comes near.
 */
export const MAX_ALIAS_COUNT = 100;

export class YamlFile {
  private constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  static parse(file: string, text: string): YamlFile {
    const lines = new LineCounter();
    const doc = YAML.parseDocument(text, { lineCounter: lines, prettyErrors: true });
    if (doc.errors.length > 0) throw configError(`${file}: ${doc.errors[0]!.message}`, { subject: file, reason: 'bad-yaml' });
    return new YamlFile(file, doc, lines);
  }

  toJS(): unknown {
    try {
      return this.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {};
    } catch (e) {
      const bomb = e instanceof ReferenceError && /alias count/.test(e.message);
      throw configError(`${this.file}: ${bomb ? `its aliases (*name) expand beyond ${MAX_ALIAS_COUNT} copies, as an alias bomb ("billion laughs") does` : (e as Error).message}`, {
        subject: this.file,
        reason: 'bad-yaml',
        hint: 'write the values out, or use fewer aliases, and none of a value that holds aliases itself',
        cause: e,
      });
    }
  }

  /** `file:line: key.path[2].name: message`, with the line of the nearest node that exists. */
  error(path: KeyPath, message: string, reason = 'bad-config'): AirlockError {
    return configError(`${this.where(path)}${keyName(path)}: ${message}`, { subject: this.file, reason });
  }

  /** The first Ajv error, said as the key it is about. */
  schemaError(err: ErrorObject, reason = 'bad-config'): AirlockError {
    const path = keyPathOf(err);
    const params = err.params as Record<string, unknown>;
    if (typeof params.additionalProperty === 'string') return this.error([...path, params.additionalProperty], 'unknown key', reason);
    if (typeof params.missingProperty === 'string') return this.error([...path, params.missingProperty], 'is required', reason);
    const allowed = Array.isArray(params.allowedValues) ? `: one of ${params.allowedValues.map((v) => JSON.stringify(v)).join(', ')}` : '';
    return this.error(path, `${err.message ?? 'is invalid'}${allowed}`, reason);
  }

  private where(path: KeyPath): string {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === 'object' && node.range) return `${this.file}:${this.lines.linePos(node.range[0]).line}: `;
    }
    return `${this.file}: `;
  }
}
