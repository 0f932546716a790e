/** Shared helpers for the compose loader tests. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AirlockError } from '../../../src/errors/index.js';
import { loadCompose, type LoadComposeResult } from '../../../src/compose/load/index.js';
import type { ServiceConfig } from '../../../src/compose/model.js';

/** Fixture files live next to the test sources (tsc does not copy them to dist). */
export const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../test/compose/load/fixtures');

export interface LoadOptions {
  env?: Record<string, string>;
  workingDir?: string;
  name?: string;
  readEnvFile?: (absPath: string) => Promise<string>;
}

/** Loads one compose file given as text. */
export function load(yaml: string, opts: LoadOptions = {}): Promise<LoadComposeResult> {
  return loadCompose({
    files: [{ name: opts.name ?? 'compose.yml', content: yaml }],
    workingDir: opts.workingDir ?? '/srv/app',
    env: opts.env ?? {},
    ...(opts.readEnvFile === undefined ? {} : { readEnvFile: opts.readEnvFile }),
  });
}

/** Loads one file and returns its only (or named) service. */
export async function service(yaml: string, opts: LoadOptions = {}, name?: string): Promise<ServiceConfig> {
  const { config } = await load(yaml, opts);
  const s = name === undefined ? config.services[0] : config.services.find((x) => x.name === name);
  assert.ok(s, 'service not found');
  return s;
}

/** A compose file holding one service `web` with the given YAML lines under it. */
export function web(lines: string): string {
  const body = lines
    .trim()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
  return `services:\n  web:\n    image: nginx\n${body}\n`;
}

/** Asserts that `p` rejects with a `config` AirlockError whose message holds every fragment. */
export async function rejectsConfig(
  p: Promise<unknown>,
  expect: { subject?: string; includes: string[]; reason?: string },
): Promise<AirlockError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof AirlockError, `expected an AirlockError, got ${String(caught)}`);
  assert.equal(caught.kind, 'config', caught.message);
  if (expect.subject !== undefined) assert.equal(caught.subject, expect.subject);
  if (expect.reason !== undefined) assert.equal(caught.reason, expect.reason, caught.message);
  for (const fragment of expect.includes) {
    assert.ok(caught.message.includes(fragment), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(fragment)}`);
  }
  assert.ok(caught.hint !== undefined && caught.hint.length > 0, 'an error carries a hint');
  return caught;
}

/** A temporary folder with the given files written into it. */
export async function tempTree(files: Record<string, string>): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-compose-'));
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  }
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
