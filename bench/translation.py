"""Benchmark of the translation package.

Measures, against a local wire-compatible provider that answers in 50 ms:

* the delay translation adds to a message (``Translator.translate`` latency, p50/p99) for
  a few hundred distinct messages arriving as a Poisson stream and as a burst, through
  LibreTranslate (our httpx client) and Google v3 (the real google-cloud-translate client
  on its thread pool);
* language detection time per message (p50/p99, lingua via ``LanguageDetector.detect``,
  after warm-up) and the cold first call;
* the detector's memory: RSS before/after building it for 8 languages (each mode in a
  fresh subprocess so the figures do not mix);
* the cache hit rate when replaying a support-chat stream in which common phrases repeat.

Run: ``.venv/bin/python bench/translation.py`` (about 30-60 s). Prints the figures and
writes ``bench/results/translation.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatserver.translation import (  # noqa: E402
    CircuitBreaker,
    LanguageDetector,
    LibreTranslateProvider,
    TranslationCache,
    TranslationProvider,
    Translator,
)
from chatserver.translation.google_v3 import GoogleV3Provider  # noqa: E402

PROVIDER_DELAY_S = 0.050
LANGUAGES = ["en", "de", "es", "fr", "it", "pt", "nl", "pl"]
RESULTS = ROOT / "bench" / "results" / "translation.json"

# --- a local provider answering in 50 ms, in its own process -------------------------------


class Stats:
    requests = 0
    texts = 0


async def _libre(request: Request) -> JSONResponse:
    body = await request.json()
    await asyncio.sleep(PROVIDER_DELAY_S)
    Stats.requests += 1
    Stats.texts += len(body["q"])
    return JSONResponse({"translatedText": [f"[{body['target']}] {q}" for q in body["q"]]})


async def _google_v3(request: Request) -> JSONResponse:
    body = await request.json()
    await asyncio.sleep(PROVIDER_DELAY_S)
    Stats.requests += 1
    Stats.texts += len(body["contents"])
    target = body["targetLanguageCode"]
    return JSONResponse({"translations": [{"translatedText": f"[{target}] {c}"} for c in body["contents"]]})


async def _stats(request: Request) -> JSONResponse:
    out = {"requests": Stats.requests, "texts": Stats.texts}
    if request.method == "POST":
        Stats.requests = Stats.texts = 0
    return JSONResponse(out)


def serve_provider() -> None:
    """The provider process: prints its port, serves until stdin closes."""
    app = Starlette(
        routes=[
            Route("/translate", _libre, methods=["POST"]),
            Route("/v3/projects/{project}/locations/{location}:translateText", _google_v3, methods=["POST"]),
            Route("/stats", _stats, methods=["GET", "POST"]),
        ]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, ws="none")
    uvicorn.Server(config).run(sockets=[sock])


@asynccontextmanager
async def provider_server() -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-provider", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    url = f"http://127.0.0.1:{int(line.split()[1])}"
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            try:
                await http.get(url + "/stats")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.02)
    try:
        yield url
    finally:
        process.terminate()
        await process.wait()


async def provider_stats(url: str, *, reset: bool = False) -> dict[str, int]:
    async with httpx.AsyncClient() as http:
        response = await (http.post(url + "/stats") if reset else http.get(url + "/stats"))
        data: dict[str, int] = response.json()
        return data


# --- message corpora -----------------------------------------------------------------------

COMMON = [
    "Hello!",
    "Hi, how can I help you today?",
    "Thank you!",
    "Thanks a lot for your help.",
    "Can you help me?",
    "One moment please, I am checking.",
    "Is there anything else I can help you with?",
    "Have a nice day!",
    "Where is my order?",
    "I would like to cancel my order.",
    "Could you send me the tracking number?",
    "Sorry for the inconvenience.",
    "Let me check that for you.",
    "Your refund has been processed.",
    "Please share your order number.",
    "I have a problem with my payment.",
    "The package arrived damaged.",
    "Okay, thank you very much.",
    "Goodbye!",
    "You're welcome!",
]
SAMPLES = {
    "en": [
        "I ordered a blue jacket last week and it still hasn't arrived.",
        "Can I change the delivery address?",
    ],
    "de": [
        "Ich habe letzte Woche eine Jacke bestellt und sie ist noch nicht da.",
        "Kann ich die Adresse ändern?",
    ],
    "es": ["Pedí una chaqueta la semana pasada y todavía no ha llegado.", "¿Puedo cambiar la dirección?"],
    "fr": [
        "J'ai commandé une veste la semaine dernière et elle n'est pas arrivée.",
        "Puis-je changer l'adresse?",
    ],
    "it": [
        "Ho ordinato una giacca la settimana scorsa e non è ancora arrivata.",
        "Posso cambiare indirizzo?",
    ],
    "pt": [
        "Encomendei um casaco na semana passada e ainda não chegou.",
        "Posso mudar o endereço de entrega?",
    ],
    "nl": ["Ik heb vorige week een jas besteld en die is nog niet aangekomen.", "Kan ik het adres wijzigen?"],
    "pl": ["Zamówiłem kurtkę w zeszłym tygodniu i jeszcze nie dotarła.", "Czy mogę zmienić adres dostawy?"],
}
SHORT = ["ok", "thanks", "👍", "danke", "gracias", "merci", "yes", "no", "ok!"]


def unique_messages(n: int, rng: random.Random) -> list[str]:
    out = []
    for i in range(n):
        lang = rng.choice(LANGUAGES)
        out.append(f"{rng.choice(SAMPLES[lang])} (order {100000 + i})")
    return out


def replay_stream(n: int, rng: random.Random) -> list[str]:
    """A chat stream: 70 % from common phrases (Zipf-like), 30 % one-off messages."""
    weights = [1 / (rank + 1) for rank in range(len(COMMON))]
    stream = []
    for i in range(n):
        if rng.random() < 0.7:
            stream.append(rng.choices(COMMON, weights)[0])
        else:
            stream.append(f"My order {200000 + i} has a problem, can you check it?")
    return stream


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50_ms": round(q[49] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


# --- scenarios -----------------------------------------------------------------------------


async def timed(call: Awaitable[Any], into: list[float], started: float) -> None:
    """Await ``call`` and record the time since ``started`` (taken when the message arrived)."""
    await call
    into.append(time.perf_counter() - started)


async def latency_run(
    url: str,
    make_provider: Callable[[], TranslationProvider],
    messages: list[str],
    rate_per_s: float | None,
    max_in_flight: int,
) -> dict[str, Any]:
    """Translate ``messages`` arriving as a Poisson stream (or all at once when rate is None)."""
    rng = random.Random(7)
    latencies: list[float] = []
    async with Translator(
        make_provider(),
        cache=TranslationCache(0),
        breaker=CircuitBreaker(),
        timeout_s=5.0,
        max_in_flight=max_in_flight,
    ) as translator:
        await translator.translate("warm-up", "en", "de")  # connection + client build
        await provider_stats(url, reset=True)
        tasks = []
        for text in messages:
            call = translator.translate(text, None, "de")
            tasks.append(asyncio.create_task(timed(call, latencies, time.perf_counter())))
            if rate_per_s:
                await asyncio.sleep(rng.expovariate(rate_per_s))
        await asyncio.gather(*tasks)
        metrics = translator.metrics()
    assert metrics.untranslated == {}, metrics.untranslated
    stats = await provider_stats(url)
    return {
        **percentiles(latencies),
        "provider_requests": stats["requests"],
        "texts_per_request": round(stats["texts"] / max(stats["requests"], 1), 2),
    }


async def translation_latency(url: str) -> dict[str, Any]:
    rng = random.Random(1)
    http = httpx.AsyncClient(timeout=5.0, limits=httpx.Limits(max_connections=20))

    def libre() -> TranslationProvider:
        return LibreTranslateProvider(http, url=url)

    def google_v3() -> TranslationProvider:
        return GoogleV3Provider(project="bench", endpoint=url, timeout_s=5.0)

    out: dict[str, Any] = {}
    for name, factory in (("libretranslate", libre), ("google_v3", google_v3)):
        out[name] = {
            f"poisson_{rate}_per_s_400_msgs_in_flight_{k}": await latency_run(
                url, factory, unique_messages(400, rng), float(rate), k
            )
            for rate, k in ((100, 4), (400, 4), (100, 8))
        }
        out[name]["burst_300_concurrent_in_flight_4"] = await latency_run(
            url, factory, unique_messages(300, rng), None, 4
        )
    await http.aclose()
    return out


async def detection_time() -> dict[str, Any]:
    rng = random.Random(3)
    detector = LanguageDetector(LANGUAGES)
    messages = [rng.choice(SAMPLES[rng.choice(LANGUAGES)]) for _ in range(400)]
    messages += [rng.choice(SHORT) for _ in range(100)]
    rng.shuffle(messages)
    started = time.perf_counter()
    await detector.detect(messages[0] if len(messages[0]) > 20 else SAMPLES["de"][0], None, None)
    cold = time.perf_counter() - started
    for lang in LANGUAGES:  # load every model before timing
        await detector.detect(SAMPLES[lang][0], None, None)
    latencies: list[float] = []
    sync_latencies: list[float] = []
    for text in messages:
        await timed(detector.detect(text, "en", "en"), latencies, time.perf_counter())
        started = time.perf_counter()
        detector.confidences(text)
        sync_latencies.append(time.perf_counter() - started)
    return {
        "languages": len(LANGUAGES),
        "cold_first_call_ms": round(cold * 1000, 1),
        "detect_async_per_message": percentiles(latencies),
        "lingua_call_only_per_message": percentiles(sync_latencies),
    }


def detector_memory(mode: str) -> dict[str, Any]:
    """Runs in a fresh process: RSS before and after building (and loading) the detector."""
    process = psutil.Process()
    import lingua  # noqa: F401  - the extension module's own footprint is not the detector's

    before = process.memory_info().rss
    detector = LanguageDetector(LANGUAGES, low_accuracy=(mode == "low_accuracy"), preload=True)
    started = time.perf_counter()
    asyncio.run(detector.warm_up())
    build_s = time.perf_counter() - started
    after = process.memory_info().rss
    return {
        "mode": mode,
        "languages": len(LANGUAGES),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "delta_mb": round((after - before) / 2**20, 1),
        "build_s": round(build_s, 2),
    }


def detector_memory_in_subprocess(mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--detector-memory", mode], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def cache_hit_rate(url: str) -> dict[str, Any]:
    rng = random.Random(5)
    stream = replay_stream(1000, rng)
    await provider_stats(url, reset=True)
    async with (
        httpx.AsyncClient(timeout=5.0) as http,
        Translator(LibreTranslateProvider(http, url=url), cache=TranslationCache(10_000)) as translator,
    ):
        # a few conversations at once: 10 messages in flight at a time
        for start in range(0, len(stream), 10):
            await asyncio.gather(*(translator.translate(t, "en", "de") for t in stream[start : start + 10]))
        m = translator.metrics()
    stats = await provider_stats(url)
    lookups = m.cache_hits + m.cache_misses
    return {
        "messages": len(stream),
        "distinct_texts": len(set(stream)),
        "cache_hits": m.cache_hits,
        "cache_misses": m.cache_misses,
        "hit_rate": round(m.cache_hits / lookups, 3),
        "texts_sent_to_provider": stats["texts"],
        "provider_requests": stats["requests"],
        "best_possible_hit_rate": round(1 - len(set(stream)) / len(stream), 3),
    }


async def main() -> dict[str, Any]:
    began = time.perf_counter()
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": psutil.cpu_count(),
            "platform": platform.platform(),
        },
        "provider_delay_ms": PROVIDER_DELAY_S * 1000,
    }
    async with provider_server() as url:
        results["translation_latency"] = await translation_latency(url)
        results["cache_replay"] = await cache_hit_rate(url)
    results["detection"] = await detection_time()
    results["detector_memory"] = [detector_memory_in_subprocess(m) for m in ("high_accuracy", "low_accuracy")]
    results["bench_seconds"] = round(time.perf_counter() - began, 1)
    return results


def report(results: dict[str, Any]) -> None:
    print(f"provider answers in {results['provider_delay_ms']:.0f} ms")
    for provider, runs in results["translation_latency"].items():
        for scenario, r in runs.items():
            print(
                f"translate  {provider:15} {scenario:40} p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms"
                f"  ({r['provider_requests']} requests, {r['texts_per_request']} texts/request)"
            )
    d = results["detection"]
    a, s = d["detect_async_per_message"], d["lingua_call_only_per_message"]
    print(f"detect     {d['languages']} languages: cold first call {d['cold_first_call_ms']} ms")
    print(f"detect     per message (async, thread hop) p50 {a['p50_ms']} ms  p99 {a['p99_ms']} ms")
    print(f"detect     per message (lingua call only)  p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms")
    for m in results["detector_memory"]:
        print(
            f"memory     detector {m['mode']:14} {m['languages']} languages: +{m['delta_mb']} MB RSS"
            f" ({m['rss_before_mb']} -> {m['rss_after_mb']} MB), built in {m['build_s']} s"
        )
    c = results["cache_replay"]
    print(
        f"cache      replay of {c['messages']} messages ({c['distinct_texts']} distinct):"
        f" hit rate {c['hit_rate']} (best possible {c['best_possible_hit_rate']}),"
        f" {c['texts_sent_to_provider']} texts sent in {c['provider_requests']} requests"
    )
    print(f"took {results['bench_seconds']} s; wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector-memory", choices=["high_accuracy", "low_accuracy"])
    parser.add_argument("--serve-provider", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_provider:
        serve_provider()
        sys.exit(0)
    if args.detector_memory:
        print(json.dumps(detector_memory(args.detector_memory)))
        sys.exit(0)
    results = asyncio.run(main())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    report(results)
