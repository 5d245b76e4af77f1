// @ts-check
// dist/nomoat-sw.js, the Service Worker of llm.serve() (serve.js): build.mjs bundles this entry and
// sw.js into one classic script, which a page registers as nomoat-sw.js?path=/v1.
import {installServiceWorker} from "./sw.js";

installServiceWorker(self);
