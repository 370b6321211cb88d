// The import rules of the repository, checked by `npm run lint:deps`
// (dependency-cruiser). Imports run one way: cmd/ wires internal/, a folder
// of internal/ uses the folders below it and never the other way round, and
// product code (cmd/ and internal/ without their tests) never reaches into
// test code. A .cjs file because package.json says "type": "module".
//
// Only product code is cruised: everything else is doNotFollow, so a test
// file is not read at all and shows up only as the target of an import,
// which is what product-only-to-product looks for (hence `depcruise cmd
// internal`, not tests/ or hack/). That keeps the folder graph to product
// code: a unit test's use of tests/support, which imports the product,
// would otherwise close a loop through every folder. Imports are written
// with their .ts extension and resolve as files; type-only imports count
// (tsPreCompilationDeps), as they tie folders together like any other.

/** Not product: tests beside the code, test-support folders named *test, tests/, and the hack/ scripts. */
const NON_PRODUCT = ['\\.test\\.ts$', '(^|/)[^/]*test/', '^tests/', '^hack/'];
/** Product code: what cmd/mirra.ts may load in a running agent. */
const PRODUCT = '^(cmd|internal)(/|$)';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-folder-cycle',
      severity: 'error',
      comment: 'Folders of product code import each other one way only: move what both sides need to the lower folder (or one of its own) instead.',
      scope: 'folder',
      from: { path: PRODUCT },
      to: { circular: true },
    },
    {
      name: 'no-module-cycle',
      severity: 'error',
      comment: 'No module imports itself through others.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'product-only-to-product',
      severity: 'error',
      comment: 'Product code never imports what is not product: tests/, a *test/ folder, a *.test.ts file, hack/.',
      from: { path: PRODUCT, pathNot: NON_PRODUCT },
      to: { path: NON_PRODUCT },
    },
    {
      name: 'product-not-to-fast-check',
      severity: 'error',
      comment: 'fast-check is a devDependency for property tests; product code does not load it.',
      from: { path: PRODUCT, pathNot: NON_PRODUCT },
      to: { path: '(^|/)node_modules/fast-check/' },
    },
    {
      name: 'internal-not-to-cmd',
      severity: 'error',
      comment: 'cmd/ wires internal/; internal/ never imports cmd/.',
      from: { path: '^internal/' },
      to: { path: '^cmd/' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve is a typo or a missing dependency.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: ['node_modules', ...NON_PRODUCT] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
