#!/usr/bin/env node
// Writes the package's copyright file (/usr/share/doc/airlock/copyright) to stdout: airlock's
// own notice (packaging/debian/copyright.in), then the license of everything else the package
// carries: the Node.js runtime's LICENSE (which lists V8, OpenSSL, ICU, libuv, ...) and each npm
// module in the bundle. Full copies of the Apache License 2.0 are replaced by a pointer to
// /usr/share/common-licenses/Apache-2.0, as Debian policy (12.5) asks; every other text is kept
// as its authors wrote it.
//
// usage: node packaging/copyright.mjs HEADER NODE_LICENSE NODE_LABEL NODE_MODULES META [NAME...]
//   HEADER: the notice, placeholders already filled in; NODE_LABEL: e.g. "Node.js 24.21.0";
//   NODE_MODULES: the build's node_modules; META: bundle.mjs's JSON; NAME: extra modules shipped.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const [header, nodeLicense, nodeLabel, modules, meta, ...extra] = process.argv.slice(2);
if (!meta) {
  console.error('usage: node packaging/copyright.mjs HEADER NODE_LICENSE NODE_LABEL NODE_MODULES META [NAME...]');
  process.exit(2);
}

/** Replaces each full Apache License 2.0 text (through "END OF TERMS AND CONDITIONS") by a pointer. */
export function shortenApache(text) {
  return text.replace(
    /^([ \t]*)Apache License\s*\n\s*Version 2\.0, January 2004[\s\S]*?END OF TERMS AND CONDITIONS[^\n]*$/gm,
    (_m, indent) => `${indent}Apache License, Version 2.0: on Debian systems the full text is in\n${indent}/usr/share/common-licenses/Apache-2.0.`,
  );
}

const rule = '-'.repeat(78);
const parts = [readFileSync(header, 'utf8').trimEnd()];
parts.push(`${rule}\n${nodeLabel}\n\n${shortenApache(readFileSync(nodeLicense, 'utf8')).trimEnd()}`);
const names = [...new Set([...JSON.parse(readFileSync(meta, 'utf8')).packages, ...extra])].sort();
for (const name of names) {
  const dir = join(modules, name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const license = typeof pkg.license === 'string' ? pkg.license : (pkg.licenses?.map((l) => l.type).join(' or ') ?? 'see below');
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
  const text = file ? shortenApache(readFileSync(join(dir, file), 'utf8')).trimEnd() : `(the module ships no license file; its package.json says: ${license})`;
  parts.push(`${rule}\nnpm module ${name} ${pkg.version}, license ${license}\n\n${text}`);
}
const out = `${parts.join('\n\n')}\n`;
if (/TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION/.test(out)) {
  console.error('copyright: a full Apache License text is left that shortenApache() did not recognise');
  process.exit(1);
}
process.stdout.write(out);
