#!/usr/bin/env python3
"""One artifact (default 1 GiB) between two processes on 127.0.0.1, three ways, timing the
same work on each side: from starting the receiving process to a complete, verified file
under its own name on disk, `sync` returned.

  nginx + curl      nginx (sendfile) serves the file; the clock runs from starting curl
                    until curl has written it and `sync` returned. No verification: the
                    HTTP baseline.
  sendme            n0's iroh-blobs file tool, relays disabled, direct addresses. The
                    sender is running; the clock runs from starting `sendme receive` (into
                    its own store, BLAKE3-verified, then exported under the file's name)
                    until it exits and `sync` returned.
  accord            EU's node holds the release; the clock runs from starting a fresh UK
                    node (`accord node run`, default configuration: key unlock, database,
                    catalogue sync, wants, fetch into its store, BLAKE3-verified) until
                    `accord fetch` has written the artifact out of UK's store (re-verified,
                    SHA-256 and BLAKE3) and `sync` returned. The fetch is tried once UK
                    reports every byte verified, and again until its store has committed
                    the blob complete.

Rounds are interleaved (nginx, sendme, accord, nginx, ...), at least five. Each round's
accord/sendme and accord/nginx ratios are reported with their range. Peak memory is the UK
node's VmHWM.

Run:  python3 scripts/bench-transfer.py [--rounds 5] [--size-mib 1024]
Needs: nginx and curl (apt-get install nginx-light curl) and sendme
(cargo install sendme --version 0.37.1 --locked); builds accord with
`cargo build --release -p accord-node`.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASS = "bench passphrase"
J = ["uk", "eu", "ca", "au"]
ROLES = ["lead", "security", "steering", "node"]


def sync():
    subprocess.run(["sync"], check=True)


def need(tool, hint):
    if shutil.which(tool) is None:
        sys.exit(f"{tool} not found: {hint}")


def wait_for(check, what, limit=600):
    """Polls `check` until it returns something truthy; the deadline only bounds failure."""
    t = time.monotonic()
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() - t > limit:
            sys.exit(f"gave up waiting for {what}")
        time.sleep(0.01)


def make_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n
    sync()


def same_bytes(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def nginx_round(d, src):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(
            f"""daemon off; worker_processes 1; error_log {d}/nginx-error.log; pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{ sendfile on; access_log off; client_body_temp_path {d}; proxy_temp_path {d};
  fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{ listen 127.0.0.1:{port}; root {os.path.dirname(src)}; }} }}
"""
        )
    p = subprocess.Popen(["nginx", "-c", conf, "-p", d], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/{os.path.basename(src)}"

    def up():
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=1)
            return True
        except Exception:
            return False

    wait_for(up, "nginx")
    out = os.path.join(d, "nginx-out.bin")
    t = time.monotonic()
    subprocess.run(["curl", "-sf", "-o", out, url], check=True)
    sync()
    took = time.monotonic() - t
    p.send_signal(signal.SIGQUIT)
    p.wait()
    assert same_bytes(out, src)
    os.remove(out)
    return took, None


def sendme_round(d, src):
    send_dir = tempfile.mkdtemp(dir=d)
    recv_dir = tempfile.mkdtemp(dir=d)
    sender = subprocess.Popen(
        ["sendme", "send", src, "--relay", "disabled", "--ticket-type", "addresses"],
        cwd=send_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ticket = None
    for line in sender.stdout:
        for word in line.split():
            if word.startswith("blob"):
                ticket = word
        if ticket:
            break
    assert ticket, "sendme printed no ticket"
    t = time.monotonic()
    subprocess.run(
        ["sendme", "receive", ticket, "--relay", "disabled"],
        cwd=recv_dir,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sync()
    took = time.monotonic() - t
    sender.send_signal(signal.SIGINT)
    try:
        sender.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sender.kill()
    got = os.path.join(recv_dir, os.path.basename(src))
    assert same_bytes(got, src)
    shutil.rmtree(send_dir)
    shutil.rmtree(recv_dir)
    return took, None


class Accord:
    """Two nodes (UK, EU) of a four-jurisdiction root; EU holds the release. Both run the
    default configuration; only the addresses are set (port 0, read back)."""

    def __init__(self, d, exe, src):
        self.d, self.exe, self.src = d, exe, src
        for j in J:
            os.makedirs(os.path.join(d, j), exist_ok=True)
            for r in ROLES:
                self.run("keys", "generate", "--out", f"{j}/{r}.key")
        spec = 'version = 1\nexpires = "2099-01-01T00:00:00Z"\n'
        for j in J:
            spec += f'[principals.{j}]\nname = "{j}"\n'
            for r in ROLES:
                spec += f'{r} = {{ keys = ["{j}/{r}.key.pub"] }}\n'
        with open(os.path.join(d, "root.toml"), "w") as f:
            f.write(spec)
        self.run("root", "new", "--spec", "root.toml", "--out", "root.json")
        for j in ["uk", "eu", "ca"]:
            self.run("root", "sign", "root.json", "--key", f"{j}/steering.key")
        self.procs = {}
        self.init("eu", [])
        self.start("eu")
        self.run("release", "propose", "CAP-B01", "1.0.0", src, "--data-dir", "eu-data")

    def run(self, *args, may_fail=False):
        r = subprocess.run(
            [self.exe, *args],
            cwd=self.d,
            env={**os.environ, "ACCORD_PASSPHRASE": PASS},
            capture_output=True,
            text=True,
        )
        if r.returncode != 0 and not may_fail:
            sys.exit(f"accord {' '.join(args)}: {r.stderr}")
        return r.returncode == 0

    def file(self, j, name):
        try:
            with open(os.path.join(self.d, f"{j}-data", name)) as f:
                return f.read().strip()
        except OSError:
            return ""

    def init(self, j, bootstrap):
        shutil.rmtree(os.path.join(self.d, f"{j}-data"), ignore_errors=True)
        self.run("init", "--data-dir", f"{j}-data", "--root", "root.json", "--node-key", f"{j}/node.key")
        boot = ", ".join(f'"{a}"' for a in bootstrap)
        with open(os.path.join(self.d, f"{j}.toml"), "w") as f:
            f.write(
                f'jurisdiction = "{j}"\ndata_dir = "{j}-data"\n'
                f'listen = ["/ip4/127.0.0.1/tcp/0"]\nbootstrap = [{boot}]\n'
                f'api = "127.0.0.1:0"\nblobs_listen = "127.0.0.1:0"\n'
            )

    def start(self, j):
        self.procs[j] = subprocess.Popen(
            [self.exe, "node", "run", "--config", f"{j}.toml"],
            cwd=self.d,
            env={**os.environ, "ACCORD_PASSPHRASE": PASS},
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.d, f"{j}.log"), "w"),
        )
        wait_for(lambda: self.file(j, "api.addr") and self.file(j, "listen.addrs"), f"{j} to start")

    def stop(self, j):
        p = self.procs.pop(j)
        p.send_signal(signal.SIGTERM)
        p.wait()

    def complete(self, j, size):
        """UK reports every byte verified."""
        try:
            url = f"http://{self.file(j, 'api.addr')}/v1/releases/CAP-B01@1.0.0"
            with urllib.request.urlopen(url, timeout=5) as r:
                v = json.load(r)
            return v["artifacts"][0]["held"].get(j, 0) >= size
        except Exception:
            return False

    def round(self):
        size = os.path.getsize(self.src)
        eu = [a for a in self.file("eu", "listen.addrs").splitlines() if "/tcp/" in a]
        self.init("uk", eu)
        out = os.path.join(self.d, "out")
        shutil.rmtree(out, ignore_errors=True)
        t = time.monotonic()
        self.start("uk")
        wait_for(lambda: self.complete("uk", size), "UK to hold the blob")
        # `held` counts verified bytes as they arrive; the fetch succeeds only once the
        # store has committed the blob as complete, so it is retried until then.
        fetch = ("fetch", "CAP-B01@1.0.0", "--out", "out", "--data-dir", "uk-data")
        wait_for(lambda: self.run(*fetch, may_fail=True), "accord fetch to succeed")
        sync()
        took = time.monotonic() - t
        with open(f"/proc/{self.procs['uk'].pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
        self.stop("uk")
        got = os.path.join(out, os.path.basename(self.src))
        assert same_bytes(got, self.src)
        shutil.rmtree(out)
        return took, hwm

    def close(self):
        for j in list(self.procs):
            self.stop(j)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=1024)
    a = ap.parse_args()
    if a.rounds < 5:
        sys.exit("at least 5 rounds")
    need("nginx", "apt-get install nginx-light")
    need("curl", "apt-get install curl")
    need("sendme", "cargo install sendme --version 0.37.1 --locked")
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "accord-node"], cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "release", "accord")
    size = a.size_mib << 20
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/var/tmp")) as d:
        src = os.path.join(d, "artifact.bin")
        make_file(src, size)
        os.makedirs(os.path.join(d, "accord"))
        accord = Accord(os.path.join(d, "accord"), exe, src)
        results = {"nginx + curl": [], "sendme": [], "accord": []}
        hwm = []
        try:
            for i in range(a.rounds):
                results["nginx + curl"].append(nginx_round(d, src)[0])
                results["sendme"].append(sendme_round(d, src)[0])
                took, peak = accord.round()
                results["accord"].append(took)
                hwm.append(peak)
                print(
                    f"round {i + 1}: nginx {results['nginx + curl'][-1]:.2f} s, "
                    f"sendme {results['sendme'][-1]:.2f} s, accord {took:.2f} s",
                    file=sys.stderr,
                )
        finally:
            accord.close()
    mib = size / (1 << 20)
    print(f"| {a.size_mib} MiB, loopback, process start to durable verified file | median MiB/s | runs (s) |")
    print("|---|---|---|")
    for k, v in results.items():
        print(f"| {k} | {mib / statistics.median(v):.0f} | {', '.join(f'{x:.2f}' for x in v)} |")
    for base in ["sendme", "nginx + curl"]:
        # Throughput ratio per round: base time / accord time (same round, interleaved).
        r = sorted(b / x for b, x in zip(results[base], results["accord"]))
        print(f"| accord / {base} (throughput, per round) | median {statistics.median(r):.2f}x, range {r[0]:.2f}-{r[-1]:.2f}x | |")
    print(f"| accord receiving node peak RSS (VmHWM) | {max(hwm):.0f} MiB | target < 100 MiB |")


if __name__ == "__main__":
    main()
