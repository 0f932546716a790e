/**
 * The inbox order as pure logic (the real order, with signed bundles and a
 * running agent, is in agent-faults.test.ts): split sets by the version
 * their index names, unreadable files by name with numbers as numbers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InboxFile } from '../../src/agent/inbox/inbox-file.js';
import type { InboxItem } from '../../src/agent/inbox/part-sets.js';
import { inVersionOrder } from '../../src/agent/inbox/version-order.js';

const file = (name: string): InboxFile => ({ source: 'inbox', path: `/nonexistent/airlock-inbox/${name}`, name, size: 1, mtimeMs: 0 });
const parts = (name: string, label: string): InboxItem => ({ kind: 'parts', index: file(name), parts: [], label });
const nameOf = (i: InboxItem): string => (i.kind === 'parts' || i.kind === 'waiting' ? i.index.name : i.file.name);

test('split sets are ordered by the version their index names, not by file name', async () => {
  const items = [parts('z.airlock.parts', 'demo 1.0.100'), parts('a.airlock.parts', 'demo 1.0.91'), parts('m.airlock.parts', 'demo 1.0.99-rc.1'), parts('b.airlock.parts', 'demo 1.0.99')];
  assert.deepEqual((await inVersionOrder(items)).map(nameOf), ['a.airlock.parts', 'm.airlock.parts', 'b.airlock.parts', 'z.airlock.parts']);
});

test('files whose version cannot be read keep file-name order, numbers compared as numbers, after every readable bundle', async () => {
  const items: InboxItem[] = [{ kind: 'bundle', file: file('demo-1.0.100.airlock') }, { kind: 'bundle', file: file('demo-1.0.91.airlock') }, parts('q.airlock.parts', 'demo 2.0.0'), { kind: 'lone', file: file('x.airlock.part-0001') }];
  assert.deepEqual((await inVersionOrder(items)).map(nameOf), ['q.airlock.parts', 'demo-1.0.91.airlock', 'demo-1.0.100.airlock', 'x.airlock.part-0001']);
});
