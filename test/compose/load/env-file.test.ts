import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseEnvFile } from '../../../src/compose/load/index.js';
import { load, rejectsConfig, service, tempTree } from './helpers.js';

const none = () => undefined;

test('env file lines, as docker reads them', () => {
  const env: Record<string, string> = { FROM_ENV: 'host value', EMPTY_IN_ENV: '' };
  const lookup = (k: string) => (Object.hasOwn(env, k) ? env[k] : undefined);
  const cases: [string, [string, string][]][] = [
    ['A=1\nB=2\n', [['A', '1'], ['B', '2']]],
    ['# a comment\n\n   \nA=1\n  # indented comment\n', [['A', '1']]],
    ['   A=indented key\n', [['A', 'indented key']]],
    ['Q="double quoted"\n', [['Q', '"double quoted"']]], // quotes are kept verbatim
    ["S='single'\n", [['S', "'single'"]]],
    ['T=trailing space   \n', [['T', 'trailing space   ']]],
    ['E=\n', [['E', '']]],
    ['EQ=a=b=c\n', [['EQ', 'a=b=c']]],
    ['H=#not a comment\n', [['H', '#not a comment']]],
    ['V=$HOME ${X}\n', [['V', '$HOME ${X}']]], // no interpolation
    ['FROM_ENV\n', [['FROM_ENV', 'host value']]], // a bare key takes the environment's value
    ['EMPTY_IN_ENV\n', [['EMPTY_IN_ENV', '']]],
    ['NOT_SET\nA=1\n', [['A', '1']]], // … and is left out when unset
    ['\uFEFFBOM=1\n', [['BOM', '1']]],
    ['CRLF=1\r\nNEXT=2\r\n', [['CRLF', '1'], ['NEXT', '2']]],
    ['NO_NEWLINE=1', [['NO_NEWLINE', '1']]],
    ['dotted.name=1\n', [['dotted.name', '1']]], // docker checks only for whitespace
  ];
  for (const [content, want] of cases) assert.deepEqual(parseEnvFile('x.env', content, lookup), want, JSON.stringify(content));
});

test('env file errors name the file and the line', () => {
  const cases: [string, string][] = [
    ['A=1\n=value\n', "line 2: no variable name on line '=value'"],
    ['A=1\nB=2\nBAD KEY=1\n', "line 3: variable 'BAD KEY' contains whitespaces"],
    ['TAB\tKEY\n', "line 1: variable 'TAB\tKEY' contains whitespaces"],
    ['SPACE =x\n', "line 1: variable 'SPACE ' contains whitespaces"],
  ];
  for (const [content, message] of cases) {
    assert.throws(
      () => parseEnvFile('/srv/app/bad.env', content, none),
      (e: Error & { subject?: string }) => e.message.includes('/srv/app/bad.env') && e.message.includes(message) && e.subject === '/srv/app/bad.env',
      JSON.stringify(content),
    );
  }
});

test('env_file from disk, relative to the working folder; environment overrides it', async () => {
  const tree = await tempTree({
    'env/common.env': '# shared\nLEVEL=info\nQUOTED="keep the quotes"\nPASSTHROUGH\nDROPPED_IF_UNSET\nEMPTY=\n',
    'env/web.env': 'LEVEL=debug\nONLY_WEB=yes\n',
  });
  try {
    const s = await service(
      `
services:
  web:
    image: nginx
    env_file:
      - ./env/common.env
      - env/web.env
    environment:
      ONLY_WEB: "no"
      FROM_COMPOSE: "1"
`,
      { workingDir: tree.dir, env: { PASSTHROUGH: 'from host', EMPTY: 'host fills empty' } },
    );
    assert.deepEqual(s.environment, {
      LEVEL: 'debug', // the later env file wins
      QUOTED: '"keep the quotes"',
      PASSTHROUGH: 'from host',
      EMPTY: 'host fills empty', // docker: an empty value is replaced by the variable when it is set
      ONLY_WEB: 'no', // environment beats env_file
      FROM_COMPOSE: '1',
    });
  } finally {
    await tree.cleanup();
  }
});

test('environment in list and map form; a key without a value is null when unset', async () => {
  const yaml = `
services:
  list:
    image: nginx
    environment:
      - PLAIN=1
      - EMPTY=
      - UNSET_VAR
      - SET_VAR
      - WITH=equals=inside
  map:
    image: nginx
    environment:
      PLAIN: 1
      FLAG: yes
      NOTHING:
      SET_VAR:
      EMPTY: ""
`;
  const { config } = await load(yaml, { env: { SET_VAR: 'from host' } });
  const byName = Object.fromEntries(config.services.map((s) => [s.name, s.environment]));
  assert.deepEqual(byName['list'], { PLAIN: '1', EMPTY: '', UNSET_VAR: null, SET_VAR: 'from host', WITH: 'equals=inside' });
  // YAML 1.1: `yes` is a boolean, which docker turns into the string "true".
  assert.deepEqual(byName['map'], { PLAIN: '1', FLAG: 'true', NOTHING: null, SET_VAR: 'from host', EMPTY: '' });
});

test('a key without a value in environment replaces the env file value, as in docker', async () => {
  const tree = await tempTree({ 'app.env': 'TOKEN=from-file\n' });
  try {
    const s = await service('services:\n  web:\n    image: nginx\n    env_file: app.env\n    environment: [TOKEN]\n', { workingDir: tree.dir });
    assert.deepEqual(s.environment, { TOKEN: null });
  } finally {
    await tree.cleanup();
  }
});

test('env_file problems are errors naming the files', async () => {
  const tree = await tempTree({ 'bad.env': 'GOOD=1\nNOT GOOD=2\n' });
  try {
    await rejectsConfig(load('services:\n  web:\n    image: nginx\n    env_file: missing.env\n', { workingDir: tree.dir }), {
      subject: 'compose.yml',
      reason: 'compose-env-file',
      includes: ['services.web.env_file', join(tree.dir, 'missing.env'), 'not found'],
    });
    await rejectsConfig(load('services:\n  web:\n    image: nginx\n    env_file: [bad.env]\n', { workingDir: tree.dir }), {
      subject: join(tree.dir, 'bad.env'),
      reason: 'compose-env-file',
      includes: ['line 2', "variable 'NOT GOOD' contains whitespaces"],
    });
  } finally {
    await tree.cleanup();
  }
});

test('an injected env file reader replaces the file system', async () => {
  const read: string[] = [];
  const s = await service('services:\n  web:\n    image: nginx\n    env_file: conf/app.env\n', {
    workingDir: '/bundle/stack',
    readEnvFile: async (p) => {
      read.push(p);
      return 'A=1\n';
    },
  });
  assert.deepEqual(read, ['/bundle/stack/conf/app.env']);
  assert.deepEqual(s.environment, { A: '1' });
});
