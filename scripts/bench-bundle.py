#!/usr/bin/env python3
"""Offline bundles (issue 16): export, verify and import of a release with one artifact
(default 1 GiB), each timed as a whole process (start to exit, output `sync`ed) with its
peak RSS, against the machine's BLAKE3 and SHA-256 hashing speed measured in the same run
over the same bytes (one thread, Python's `blake3` package and `hashlib`).

  export   `accord bundle export` from EU's stopped node: reads the artifact from the blob
           store (bao-verified), hashes it again (SHA-256, BLAKE3) and streams it into the
           tar, fsync.
  verify   `accord bundle verify --root root.json`: no data dir; every change and
           signature, every digest (SHA-256 and BLAKE3 of every byte).
  import   `accord bundle import` into UK's stopped node: verify as above, stage the
           artifact in the data dir, import it into the blob store, commit the catalogue.

Rounds are interleaved (hash, export, verify, import, ...), at least three.

Run:  python3 scripts/bench-bundle.py [--rounds 3] [--size-mib 1024]
Needs: /usr/bin/time (GNU time) and `pip install blake3`; builds accord with
`cargo build --release -p accord-node`.
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASS = "bench passphrase"
J = ["uk", "eu", "ca", "au"]
ROLES = ["lead", "security", "steering", "node"]


def run(exe, d, *args):
    r = subprocess.run(
        [exe, *args],
        cwd=d,
        env={**os.environ, "ACCORD_PASSPHRASE": PASS},
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        sys.exit(f"accord {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def timed(exe, d, *args):
    """Seconds from start to exit (then `sync`), and peak RSS in MiB (GNU time)."""
    t = time.monotonic()
    r = subprocess.run(
        ["/usr/bin/time", "-f", "%M", exe, *args],
        cwd=d,
        env={**os.environ, "ACCORD_PASSPHRASE": PASS},
        capture_output=True,
        text=True,
    )
    subprocess.run(["sync"], check=True)
    took = time.monotonic() - t
    if r.returncode != 0:
        sys.exit(f"accord {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    rss_kib = int(r.stderr.strip().splitlines()[-1])
    return took, rss_kib / 1024


def hash_speed(path):
    """Seconds to BLAKE3 and to SHA-256 the file, one thread each, file in page cache."""
    import blake3

    out = []
    for h in (blake3.blake3(max_threads=1), hashlib.sha256()):
        t = time.monotonic()
        with open(path, "rb") as f:
            while True:
                b = f.read(4 << 20)
                if not b:
                    break
                h.update(b)
        out.append(time.monotonic() - t)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    a = ap.parse_args()
    if a.rounds < 3:
        sys.exit("at least three rounds")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "accord-node"], cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "release", "accord")
    d = tempfile.mkdtemp(prefix="accord-bench-bundle-")
    try:
        for j in J:
            os.makedirs(os.path.join(d, j))
            for r in ROLES:
                run(exe, d, "keys", "generate", "--out", f"{j}/{r}.key")
        spec = 'version = 1\nexpires = "2099-01-01T00:00:00Z"\n'
        for j in J:
            spec += f'[principals.{j}]\nname = "{j}"\n'
            for r in ROLES:
                spec += f'{r} = {{ keys = ["{j}/{r}.key.pub"] }}\n'
        with open(os.path.join(d, "root.toml"), "w") as f:
            f.write(spec)
        run(exe, d, "root", "new", "--spec", "root.toml", "--out", "root.json")
        for j in ["uk", "eu", "ca"]:
            run(exe, d, "root", "sign", "root.json", "--key", f"{j}/steering.key")
        src = os.path.join(d, "image.tar")
        with open(src, "wb") as f:
            for _ in range(a.size_mib // 16):
                f.write(os.urandom(16 << 20))
        run(exe, d, "init", "--data-dir", "eu-data", "--root", "root.json", "--node-key", "eu/node.key")
        run(exe, d, "release", "propose", "CAP-B01", "1.0.0", src, "--data-dir", "eu-data")
        size = os.path.getsize(src)
        rows = {"blake3": [], "sha256": [], "export": [], "verify": [], "import": []}
        rss = {"export": [], "verify": [], "import": []}
        for i in range(a.rounds):
            b3, sha = hash_speed(src)
            rows["blake3"].append(b3)
            rows["sha256"].append(sha)
            out = os.path.join(d, "site.bundle")
            if os.path.exists(out):
                os.remove(out)
            t, m = timed(exe, d, "bundle", "export", "--out", out, "--data-dir", "eu-data")
            rows["export"].append(t)
            rss["export"].append(m)
            t, m = timed(exe, d, "bundle", "verify", out, "--root", "root.json")
            rows["verify"].append(t)
            rss["verify"].append(m)
            shutil.rmtree(os.path.join(d, "uk-data"), ignore_errors=True)
            run(exe, d, "init", "--data-dir", "uk-data", "--root", "root.json", "--node-key", "uk/node.key")
            t, m = timed(exe, d, "bundle", "import", out, "--data-dir", "uk-data")
            rows["import"].append(t)
            rss["import"].append(m)
            print(
                f"round {i + 1}: blake3 {b3:.2f} s, sha256 {sha:.2f} s, export {rows['export'][-1]:.2f} s, "
                f"verify {rows['verify'][-1]:.2f} s, import {rows['import'][-1]:.2f} s",
                flush=True,
            )
        mib = size / (1 << 20)
        print(f"\n| {a.size_mib} MiB release, whole process, output synced | median MiB/s | runs (s) | peak RSS (MiB, max) |")
        print("|---|---|---|---|")
        for k in ["blake3", "sha256", "export", "verify", "import"]:
            runs = ", ".join(f"{x:.2f}" for x in rows[k])
            peak = f"{max(rss[k]):.0f}" if k in rss else "-"
            label = {
                "blake3": "BLAKE3, one thread (Python blake3, same file)",
                "sha256": "SHA-256, one thread (hashlib, same file)",
            }.get(k, f"accord bundle {k}")
            print(f"| {label} | {mib / statistics.median(rows[k]):.0f} | {runs} | {peak} |")
        ratio = statistics.median(rows["blake3"]) / statistics.median(rows["verify"])
        print(f"| verify / BLAKE3 speed | {ratio:.2f}x | | |")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
