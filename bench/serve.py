"""A bounded load test of ``adaptune serve`` on loopback: latency, throughput, memory.

Makes a registry of three models (``alpha``, ``beta``, ``gamma``), each one random LoRA adapter
(r=8, every linear layer) on the same base model, then starts ``adaptune serve`` in a child
process on a free 127.0.0.1 port three times:

1. one adapter registered: its resident memory (RSS) after a warm-up is the baseline;
2. three adapters: RSS after the same warm-up (target: at most 1.2x the one-adapter server's,
   since the base model is loaded once), then N concurrent clients for a fixed time, spread
   over the three adapters: p50/p99 latency, requests/s, errors (target: 0), and RSS before
   and after the load (target: within 10%);
3. three adapters with ``--max-batch 1`` (no batching), under the same load: the requests/s of
   (2) against it is the gain of batching requests per adapter.

Also prints what one model copy per adapter would cost, estimated from the measured RSS of a
server before and after it loaded its one model. Exits 1 when a target is missed.

With the built-in tiny model (about 0.4M parameters) the process's memory is mostly Python and
PyTorch, so the ratio says little about weights; ``--base gpt2-small`` serves a random
GPT-2-small-shaped checkpoint (12 layers, width 768, about 86M parameters) instead.

Usage: python bench/serve.py [--base tiny|gpt2-small] [--clients 8] [--duration 15]
    [--max-new-tokens 16] [--torch-threads 1]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from adaptune.registry import register_version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sample_adapters import save_random_lora

MODELS = ("alpha", "beta", "gamma")
PROMPTS = ("My parcel is late", "I was charged twice", "The app crashes on start", "Upgrade plan")
RSS_GROWTH_LIMIT = 0.10
RATIO_LIMIT = 1.2
WARMUP_S = 5.0


def write_gpt2_small(directory: Path) -> str:
    """A random GPT-2-small-shaped checkpoint with the built-in tokenizer, as a directory."""
    from adaptune.base_models import builtin

    tokenizer = builtin.build_tokenizer()
    spec = builtin.BuiltinSpec("gpt2-small", "causal", width=768, layers=12, heads=12)
    builtin.build_model(spec, tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def make_registry(root: Path, base_model: str, models: tuple[str, ...]) -> Path:
    registry = root / f"registry-{len(models)}"
    for seed, model in enumerate(models, start=1):
        adapter = root / "adapters" / model
        if not adapter.is_dir():
            save_random_lora(base_model, adapter, seed=seed)
        register_version(registry, model, adapter, {"base_model": base_model}, promote=True)
    return registry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``adaptune serve`` in a child process on a free loopback port."""

    def __init__(self, registry: Path, torch_threads: int, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "adaptune", "serve", "--registry-dir", str(registry),
            "--port", str(self.port), "--no-preload", "--log-level", "warning",
            "--torch-threads", str(torch_threads), *extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, env={**os.environ, "TOKENIZERS_PARALLELISM": "0"})
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start within 120 s")
            time.sleep(0.2)

    def rss(self) -> int:
        """The server's resident memory in bytes."""
        return self.ps.memory_info().rss

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        self.process.terminate()
        self.process.wait(timeout=60)


def load(
    url: str, models: tuple[str, ...], clients: int, duration: float, new_tokens: int
) -> dict[str, object]:
    """``clients`` threads, each sending one request after another for ``duration`` seconds."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def client(i: int) -> None:
        n = i
        with httpx.Client(timeout=120) as http:
            while time.monotonic() < stop_at:
                model = models[n % len(models)]
                body = {
                    "instances": [{"prompt": PROMPTS[n % len(PROMPTS)]}],
                    "parameters": {"maxOutputTokens": new_tokens},
                }
                start = time.perf_counter()
                try:
                    response = http.post(f"{url}/v1/endpoints/{model}:predict", json=body)
                    ok = response.status_code == 200 and response.json()["model"] == model
                    problem = None if ok else f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = repr(exc)
                elapsed = time.perf_counter() - start
                with lock:
                    (errors.append(problem) if problem else latencies.append(elapsed))
                n += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / wall,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        if latencies
        else float("nan"),
    }


def mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", choices=("tiny", "gpt2-small"), default="tiny")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="the server's PyTorch threads (0: default)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="adaptune-bench-serve-") as tmp:
        root = Path(tmp)
        base_model = "builtin:tiny-gpt2" if args.base == "tiny" else write_gpt2_small(root / "base")
        one = make_registry(root, base_model, MODELS[:1])
        three = make_registry(root, base_model, MODELS)

        server = Server(one, args.torch_threads)
        try:
            idle_rss = server.rss()
            load(server.url, MODELS[:1], args.clients, WARMUP_S, args.max_new_tokens)
            one_rss = server.rss()
        finally:
            server.stop()

        server = Server(three, args.torch_threads)
        try:
            load(server.url, MODELS, args.clients, WARMUP_S, args.max_new_tokens)
            three_rss = server.rss()
            batched = load(server.url, MODELS, args.clients, args.duration, args.max_new_tokens)
            after_rss = server.rss()
        finally:
            server.stop()

        server = Server(three, args.torch_threads, "--max-batch", "1")
        try:
            load(server.url, MODELS, args.clients, WARMUP_S, args.max_new_tokens)
            unbatched = load(server.url, MODELS, args.clients, args.duration, args.max_new_tokens)
        finally:
            server.stop()

    ratio = three_rss / one_rss
    growth = after_rss / three_rss - 1
    copies = idle_rss + len(MODELS) * (one_rss - idle_rss)
    errors = batched["errors"] + unbatched["errors"]
    print(
        f"base model: {base_model if args.base == 'tiny' else 'random GPT-2-small shape'}; "
        f"{args.clients} clients, {args.duration:.0f} s per run, "
        f"maxOutputTokens {args.max_new_tokens}, {os.cpu_count()} CPUs, "
        f"server torch threads {args.torch_threads or 'default'}"
    )
    for name, run in (("batched per adapter", batched), ("unbatched (--max-batch 1)", unbatched)):
        print(
            f"{name:>26}: {run['requests']} requests, {run['rps']:.1f} requests/s, "
            f"p50 {run['p50'] * 1000:.0f} ms, p99 {run['p99'] * 1000:.0f} ms, "
            f"errors {len(run['errors'])}"
        )
    print(f"requests/s ratio batched / unbatched: {batched['rps'] / unbatched['rps']:.2f}x")
    print(
        f"server RSS: before any model {mb(idle_rss)}; 1 adapter {mb(one_rss)}; "
        f"3 adapters {mb(three_rss)}, after the load {mb(after_rss)} ({growth:+.1%})"
    )
    print(
        f"RSS ratio 3 adapters / 1 adapter: {ratio:.3f}x (target <= {RATIO_LIMIT}x); "
        f"one model copy per adapter would be about {copies / one_rss:.2f}x"
    )
    failed = []
    if errors:
        failed.append(f"{len(errors)} errors, first: {errors[0]}")
    if abs(growth) > RSS_GROWTH_LIMIT:
        failed.append(f"RSS changed {growth:+.1%} under load (limit {RSS_GROWTH_LIMIT:.0%})")
    if ratio > RATIO_LIMIT:
        failed.append(f"3-adapter RSS ratio {ratio:.3f}x over {RATIO_LIMIT}x")
    for problem in failed:
        print(f"MISSED: {problem}")
    print("all targets met" if not failed else "targets missed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
