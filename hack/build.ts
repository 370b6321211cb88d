// `npm run build` (node hack/build.ts [outDir]): the agent as the image runs
// it, one minified JavaScript file, dist/mirra.mjs, bundled by esbuild from
// cmd/mirra.ts and what it imports (no tests, no test kits, only the code that
// is reached). The image needs no node_modules at all.
//
// Why a bundle (idle RSS of `mirra registry` on this machine, Node 24.21, the
// chart's NODE_OPTIONS, 2026-12-06): tsc's output run as ~170 modules plus
// node_modules: 91 MiB; the same code bundled and minified: 76 MiB (fewer
// module records, no source comments, one script); without the legal
// comments the source stays one-byte (a two-byte character in one comment
// doubled the 1.4 MB source string on the heap). Type stripping (running the
// .ts files) would add about 29 MiB for the TypeScript compiler it keeps.
//
// Node's builtins are loaded with require(), not as ES module namespaces:
// building the namespace of `node:http` reads every export, and its lazy
// getters (WebSocket, CloseEvent, MessageEvent) load Node's copy of undici;
// `node:tls`'s rootCertificates and `node:crypto`'s webcrypto likewise.
// Through require() only what the code touches is loaded: 76 -> 74 MiB idle.
//
// Type checking is tsc's (`npm run typecheck`); esbuild only strips types.
//
// Beside the bundle: dist/mirra-sendfile.node (hack/build-native.ts), the
// agent's sendfile for local blobs; the image's build stage has a C compiler.
import { builtinModules } from 'node:module';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { buildNative } from './build-native.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/**
 * Packages the agent never loads, left out of the bundle (only their
 * require() stays, never called): Fastify loads light-my-request for
 * inject() (tests), and its schema compilers (ajv, fast-json-stringify) only
 * without a compilersFactory, which internal/registry/app.ts gives. Parsing
 * their 300 KB in every agent cost 1 MiB of idle RSS (66 -> 65 MiB).
 * tests/deploy/build.test.ts runs the bundle without node_modules.
 */
const NEVER_LOADED = ['light-my-request', '@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler'];
/**
 * Loaded with import() by `mirra shards` and `mirra locate` when they read a
 * kubeconfig (internal/inspect/client-node.ts), never by the agent: left out
 * of the bundle, which esbuild would otherwise grow by client-node and its
 * dependencies (a literal import() is followed). The bundle run from a
 * checkout finds it in node_modules; the image has none, and there the
 * commands say so in one line, and work without a kubeconfig (the pod's
 * service account, the agent's own client).
 */
const CLI_ONLY = ['@kubernetes/client-node'];
const BUILTIN = 'builtin';

/** `import { x } from 'node:http'` becomes a CommonJS module that is `require('node:http')`: no namespace, no lazy getter run. */
function builtinsViaRequire(): Plugin {
  const names = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));
  return {
    name: 'builtins-via-require',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) =>
        args.namespace !== BUILTIN && names.has(args.path) ? { path: args.path.replace(/^node:/, ''), namespace: BUILTIN } : undefined,
      );
      b.onLoad({ filter: /.*/, namespace: BUILTIN }, (args) => ({
        contents: `module.exports = require(${JSON.stringify(`node:${args.path}`)});`,
        loader: 'js',
      }));
    },
  };
}

export async function buildAgent(outDir: string): Promise<string> {
  await rm(outDir, { recursive: true, force: true });
  const outfile = join(outDir, 'mirra.mjs');
  await build({
    absWorkingDir: ROOT,
    entryPoints: ['cmd/mirra.ts'],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    minify: true,
    legalComments: 'none',
    charset: 'ascii',
    // CommonJS dependencies call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as __mirraRequire } from 'node:module'; const require = __mirraRequire(import.meta.url);" },
    plugins: [builtinsViaRequire()],
    external: [...NEVER_LOADED, ...CLI_ONLY],
    logLevel: 'warning',
  });
  // Beside the bundle, where --sendfile=auto finds it (internal/registry/sendfile-addon.ts).
  await buildNative(outDir);
  return outfile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outDir = process.argv[2] ?? join(ROOT, 'dist');
  buildAgent(outDir).then(
    (outfile) => process.stdout.write(`${outfile}\n`),
    (err: unknown) => {
      process.stderr.write(`build: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
