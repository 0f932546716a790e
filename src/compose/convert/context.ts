/** What every per-concern conversion needs: the stack, the whole model, the API version, and where notices go. */
import type { ComposeConfig, Duration } from '../model.js';
import { gateMessage, supports, type VersionGate } from './api-version.js';
import { DurationError, parseDuration } from '../../units/duration.js';
import type { Notices } from './notices.js';

/** A secret or config as a service refers to it: the engine name, and the name docker would have used (for ordering). */
export interface FileObjectName {
  name: string;
  dockerName: string;
}

export interface ConvertContext {
  stack: string;
  config: ComposeConfig;
  apiVersion: string;
  notices: Notices;
  secrets: ReadonlyMap<string, FileObjectName>;
  configs: ReadonlyMap<string, FileObjectName>;
}

/** Nanoseconds, or undefined (with an error notice) when the duration does not parse. */
export function durationAt(ctx: Pick<ConvertContext, 'notices'>, path: string, value: Duration | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseDuration(value);
  } catch (e) {
    if (!(e instanceof DurationError)) throw e;
    ctx.notices.error(path, `${e.message}: write a number with a unit, e.g. 10s, 1m30s, 500ms`);
    return undefined;
  }
}

/**
 * True when the API version carries the gated field. Otherwise notes it at
 * `<servicePath>.<key>`: a warning (the field is left out), or an error when
 * leaving it out would change what the stack does.
 */
export function allowed(ctx: Pick<ConvertContext, 'apiVersion' | 'notices'>, servicePath: string, gate: VersionGate): boolean {
  if (supports(ctx.apiVersion, gate.minVersion)) return true;
  const path = `${servicePath}.${gate.key}`;
  if (gate.refuse) ctx.notices.error(path, gateMessage(gate, ctx.apiVersion));
  else ctx.notices.warn(path, gateMessage(gate, ctx.apiVersion));
  return false;
}
