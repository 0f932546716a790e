import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { DockerError, parseJsonMessages, type ProgressMessage } from '../../src/docker/index.js';

async function collect(chunks: (string | Uint8Array)[]): Promise<ProgressMessage[]> {
  const out: ProgressMessage[] = [];
  for await (const m of parseJsonMessages(Readable.from(chunks, { objectMode: true }))) out.push(m);
  return out;
}

test('objects split across chunks anywhere are reassembled', async () => {
  const text =
    '{"status":"Loading layer","progressDetail":{"current":512,"total":1024},"id":"abc"}\r\n' +
    '{"stream":"Loaded image: airlock-test/x:1 {not a brace \\" }\\n"}\r\n';
  // Every split point, including inside strings, escapes and the CRLF.
  for (let i = 1; i < text.length; i++) {
    const got = await collect([text.slice(0, i), text.slice(i)]);
    assert.equal(got.length, 2, `split at ${i}`);
    assert.deepEqual(got[0], { status: 'Loading layer', progressDetail: { current: 512, total: 1024 }, id: 'abc' });
    assert.equal(got[1]?.stream, 'Loaded image: airlock-test/x:1 {not a brace " }\n');
  }
});

test('one byte at a time, multi-byte UTF-8 split, objects back to back', async () => {
  const bytes = Buffer.from('{"status":"grüße ✓"}{"status":"two"}\n\n{"aux":{"ID":"sha256:1"}}');
  const chunks = [...bytes].map((b) => Uint8Array.of(b));
  const got = await collect(chunks);
  assert.deepEqual(got, [{ status: 'grüße ✓' }, { status: 'two' }, { aux: { ID: 'sha256:1' } }]);
});

test('an error object is thrown as a typed error after the messages before it', async () => {
  const seen: ProgressMessage[] = [];
  await assert.rejects(
    (async () => {
      for await (const m of parseJsonMessages(
        Readable.from(['{"status":"Loading layer"}\n{"errorDetail":{"mess', 'age":"unexpected EOF"},"error":"unexpected EOF"}\n']),
        { context: 'POST /images/load' },
      )) {
        seen.push(m);
      }
    })(),
    (e: unknown) => {
      assert.ok(e instanceof DockerError);
      assert.equal(e.kind, 'engine');
      assert.equal(e.reason, 'stream-error');
      assert.equal(e.daemonMessage, 'unexpected EOF');
      assert.match(e.message, /POST \/images\/load.*unexpected EOF/);
      return true;
    },
  );
  assert.deepEqual(seen, [{ status: 'Loading layer' }]);
});

test('garbage, a truncated object and an oversized object are protocol errors', async () => {
  await assert.rejects(collect(['{"a":1}\nnot json']), { reason: 'protocol' });
  await assert.rejects(collect(['{"a":1}\n{"b":']), { reason: 'protocol', message: /ended inside an object/ });
  const big = `{"s":"${'x'.repeat(2000)}"}`;
  await assert.rejects(
    (async () => {
      for await (const _ of parseJsonMessages(Readable.from([big.slice(0, 1500), big.slice(1500)]), { maxObjectBytes: 1000 })) {
        // drain
      }
    })(),
    { reason: 'protocol', message: /exceeds 1000 bytes/ },
  );
});

test('an empty stream yields nothing', async () => {
  assert.deepEqual(await collect([]), []);
  assert.deepEqual(await collect(['\r\n', '  ']), []);
});
