// @ts-check
// Summarizer, Writer and Rewriter (webmachinelearning/writing-assistance-apis) over nomoat's
// LanguageModel: one WritingAssistant base, three small descriptions (options, enums, prompts).
//
// THE PROMPTS. Each call sends one user message, with no system prompt of nomoat's (the model's chat
// template adds its own default): the task's instructions, built from its options, then the text:
//   "<instructions>[ Write in <outputLanguage>.][\nBackground: <sharedContext>][\nContext: <context>]\n\nText:\n<input>"
// (Writer: "...\n\n<input>", the input being the writing task). Measured on SmolLM2-135M, instructions in the
// user message are followed far better than the same words in a system prompt (which it tends to answer or
// comment on), and a repetition penalty made every answer worse; the spec allows options to be sent with every
// call ("measure summarizer input usage", note), so measureInputUsage() counts them and inputQuota is the whole
// context window. The instructions, per option (the wording follows each spec's "Options" tables):
//   Summarizer tldr       "Summarize the following text in one sentence | one short paragraph | one paragraph,
//                          short and to the point, for a busy reader."
//              teaser     "Write a teaser for the following text in <same>: its most interesting parts, to make
//                          the reader want to read it."
//              key-points "List the most important points of the following text as a bulleted list of at most
//                          3 | 5 | 7 bullet points."
//              headline   "Write a headline for the following text: one sentence of at most 12 | 17 | 22 words."
//   Writer                "Write the following in a formal | neutral | casual tone, in at most 100 | 300 | 500
//                          words, <format>:"
//   Rewriter              "Rewrite the following text[ in a more formal | more casual tone][, making it shorter |
//                          , making it longer, with more detail]. Keep its meaning[ and about the same length].
//                          [<format>] Output only the rewritten text."
//   format                plain-text: "Use plain text, no Markdown." (Writer: "in plain text with no Markdown");
//                         markdown: "Use Markdown." (Writer: "in Markdown"); Rewriter as-is: nothing.
// Summaries are of the text after "Text:"; the spec's examples (a question is summarized, not answered; context
// is no instruction) are followed as well as a 135M model can.
//
// SAFETY LIMIT. Answers are greedy (samplingMode "most-predictable") and capped by nomoat's maxTokens at about
// 1.5 tokens a word of what the length option allows (headline 40/50/60 tokens, tldr/teaser 64/128/200,
// key-points 100/160/220, Writer 160/450/750; Rewriter: its input's usage × 1.5 (as-is), × 1 (shorter),
// × 2.5 (longer), plus 32), so a small model that loops ends, never cut below what the option asks for.
//
// Empty (or whitespace-only) input gives "" without running the model, as the spec asks.

import {AIModel, createModelObject, dictionary, domString, enumValue, frozenLanguages, languageTag, languageTags,
  modelAvailability, modelChoice} from "./ai_model.js";
import {fullyActive} from "./session.js";

/**
 * @typedef {import("./ai_model.js").Host} Host
 * @typedef {import("./ai_model.js").Availability} Availability
 * @typedef {import("./ai_model.js").TaskPrompt} TaskPrompt
 *
 * @typedef {object} TaskDescription what differs between Summarizer, Writer and Rewriter
 * @property {string} name the interface's name
 * @property {string} method summarize | write | rewrite
 * @property {Record<"type" | "tone" | "format" | "length", readonly string[] | undefined>} enums each option's values
 * @property {Record<string, string>} defaults each option's default
 * @property {(o: Record<string, string>) => string} instructions what the options ask, first in the user message
 * @property {(input: string) => string} text how the input follows them
 * @property {(o: Record<string, string>) => (requested: number) => number} limit the answer's maxTokens
 * @property {(input: string) => boolean} empty whether the input has nothing to work on
 */

const FORMAT = {"plain-text": "Use plain text, no Markdown.", markdown: "Use Markdown.", "as-is": ""};
const SIZE = ["one sentence", "one short paragraph", "one paragraph"];
const LENGTHS = ["short", "medium", "long"];

/** @type {Record<string, TaskDescription>} */
const TASKS = {
  Summarizer: {
    name: "Summarizer", method: "summarize",
    enums: {type: ["tldr", "teaser", "key-points", "headline"], tone: undefined, format: ["plain-text", "markdown"],
      length: ["short", "medium", "long"]},
    defaults: {type: "key-points", format: "markdown", length: "short"},
    instructions: ({type, length, format}) => {
      const i = LENGTHS.indexOf(length);
      const what = {
        tldr: `Summarize the following text in ${SIZE[i]}, short and to the point, for a busy reader.`,
        teaser: `Write a teaser for the following text in ${SIZE[i]}: its most interesting parts, to make the reader want to read it.`,
        "key-points": `List the most important points of the following text as a bulleted list of at most ${[3, 5, 7][i]} bullet points.`,
        headline: `Write a headline for the following text: one sentence of at most ${[12, 17, 22][i]} words.`}[type];
      return `${what} ${FORMAT[/** @type {keyof FORMAT} */ (format)]}`;
    },
    text: (input) => `\n\nText:\n${input}`,
    limit: ({type, length}) => {
      const i = LENGTHS.indexOf(length);
      const cap = type === "headline" ? [40, 50, 60][i] : type === "key-points" ? [100, 160, 220][i] : [64, 128, 200][i];
      return () => cap;
    },
    empty: (input) => !/[^\s\p{Cc}]/u.test(input),
  },
  Writer: {
    name: "Writer", method: "write",
    enums: {type: undefined, tone: ["formal", "neutral", "casual"], format: ["plain-text", "markdown"], length: ["short", "medium", "long"]},
    defaults: {tone: "neutral", format: "markdown", length: "short"},
    instructions: ({tone, length, format}) => `Write the following in a ${tone} tone, in at most ${{short: 100, medium: 300, long: 500}[length]} ` +
      `words, ${format === "plain-text" ? "in plain text with no Markdown" : "in Markdown"}:`,
    text: (input) => `\n\n${input}`,
    limit: ({length}) => {
      const cap = {short: 160, medium: 450, long: 750}[length] ?? 160;
      return () => cap;
    },
    empty: (input) => input === "",
  },
  Rewriter: {
    name: "Rewriter", method: "rewrite",
    enums: {type: undefined, tone: ["as-is", "more-formal", "more-casual"], format: ["as-is", "plain-text", "markdown"],
      length: ["as-is", "shorter", "longer"]},
    defaults: {tone: "as-is", format: "as-is", length: "as-is"},
    instructions: ({tone, length, format}) => {
      const how = {"as-is": "", "more-formal": " in a more formal tone", "more-casual": " in a more casual tone"}[tone];
      const size = {"as-is": "", shorter: ", making it shorter", longer: ", making it longer, with more detail"}[length];
      const keep = length === "as-is" ? "Keep its meaning and about the same length." : "Keep its meaning.";
      const form = FORMAT[/** @type {keyof FORMAT} */ (format)];
      return `Rewrite the following text${how}${size}. ${keep}${form ? ` ${form}` : ""} Output only the rewritten text.`;
    },
    text: (input) => `\n\nText:\n${input}`,
    limit: ({length}) => {
      const factor = {"as-is": 1.5, shorter: 1, longer: 2.5}[length] ?? 1.5;
      return (requested) => requested * factor + 32;
    },
    empty: (input) => input === "",
  },
};

/** @param {string} tag */
const languageName = (tag) => {
  try {
    return new Intl.DisplayNames(["en"], {type: "language"}).of(tag) || tag;
  } catch {
    return tag;
  }
};

/**
 * "validate and canonicalize <task> options" plus the WebIDL conversion of the enums: RangeError for
 * a malformed language tag, TypeError for a value outside an enum.
 * @param {TaskDescription} task @param {unknown} raw
 */
function validate(task, raw) {
  const o = dictionary(raw, `${task.name}.create()`);
  /** @type {Record<string, string>} */
  const settings = {};
  for (const key of /** @type {const} */ (["type", "tone", "format", "length"])) {
    const values = task.enums[key];
    if (values) settings[key] = enumValue(o[key], values, task.defaults[key], `${task.name}'s ${key}`);
  }
  return {
    o, settings,
    expectedInputLanguages: languageTags(o.expectedInputLanguages, "expectedInputLanguages") ?? [],
    expectedContextLanguages: languageTags(o.expectedContextLanguages, "expectedContextLanguages") ?? [],
    outputLanguage: o.outputLanguage === undefined ? undefined : languageTag(o.outputLanguage, "outputLanguage"),
    sharedContext: o.sharedContext === undefined ? "" : domString(o.sharedContext, "sharedContext"),
    choice: modelChoice(o),
  };
}

/** What Summarizer, Writer and Rewriter share: their attributes, and one call, aggregated or streamed. */
export class WritingAssistant extends AIModel {
  /**
   * @param {import("./ai_model.js").Session} session @param {TaskDescription} task @param {ReturnType<typeof validate>} v
   */
  constructor(session, task, v) {
    super(session);
    this._task = task;
    this._v = v;
    this._in = frozenLanguages(v.expectedInputLanguages);
    this._context = frozenLanguages(v.expectedContextLanguages);
  }
  get sharedContext() { return this._v.sharedContext; }
  get format() { return this._v.settings.format; }
  get length() { return this._v.settings.length; }
  get expectedInputLanguages() { return this._in; }
  get expectedContextLanguages() { return this._context; }
  get outputLanguage() { return this._v.outputLanguage ?? null; }
  /**
   * The call's prompt, or "" where the input has nothing to work on.
   * (internal) @param {unknown} input @param {unknown} options
   * @returns {TaskPrompt | string}
   */
  _prompt(input, options) {
    const text = domString(input, "The input");
    const o = dictionary(options, this._task.method);
    const context = o.context === undefined ? null : domString(o.context, "context");
    if (this._task.empty(text)) return "";
    return {input: userMessage(this._task, this._v, context) + this._task.text(text), maxTokens: this._task.limit(this._v.settings)};
  }
  /** @param {unknown[]} args @param {string} what */
  _call(args, what) {
    if (args.length === 0) return Promise.reject(new TypeError(`${what}() needs an input.`));
    return this._aggregate(args[1], what, () => this._prompt(args[0], args[1]));
  }
  /** @param {unknown[]} args @param {string} what */
  _callStreaming(args, what) {
    if (args.length === 0) throw new TypeError(`${what}() needs an input.`);
    return this._stream(args[1], what, () => this._prompt(args[0], args[1]));
  }
  /**
   * The tokens `input` (with options.context) would use of inputQuota.
   * @param {string} input @param {{context?: string, signal?: AbortSignal}} [options]
   * @returns {Promise<number>}
   */
  measureInputUsage(input, options = {}) {
    if (arguments.length === 0) return Promise.reject(new TypeError("measureInputUsage() needs an input."));
    return this._measure(options, "measureInputUsage", () => this._prompt(input, options));
  }
}

/**
 * The user message's instructions (see the top of this file), before the input.
 * @param {TaskDescription} task @param {ReturnType<typeof validate>} v @param {string | null} context
 */
export function userMessage(task, v, context) {
  let text = task.instructions(v.settings);
  if (v.outputLanguage) text += ` Write in ${languageName(v.outputLanguage)}.`;
  if (v.sharedContext) text += `\nBackground: ${v.sharedContext}`;
  if (context) text += `\nContext: ${context}`;
  return text;
}

/**
 * Summarizer, Writer and Rewriter classes over window.llm (their constructors are closed: use create()).
 * @param {Host} host
 */
export function createWritingAssistance(host) {
  const SECRET = Symbol("nomoat.writing");
  /**
   * @param {TaskDescription} task
   * @param {new (s: symbol, session: any, task: TaskDescription, v: ReturnType<typeof validate>) => WritingAssistant} Class
   */
  const statics = (task, Class) => {
    /** The checked options, and the availability they give (its language lists: input, context, output). @param {unknown} options */
    const check = (options) => {
      fullyActive();
      const v = validate(task, options);
      const out = v.outputLanguage === undefined ? [] : [v.outputLanguage];
      return {v, out, available: () => modelAvailability(host, v.choice, [v.expectedInputLanguages, v.expectedContextLanguages, out])};
    };
    return {
      /** @param {unknown} options @returns {Promise<Availability>} */
      availability(options) {
        try {
          return check(options).available();
        } catch (e) {
          return Promise.reject(e);
        }
      },
      /** @param {unknown} options */
      async create(options) {
        const {v, out, available} = check(options);
        return createModelObject(v.o, available, async (forward, signal) => {
          if (out.length) v.outputLanguage = out[0]; // its best fit
          const session = await host.create({...v.choice, signal, monitor: forward, samplingMode: "most-predictable"});
          return new Class(SECRET, session, task, v);
        });
      },
    };
  };

  class Summarizer extends WritingAssistant {
    /** @param {symbol} secret @param {any} session @param {TaskDescription} task @param {ReturnType<typeof validate>} v */
    constructor(secret, session, task, v) {
      if (secret !== SECRET) throw new TypeError("Illegal constructor: use Summarizer.create().");
      super(session, task, v);
    }
    get type() { return this._v.settings.type; }
    /**
     * A summary of `input`.
     * @param {string} input @param {{context?: string, signal?: AbortSignal}} [options]
     * @returns {Promise<string>}
     */
    summarize(input, options) { return this._call([...arguments], "summarize"); } // eslint-disable-line no-unused-vars
    /**
     * A summary of `input`, piece by piece.
     * @param {string} input @param {{context?: string, signal?: AbortSignal}} [options]
     * @returns {ReadableStream<string>}
     */
    summarizeStreaming(input, options) { return this._callStreaming([...arguments], "summarizeStreaming"); } // eslint-disable-line no-unused-vars
    /** @param {Record<string, any>} [options] @returns {Promise<Summarizer>} */
    static create(options = {}) { return /** @type {Promise<Summarizer>} */ (S.create(options)); }
    /** @param {Record<string, any>} [options] @returns {Promise<Availability>} */
    static availability(options = {}) { return S.availability(options); }
  }
  class Writer extends WritingAssistant {
    /** @param {symbol} secret @param {any} session @param {TaskDescription} task @param {ReturnType<typeof validate>} v */
    constructor(secret, session, task, v) {
      if (secret !== SECRET) throw new TypeError("Illegal constructor: use Writer.create().");
      super(session, task, v);
    }
    get tone() { return this._v.settings.tone; }
    /**
     * Text written for the task `input`.
     * @param {string} input @param {{context?: string, signal?: AbortSignal}} [options]
     * @returns {Promise<string>}
     */
    write(input, options) { return this._call([...arguments], "write"); } // eslint-disable-line no-unused-vars
    /**
     * @param {string} input @param {{context?: string, signal?: AbortSignal}} [options]
     * @returns {ReadableStream<string>}
     */
    writeStreaming(input, options) { return this._callStreaming([...arguments], "writeStreaming"); } // eslint-disable-line no-unused-vars
    /** @param {Record<string, any>} [options] @returns {Promise<Writer>} */
    static create(options = {}) { return /** @type {Promise<Writer>} */ (W.create(options)); }
    /** @param {Record<string, any>} [options] @returns {Promise<Availability>} */
    static availability(options = {}) { return W.availability(options); }
  }
  class Rewriter extends WritingAssistant {
    /** @param {symbol} secret @param {any} session @param {TaskDescription} task @param {ReturnType<typeof validate>} v */
    constructor(secret, session, task, v) {
      if (secret !== SECRET) throw new TypeError("Illegal constructor: use Rewriter.create().");
      super(session, task, v);
    }
    get tone() { return this._v.settings.tone; }
    /**
     * `input`, rewritten.
     * @param {string} input @param {{context?: string, signal?: AbortSignal}} [options]
     * @returns {Promise<string>}
     */
    rewrite(input, options) { return this._call([...arguments], "rewrite"); } // eslint-disable-line no-unused-vars
    /**
     * @param {string} input @param {{context?: string, signal?: AbortSignal}} [options]
     * @returns {ReadableStream<string>}
     */
    rewriteStreaming(input, options) { return this._callStreaming([...arguments], "rewriteStreaming"); } // eslint-disable-line no-unused-vars
    /** @param {Record<string, any>} [options] @returns {Promise<Rewriter>} */
    static create(options = {}) { return /** @type {Promise<Rewriter>} */ (R.create(options)); }
    /** @param {Record<string, any>} [options] @returns {Promise<Availability>} */
    static availability(options = {}) { return R.availability(options); }
  }
  const S = statics(TASKS.Summarizer, Summarizer);
  const W = statics(TASKS.Writer, Writer);
  const R = statics(TASKS.Rewriter, Rewriter);
  return {Summarizer, Writer, Rewriter};
}
