// Bundles built_in_ai_entry.mjs (with web/node_modules' @built-in-ai/core and ai) into one classic script:
//   node tests/third_party/bundle.mjs OUTFILE
/* global process, URL */
import * as esbuild from "../../web/node_modules/esbuild/lib/main.js";

const web = new URL("../../web/node_modules/", import.meta.url).pathname;
await esbuild.build({
  entryPoints: [new URL("built_in_ai_entry.mjs", import.meta.url).pathname], outfile: process.argv[2], bundle: true,
  format: "iife", platform: "browser", target: "es2022", nodePaths: [web], logLevel: "warning",
  define: {"process.env.NODE_ENV": '"production"'},
});
