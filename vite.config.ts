import { defineConfig } from 'vitest/config'

// One Vite config for three jobs: `vite build` makes the library in dist/,
// the dev server serves the demo and the browser-test fixtures from the project
// root (so pages can import /src/*.ts directly), and Vitest runs the unit tests.
export default defineConfig({
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    minify: false,
    sourcemap: true,
    // Four entry points: the core (`dpop-spa`), the bindings (`dpop-spa/react`,
    // `dpop-spa/vue`) and the refresh worker (`dpop-spa/sw`); code they share lands in a
    // chunk, so an app has one client module.
    lib: {
      entry: { index: 'src/index.ts', react: 'src/react.ts', vue: 'src/vue.ts', sw: 'src/sw.ts' },
      formats: ['es'],
      fileName: (_format, name) => `${name}.js`,
    },
    rolldownOptions: {
      external: ['oauth4webapi', 'idb-keyval', 'react', 'vue'],
      output: { chunkFileNames: 'chunks/[name]-[hash].js' },
    },
  },
  // Two browser-test runs at once (e2e/run-engines.ts) each have their own dep-optimizer cache.
  cacheDir: process.env.DPOP_TEST_VITE_CACHE ?? 'node_modules/.vite',
  server: {
    host: 'localhost',
    strictPort: true,
  },
  // Browser-test fixtures import these from node_modules; bundling them when the server
  // starts keeps Vite from reloading a page mid-test when it first meets one.
  optimizeDeps: {
    include: ['axios', 'ky', 'ofetch', 'eventsource', 'react', 'react-dom/client', 'vue'],
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'happy-dom',
    testTimeout: 20_000,
  },
})
