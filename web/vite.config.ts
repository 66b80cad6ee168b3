import { defineConfig } from "vite";

// Same origin as the API: in development Vite proxies the API paths to the
// local Envoy; in production Envoy serves the built files itself.
const edge = process.env.AVIARY_EDGE_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // The Content-Security-Policy allows no inline script: the preload
    // polyfill Vite would inline is not needed by the browsers we support.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: "es2022",
    sourcemap: false,
  },
  server: {
    proxy: { "/v1": edge, "/media": edge, "/openapi.json": edge },
  },
});
