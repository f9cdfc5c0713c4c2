import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { svelteTesting } from '@testing-library/svelte/vite';

// Served by Tauri from ui/dist (WebKitGTK on Linux, WKWebView on macOS):
// relative asset paths, Safari 15 syntax level, nothing loaded from the network.
export default defineConfig({
  base: './',
  clearScreen: false,
  plugins: [svelte(), svelteTesting()],
  server: {
    port: 5173,
    strictPort: true,
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'safari15',
    sourcemap: false,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
    // Speed is measured by benches, not by test time-outs: a fresh 2-core CI
    // machine once took 7 s for a 0.3 s test while it compiled the suite.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
