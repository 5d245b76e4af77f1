// The page side of tests/test_web_third_party.py: @built-in-ai/core (a published Vercel AI SDK provider
// written for Chrome's built-in Prompt API) and the `ai` package, unchanged, as window.thirdParty.
// bundle.mjs bundles this with esbuild for the test page.
import {builtInAI, doesBrowserSupportBuiltInAI} from "@built-in-ai/core";
import {generateObject, generateText, jsonSchema, streamText} from "ai";

window.thirdParty = {builtInAI, doesBrowserSupportBuiltInAI, generateObject, generateText, jsonSchema, streamText};
