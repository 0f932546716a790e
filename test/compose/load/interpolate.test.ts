import { test } from 'node:test';
import assert from 'node:assert/strict';
import { substitute, TemplateError } from '../../../src/compose/load/template.js';
import { interpolationEnv } from '../../../src/compose/load/index.js';
import { load, rejectsConfig, service, web } from './helpers.js';

// The variables used by docker/cli's own template tests: FOO set, BAR set but empty.
const vars: Record<string, string> = { FOO: 'first', BAR: '' };
const lookup = (name: string) => (Object.hasOwn(vars, name) ? vars[name] : undefined);

test('substitution: every form docker supports', () => {
  const cases: [string, string][] = [
    ['$$', '$'],
    ['$${foo}', '${foo}'],
    ['a $$FOO b', 'a $FOO b'],
    ['foo', 'foo'],
    ['This $FOO var', 'This first var'],
    ['This ${FOO} var', 'This first var'],
    ['${FOO}${FOO}', 'firstfirst'],
    ['This ${missing} var', 'This  var'],
    ['This ${BAR} var', 'This  var'],
    ['ok ${missing:-def}', 'ok def'],
    ['ok ${missing-def}', 'ok def'],
    ['ok ${BAR:-def}', 'ok def'], // soft default: unset or empty
    ['ok ${BAR-def}', 'ok '], // hard default: unset only
    ['ok ${FOO:-def}', 'ok first'],
    ['ok ${FOO-def}', 'ok first'],
    ['ok ${BAR:-/non:-alphanumeric}', 'ok /non:-alphanumeric'],
    ['ok ${FOO:?err}', 'ok first'],
    ['ok ${FOO?err}', 'ok first'],
    ['ok ${BAR?err}', 'ok '], // `?` only requires the variable to be set
    ['$foo_bar', ''], // names are case-sensitive and may hold underscores
    ['${_x}y', 'y'],
    ['x$FOO.y', 'xfirst.y'],
    ['$FOO/$FOO', 'first/first'],
  ];
  for (const [template, want] of cases) assert.equal(substitute(template, lookup), want, template);
});

test('substitution: defaults are not substituted again, as in docker', () => {
  // docker's pattern stops a default at the first `}`: `${A:-${B}}` keeps "${B" as text.
  assert.equal(substitute('${missing:-${FOO}}', lookup), '${FOO}');
  assert.equal(substitute('${FOO:-${other}}', lookup), 'first}');
  // The unbraced form takes a modifier too, to the end of the string.
  assert.equal(substitute('$missing-fallback', lookup), 'fallback');
  assert.equal(substitute('$FOO-suffix', lookup), 'first');
});

test('substitution: invalid templates', () => {
  for (const template of ['${', '$}', '${}', '${ }', '${ foo}', '${foo }', '${foo!}', 'trailing $', '$1', 'a ${FOO']) {
    assert.throws(
      () => substitute(template, lookup),
      (e: unknown) => e instanceof TemplateError && e.kind === 'invalid',
      template,
    );
  }
});

test('substitution: required variables', () => {
  const cases: [string, string][] = [
    ['not ok ${UNSET_VAR:?Mandatory Variable Unset}', 'required variable UNSET_VAR is missing a value: Mandatory Variable Unset'],
    ['not ok ${BAR:?Mandatory Variable Empty}', 'required variable BAR is missing a value: Mandatory Variable Empty'],
    ['not ok ${UNSET_VAR:?}', 'required variable UNSET_VAR is missing a value'],
    ['not ok ${UNSET_VAR?Mandatory Variable Unset}', 'required variable UNSET_VAR is missing a value: Mandatory Variable Unset'],
    ['not ok ${UNSET_VAR?}', 'required variable UNSET_VAR is missing a value'],
    // docker can lose this error when a later variable succeeds; airlock keeps it.
    ['${UNSET_VAR:?gone} ${FOO}', 'required variable UNSET_VAR is missing a value: gone'],
  ];
  for (const [template, message] of cases) {
    assert.throws(
      () => substitute(template, lookup),
      (e: unknown) => e instanceof TemplateError && e.kind === 'required' && e.message.startsWith(message),
      template,
    );
  }
});

test('interpolation applies to values, not keys, x-* fields included', async () => {
  const { config } = await load(
    `
x-meta:
  owner: $OWNER
services:
  web:
    image: "registry.local/\${APP}:\${TAG:-latest}"
    labels:
      $KEY: $VALUE
    environment:
      - HOME_DIR=$$HOME
`,
    { env: { OWNER: 'ops', APP: 'shop', KEY: 'k', VALUE: 'v' } },
  );
  const s = config.services[0];
  assert.ok(s);
  assert.equal(s.image, 'registry.local/shop:latest');
  assert.deepEqual(s.labels, { $KEY: 'v' });
  assert.deepEqual(s.environment, { HOME_DIR: '$HOME' });
  assert.deepEqual(config.extensions, { 'x-meta': { owner: 'ops' } });
});

test('interpolated strings are cast where docker expects numbers and booleans', async () => {
  const s = await service(
    web(`
read_only: \${RO}
tty: "\${TTY}"
ports:
  - target: \${TARGET}
    published: \${PUB}
deploy:
  replicas: \${N}
  update_config:
    parallelism: \${PAR}
    max_failure_ratio: \${RATIO}
  restart_policy:
    max_attempts: \${TRIES}
healthcheck:
  retries: \${RETRIES}
ulimits:
  nproc: \${NPROC}
  nofile:
    soft: \${SOFT}
    hard: \${HARD}
secrets:
  - source: s
    mode: \${MODE}
`) + 'secrets:\n  s:\n    external: ${EXT}\n',
    {
      env: {
        RO: 'yes', TTY: 'off', TARGET: '80', PUB: '8080', N: '3', PAR: '2', RATIO: '0.5', TRIES: '5',
        RETRIES: '4', NPROC: '100', SOFT: '10', HARD: '20', MODE: '0440', EXT: 'true',
      },
    },
  );
  assert.equal(s.read_only, true);
  assert.equal(s.tty, false);
  assert.deepEqual(s.ports, [{ target: 80, published: 8080, protocol: 'tcp', mode: 'ingress' }]);
  assert.equal(s.deploy.replicas, 3);
  assert.equal(s.deploy.update_config?.parallelism, 2);
  assert.equal(s.deploy.update_config?.max_failure_ratio, 0.5);
  assert.equal(s.deploy.restart_policy?.max_attempts, 5);
  assert.equal(s.healthcheck?.retries, 4);
  assert.deepEqual(s.ulimits, { nproc: { soft: 100, hard: 100 }, nofile: { soft: 10, hard: 20 } });
  // strconv.Atoi reads "0440" as decimal 440: docker's cast, kept as docker does it.
  assert.equal(s.secrets[0]?.mode, 440);
});

test('a string interpolation did not change is not cast, so the schema refuses it as docker does', async () => {
  await rejectsConfig(load(web('deploy:\n  replicas: "3"')), {
    subject: 'compose.yml',
    reason: 'compose-schema',
    includes: ['services.web.deploy.replicas', 'must be an integer'],
  });
});

test('a value that cannot be cast names the path', async () => {
  await rejectsConfig(load(web('deploy:\n  replicas: ${N}'), { env: { N: 'three' } }), {
    subject: 'compose.yml',
    includes: ['services.web.deploy.replicas', 'failed to cast'],
  });
  await rejectsConfig(load(web('read_only: ${RO}'), { env: { RO: 'maybe' } }), {
    includes: ['services.web.read_only', 'invalid boolean: maybe'],
  });
});

test('a missing required variable names the file, the key path and the message', async () => {
  await rejectsConfig(load(web('environment:\n  - DB_URL=${DB_URL:?set the database URL}'), { name: 'stack/compose.yml' }), {
    subject: 'stack/compose.yml',
    reason: 'compose-variable-missing',
    includes: ['stack/compose.yml', 'services.web.environment[0]', 'required variable DB_URL is missing a value: set the database URL'],
  });
});

test('an invalid interpolation format names the file and the key path', async () => {
  await rejectsConfig(load(web('command: echo ${not valid}')), {
    subject: 'compose.yml',
    reason: 'compose-interpolation',
    includes: ['services.web.command', 'invalid interpolation format', 'escape any $ with another $'],
  });
});

test('interpolationEnv: process environment > host config > bundle env files', () => {
  const env = interpolationEnv([
    { source: 'process environment', vars: { TAG: 'from-process', EMPTY: '' } },
    { source: 'host config', vars: { TAG: 'from-host', REPLICAS: '5', EMPTY: 'from-host' } },
    { source: 'bundle env file .env', vars: { TAG: 'from-bundle', REPLICAS: '1', DOMAIN: 'example.test' } },
  ]);
  assert.deepEqual(env, { TAG: 'from-process', REPLICAS: '5', DOMAIN: 'example.test', EMPTY: '' });
  assert.deepEqual(interpolationEnv([]), {});
});

test('the merged layers drive interpolation', async () => {
  const env = interpolationEnv([
    { source: 'process environment', vars: {} },
    { source: 'host config', vars: { N: '4' } },
    { source: 'bundle env file', vars: { N: '1', TAG: '1.2.3' } },
  ]);
  const s = await service('services:\n  web:\n    image: app:${TAG}\n    deploy:\n      replicas: ${N}\n', { env });
  assert.equal(s.image, 'app:1.2.3');
  assert.equal(s.deploy.replicas, 4);
});
