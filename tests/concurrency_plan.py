"""Seeded random plans of concurrent session work, and their runner on CPython.

A plan is a list of scripts. Each script creates a session (its own sampling options, some with a
seeded random draw), waits a random while, then runs its steps in order: prompts with distinct
questions, a streamed prompt aborted after a few pieces, a clone whose own script runs alongside,
an OpenAI-style request (a fresh conversation), sleeps. All scripts run at once; the oracle is the
same plan run one script at a time, every step awaited (tests/concurrency_runner.js does both in a
page). Every result is keyed, so a swapped answer shows as a mismatch at that key.
"""

from __future__ import annotations

import asyncio
import random

WORDS = ("apple river stone cloud seven blue tiger paper window music violet north garden copper "
         "winter lamp ocean silver forest candle bridge honey marble thunder").split()


def _question(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))).capitalize() + "?"


def _options(rng: random.Random, max_tokens: int) -> dict:
    """Prompt API create() options (camelCase; the CPython runner maps them)."""
    if rng.random() < 0.5:
        return {"temperature": 0, "maxTokens": max_tokens}
    return {"temperature": round(rng.uniform(0.5, 1.2), 2), "topK": rng.choice([5, 20, 50]),
            "seed": rng.randrange(1, 2**31), "maxTokens": max_tokens}


def make_plan(seed: int, sessions: int = 5, max_steps: int = 4, max_tokens: int = 12, clones: bool = True,
              openai: bool = True, max_delay_ms: int = 400) -> list[dict]:
    rng = random.Random(seed)
    keys = iter(range(1 << 30))

    def script(depth: int) -> dict:
        steps: list[dict] = []
        for _ in range(rng.randint(1, max_steps)):
            r = rng.random()
            if r < 0.5:
                steps.append({"op": "prompt", "text": _question(rng), "key": next(keys)})
            elif r < 0.65:
                steps.append({"op": "abort", "text": _question(rng), "after": rng.randint(1, 2), "key": next(keys)})
            elif r < 0.8 and clones and depth < 2:
                steps.append({"op": "clone", "key": next(keys), "script": script(depth + 1)})
            elif r < 0.9 and openai:
                msgs = [{"role": "user", "content": _question(rng)}]
                steps.append({"op": "openai", "messages": msgs, "key": next(keys)})
            else:
                steps.append({"op": "sleep", "ms": rng.randint(0, 200)})
        return {"delay": rng.randint(0, max_delay_ms), "options": _options(rng, max_tokens), "steps": steps}

    return [script(0) for _ in range(sessions)]


SNAKE = {"temperature": "temperature", "topK": "top_k", "seed": "seed", "maxTokens": "max_tokens"}


async def run_plan(model, plan: list[dict], concurrent: bool) -> dict[int, object]:
    """The plan on a CPython nomoat.Model: all scripts at once (concurrent) or one after another."""
    out: dict[int, object] = {}

    async def run(session, script: dict) -> None:
        children = []
        for st in script["steps"]:
            if st["op"] == "prompt":
                out[st["key"]] = await session.prompt(st["text"])
            elif st["op"] == "abort":
                parts = []
                stream = session.prompt_streaming(st["text"], keep_partial=False)
                async for piece in stream:
                    parts.append(piece)
                    if len(parts) >= st["after"]:
                        break
                await stream.aclose()
                out[st["key"]] = {"partial": "".join(parts[: st["after"]])}
            elif st["op"] == "clone":
                out[st["key"]] = "cloned"
                child = run(session.clone(), st["script"])
                if concurrent:
                    children.append(asyncio.ensure_future(child))
                else:
                    await child
            elif st["op"] == "openai":
                msgs = st["messages"]
                fresh = model.session(messages=msgs[:-1], temperature=0, max_tokens=script["options"]["maxTokens"])
                out[st["key"]] = await fresh.prompt(msgs[-1]["content"])
                fresh.close()
            elif st["op"] == "sleep" and concurrent:
                await asyncio.sleep(st["ms"] / 1000)
        await asyncio.gather(*children)
        session.close()

    async def start(script: dict) -> None:
        if concurrent:
            await asyncio.sleep(script["delay"] / 1000)
        opts = {SNAKE[k]: v for k, v in script["options"].items()}
        await run(model.session(**opts), script)

    if concurrent:
        await asyncio.gather(*(start(s) for s in plan))
    else:
        for s in plan:
            await start(s)
    return out
