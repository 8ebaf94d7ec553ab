"""Memory of the API process under hostile uploads: zips of zero-filled PNGs (a few KB on the wire, 16 MB of
pixels each), several sent at once, while the API's RSS (granian's worker and its parent) is sampled.

Reports the RSS before, the peak while the uploads run, and the RSS a few seconds after the last answer, with
every upload's status. The API runs alone (``genmix serve --no-worker``, embedded) from this checkout, so the
same script measures any revision (``cd <other checkout> && python bench/upload_memory.py``).

    nice -n 10 python bench/upload_memory.py [--images 5] [--side 4096] [--uploads 6] [--json out.json]

Keep the case small: ``images × side² × uploads`` bytes of pixels may be decoded at once by a revision without
the decode budget and concurrency bound.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cli.processes import free_port, stop_process, wait_http  # noqa: E402


def hostile_zip(images: int, side: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((side, side), np.uint8), mode="L").save(buffer, format="PNG")
    png = buffer.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(images):
            archive.writestr(f"{'ab'[i % 2]}/{i}.png", png)
    return out.getvalue()


def tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--uploads", type=int, default=6, help="sent at once")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    body = hostile_zip(args.images, args.side)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENMIX_")} | {"PYTHONPATH": str(REPO_ROOT)}
    with tempfile.TemporaryDirectory(prefix="genmix-mem-") as tmp:
        port = free_port()
        log = Path(tmp) / "serve.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--data-dir", tmp, "--no-worker"], env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", 120, process, log)
            key = subprocess.run([sys.executable, "-m", "cli.main", "apikey", "create", "--name", "mem",
                                  "--data-dir", tmp], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                                 check=True).stdout.strip()  # fmt: skip
            headers = {"Authorization": f"Bearer {key}"}
            time.sleep(1)
            before = tree_rss(process.pid)
            peak = before
            statuses: list[int] = []
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, tree_rss(process.pid))
                    time.sleep(0.05)

            def send() -> None:
                with httpx.Client(timeout=600) as client:
                    response = client.post(f"http://127.0.0.1:{port}/datasets", headers=headers,
                                           files={"file": ("zeros.zip", body)})  # fmt: skip
                    statuses.append(response.status_code)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            senders = [threading.Thread(target=send) for _ in range(args.uploads)]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join()
            elapsed = time.monotonic() - started
            time.sleep(3)
            done.set()
            sampler.join()
            after = tree_rss(process.pid)
        finally:
            stop_process(process, 60)
    mib = 1024 * 1024
    figure = {"images": args.images, "side": args.side, "uploads_at_once": args.uploads, "zip_bytes": len(body),
              "statuses": sorted(statuses), "rss_before_mib": round(before / mib), "rss_peak_mib": round(peak / mib),
              "rss_after_mib": round(after / mib), "seconds": round(elapsed, 1)}  # fmt: skip
    print(json.dumps(figure))
    if args.json:
        args.json.write_text(json.dumps(figure, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
