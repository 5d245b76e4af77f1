// Runs check.js in Firefox (WebDriver BiDi) or Chromium (CDP) through puppeteer-core, and prints
// its report as one line of JSON. tests/browsers/drivers.py starts it with one JSON argument:
// {browser: "firefox" | "chrome", executable, args, prefs, url, options, timeoutMs}.
// The page's console goes to stderr, so a failing test shows what the page said.
import {createRequire} from "node:module";

const require = createRequire(new URL("../../web/package.json", import.meta.url));
const puppeteer = require("puppeteer-core");

const job = JSON.parse(process.argv[2]);
const browser = await puppeteer.launch({
  browser: job.browser, executablePath: job.executable, headless: true, args: job.args,
  extraPrefsFirefox: job.prefs, protocolTimeout: job.timeoutMs, pipe: job.browser === "chrome",
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(job.timeoutMs);
  page.on("console", (m) => process.stderr.write(`console.${m.type()}: ${m.text()}\n`));
  page.on("pageerror", (e) => process.stderr.write(`pageerror: ${e.message}\n`));
  await page.goto(job.url);
  const report = await page.evaluate(async (options) => (await import("/checks/check.js")).run(options), job.options);
  process.stdout.write(JSON.stringify({browser: await browser.version(), report}) + "\n");
} finally {
  await browser.close();
}
