/**
 * The crash table (Mender's way: kill the process in a chosen state, assert
 * where it ends up): for each crash point of an apply of v2 over v1, what
 * the engine runs right after the kill and where `airlock recover` leaves
 * the stack and its deployment. test/apply/crash-fake.test.ts runs every row
 * in-process on the fake engine; test/apply/crash.test.ts runs a chosen few
 * against a real dockerd, with kill -9.
 */
import type { ServiceSpec } from '../../src/docker/index.js';
import type { CrashPoint } from '../../src/process/fault.js';
import { specDrift } from './apply.js';

export type Point = Exclude<CrashPoint, 'import-mid'>;

export interface Row {
  point: Point;
  /** What the engine runs right after the kill, before any recovery. */
  killed: 'old' | 'mixed' | 'new';
  /** Where recovery leaves the stack. */
  ends: 'old' | 'new';
  /** The interrupted deployment's status after recovery, and its reason. */
  status: 'failed' | 'rolled-back' | 'committed';
  reason: RegExp | null;
  /** What `airlock recover` reports having done. */
  recoverEvent: 'nothing-to-undo' | 'restored' | 'committed' | null;
}

const before_ = (step: string) => new RegExp(`^interrupted at step ${step}, before any service changed; apply the bundle again to resume$`);
const restored = (step: string) => new RegExp(`^interrupted at step ${step}; restored the previous specs$`);
const committed = (step: string) => new RegExp(`^interrupted at step ${step}, after every service was sent; the stack ran the new specs, healthy, so recovery committed it$`);

export const TABLE: Row[] = [
  { point: 'verify', killed: 'old', ends: 'old', status: 'failed', reason: before_('verify'), recoverEvent: 'nothing-to-undo' },
  { point: 'store', killed: 'old', ends: 'old', status: 'failed', reason: before_('store'), recoverEvent: 'nothing-to-undo' },
  { point: 'load', killed: 'old', ends: 'old', status: 'failed', reason: before_('load'), recoverEvent: 'nothing-to-undo' },
  { point: 'prepare', killed: 'old', ends: 'old', status: 'failed', reason: before_('prepare'), recoverEvent: 'nothing-to-undo' },
  { point: 'services', killed: 'old', ends: 'old', status: 'rolled-back', reason: restored('services'), recoverEvent: 'restored' },
  { point: 'services-mid', killed: 'mixed', ends: 'old', status: 'rolled-back', reason: restored('services'), recoverEvent: 'restored' },
  // Every service was sent and the new specs run healthy: recovery commits them rather than undo and redo.
  { point: 'converge', killed: 'new', ends: 'new', status: 'committed', reason: committed('converge'), recoverEvent: 'committed' },
  { point: 'commit', killed: 'new', ends: 'new', status: 'committed', reason: committed('commit'), recoverEvent: 'committed' },
  { point: 'after-commit', killed: 'new', ends: 'new', status: 'committed', reason: null, recoverEvent: null },
  { point: 'cleanup', killed: 'new', ends: 'new', status: 'committed', reason: null, recoverEvent: null },
];

const STEP_OF_INNER: Partial<Record<Point, string>> = { 'services-mid': 'services', 'after-commit': 'commit' };

/** The step the journal names for a kill at `point`: an inner point's step. */
export const stepOf = (point: Point): string => STEP_OF_INNER[point] ?? point;

/** The interrupted deployment's status right after the kill: committed once the commit step ran. */
export const statusAfterKill = (point: Point): 'running' | 'committed' => (point === 'after-commit' || point === 'cleanup' ? 'committed' : 'running');

/** old, new or in between: the engine's specs against those of v1 and, once recorded, of v2. */
export function classify(engine: Map<string, ServiceSpec>, v1: Map<string, ServiceSpec>, v2: Map<string, ServiceSpec>): 'old' | 'new' | 'mixed' {
  if (specDrift(v1, engine).length === 0) return 'old';
  if (v2.size > 0 && specDrift(v2, engine).length === 0) return 'new';
  return 'mixed';
}

/** The configs a set of service specs uses, by name. */
export const configNames = (specs: Map<string, ServiceSpec>): string[] =>
  [...new Set([...specs.values()].flatMap((s) => (s.TaskTemplate?.ContainerSpec?.Configs ?? []).map((c) => c.ConfigName!)))].sort();
