// ESLint 9 flat config: @eslint/js's recommended rules over web/src, web/test and the examples,
// with each file's globals (browser and worker for the page side, node for the build and tests,
// webextensions for the extension). Paths are relative to the repository root, where
// `npm run lint` (in web/) runs it with this config; `make test` too.
import js from "@eslint/js";
import globals from "globals";

export default [
  {ignores: ["**/dist/", "**/node_modules/", "web/src/generated/"]},
  js.configs.recommended,
  {
    files: ["web/src/**/*.js", "web/src/**/*.mjs"],
    languageOptions: {globals: {...globals.browser, ...globals.worker}},
  },
  {
    files: ["web/build.mjs", "web/eslint.config.js", "web/test/**/*.js"],
    languageOptions: {globals: globals.node},
  },
  {
    files: ["examples/**/*.js"],
    languageOptions: {sourceType: "script", globals: {...globals.browser, ...globals.webextensions}},
  },
  {
    files: ["examples/chat/*.js", "examples/extension/offscreen.js", "examples/extension/client.js"],
    languageOptions: {sourceType: "module"},
  },
  {
    // trust.js defines this for background.js and offscreen.js (as a classic script, ahead of them)
    files: ["examples/extension/background.js", "examples/extension/offscreen.js"],
    languageOptions: {globals: {nomoatTrusted: "readonly"}},
  },
  {files: ["examples/extension/background.js"], languageOptions: {globals: globals.serviceworker}},
  // window.llm: nomoat.js in the chat page, client.js in the popup and the panel
  {files: ["examples/chat/*.js", "examples/extension/popup.js", "examples/extension/panel.js"],
    languageOptions: {globals: {llm: "readonly"}}},
  {rules: {"no-unused-vars": ["error", {caughtErrors: "none"}]}},
];
