/**
 * Recordings of what real engines store for the specs airlock sends: each
 * service spec as sent, next to the service as the engine then returned it
 * (as balena-supervisor keeps docker-states). They pin the engine defaults
 * of src/stack/engine-defaults.ts per engine version, and the planner's
 * unit tests run on them without an engine.
 *
 * The tests that deploy to a real engine write them when run with
 * AIRLOCK_RECORD_ENGINE_SPECS=1, into test/stack/engine-specs/docker-<version>/.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Docker } from '../../src/docker/index.js';
import type { NamedServiceSpec, Service } from '../../src/docker/types.js';
import { ENGINE_RULES, asEngineStores, ruleHolds, type EngineRule } from '../../src/stack/engine-defaults.js';
import { stable } from '../../src/stack/spec-diff.js';
import { REPO } from './fixtures.js';

export const ENGINE_SPECS_DIR = join(REPO, 'test/stack/engine-specs');

export interface EngineRecording {
  engine: { version: string; apiVersion: string };
  /** What was deployed: a parity compose file, or a test's own specs. */
  source: string;
  services: SentAndStored[];
}

export const recordingEngineSpecs = (): boolean => process.env['AIRLOCK_RECORD_ENGINE_SPECS'] === '1';

/** Writes `name`.json for the engine `docker` talks to; paths inside the checkout become /repo. */
export async function recordEngineSpecs(docker: Docker, name: string, source: string, sent: NamedServiceSpec[], inspected: Service[]): Promise<string> {
  const v = await docker.system.version();
  const byName = new Map(inspected.map((s) => [s.Spec.Name, s]));
  const recording: EngineRecording = {
    engine: { version: v.Version, apiVersion: await docker.client.apiVersion() },
    source,
    services: sent.map((spec) => {
      const inspect = byName.get(spec.Name);
      if (!inspect) throw new Error(`${name}: the engine has no service ${spec.Name}`);
      return { sent: spec, inspect };
    }),
  };
  const dir = join(ENGINE_SPECS_DIR, `docker-${v.Version}`);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  writeFileSync(path, `${JSON.stringify(recording, null, 2).split(REPO).join('/repo')}\n`);
  return path;
}

/** Every recording, by engine folder and name. */
export function loadEngineRecordings(): { engine: string; name: string; recording: EngineRecording }[] {
  return readdirSync(ENGINE_SPECS_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) =>
      readdirSync(join(ENGINE_SPECS_DIR, d.name))
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => ({
          engine: d.name,
          name: f.slice(0, -'.json'.length),
          recording: JSON.parse(readFileSync(join(ENGINE_SPECS_DIR, d.name, f), 'utf8')) as EngineRecording,
        })),
    );
}

export interface SentAndStored {
  sent: NamedServiceSpec;
  inspect: Service;
}

/**
 * The rules holding at `apiVersion` that none of `pairs` needs: without any
 * one of them, every spec sent still compares equal to what the engine
 * stored. Empty when the engine was seen doing everything the table says.
 */
export function unwitnessedRules(pairs: SentAndStored[], apiVersion: string): EngineRule[] {
  return ENGINE_RULES.filter((rule) => {
    if (!ruleHolds(rule, apiVersion)) return false;
    const others = ENGINE_RULES.filter((r) => r !== rule);
    const same = (p: SentAndStored) => stable(asEngineStores(p.sent, apiVersion, others)) === stable(asEngineStores(p.inspect.Spec, apiVersion, others));
    return pairs.every(same);
  });
}
