// Two pages, one build: the monitoring console at `/` and the victim app at `/app/`.
// `npm run build` writes `dist/`, which the `bulwark` binary embeds (crates/server/src/web.rs).
import { resolve } from "node:path";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Hashed file names under /assets/ can be cached forever; the HTML is served no-cache.
    assetsDir: "assets",
    rollupOptions: {
      input: {
        console: resolve(import.meta.dirname, "index.html"),
        victim: resolve(import.meta.dirname, "app/index.html"),
      },
    },
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8080", "/healthz": "http://127.0.0.1:8080" },
  },
});
