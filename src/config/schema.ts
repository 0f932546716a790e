import type { ValidateFunction } from 'ajv';

/**
 * A schema validator compiled on its first use rather than at import:
 * compiling costs milliseconds that the commands which never read that
 * file should not pay.
 */
export function compiledOnce(compile: () => ValidateFunction): () => ValidateFunction {
  let compiled: ValidateFunction | undefined;
  return () => (compiled ??= compile());
}
