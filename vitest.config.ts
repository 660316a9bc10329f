// The suite runs on shared 2-core machines (CI too), often beside other CPU-bound work. Tests
// that run guests or spawn rvm carry explicit timeouts (test files and their describe blocks);
// these defaults are the safety net for the rest: generous, never vitest's 5 s.
import { defineConfig } from "vitest/config";

export default defineConfig({
  // src/code-cache.cts is CommonJS TypeScript (bin/rvm.js requires its output): Vite transforms
  // .ts, .mts and .tsx only unless told.
  oxc: { include: /\.(c|m)?tsx?$/ },
  test: {
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
});
