#!/usr/bin/env python3
"""1 GiB artifact between two processes on 127.0.0.1, side by side in one run:

  nginx (sendfile) -> curl to a file     the HTTP baseline
  sendme send / receive, relays disabled n0's iroh-blobs file transfer tool
  accord: EU proposes, UK mirrors         two `accord node run` processes (release build)

Every transfer ends when the receiver has the whole file and `sync` has returned (data
durable). For accord the clock starts when the UK node is ready (fresh data dir; EU already
holds the release) and stops when UK's API reports every byte verified, then `sync`. Peak
memory is the UK node's VmHWM. Rounds are interleaved (A, B, C, A, B, C, ...).

Run:  python3 scripts/bench-transfer.py [--rounds 3] [--size-mib 1024]
Needs: nginx and curl (apt-get install nginx-light curl), sendme (cargo install sendme),
and builds accord with `cargo build --release -p accord-node`.
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


def free_port(udp=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sync():
    subprocess.run(["sync"], check=True)


def need(tool, hint):
    if shutil.which(tool) is None:
        sys.exit(f"{tool} not found: {hint}")


def make_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n
    sync()


def nginx_round(d, src):
    port = free_port()
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
    time.sleep(0.3)
    out = os.path.join(d, "nginx-out.bin")
    t = time.monotonic()
    subprocess.run(
        ["curl", "-sf", "-o", out, f"http://127.0.0.1:{port}/{os.path.basename(src)}"], check=True
    )
    sync()
    took = time.monotonic() - t
    p.send_signal(signal.SIGQUIT)
    p.wait()
    assert os.path.getsize(out) == os.path.getsize(src)
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
    assert os.path.getsize(got) == os.path.getsize(src)
    shutil.rmtree(send_dir)
    shutil.rmtree(recv_dir)
    return took, None


class Accord:
    """Two nodes (UK, EU) of a four-jurisdiction root; EU holds the release."""

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
        self.ports = {j: free_port() for j in ["uk", "eu"]}
        self.apis = {j: free_port() for j in ["uk", "eu"]}
        self.blobs = {j: free_port(udp=True) for j in ["uk", "eu"]}
        self.procs = {}
        self.init("eu")
        self.start("eu")
        self.run("release", "propose", "CAP-B01", "1.0.0", src, "--data-dir", "eu-data")

    def run(self, *args):
        r = subprocess.run(
            [self.exe, *args],
            cwd=self.d,
            env={**os.environ, "ACCORD_PASSPHRASE": PASS},
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            sys.exit(f"accord {' '.join(args)}: {r.stderr}")
        return r.stdout

    def init(self, j):
        shutil.rmtree(os.path.join(self.d, f"{j}-data"), ignore_errors=True)
        self.run("init", "--data-dir", f"{j}-data", "--root", "root.json", "--node-key", f"{j}/node.key")
        other = "uk" if j == "eu" else "eu"
        with open(os.path.join(self.d, f"{j}.toml"), "w") as f:
            f.write(
                f'jurisdiction = "{j}"\ndata_dir = "{j}-data"\n'
                f'listen = ["/ip4/127.0.0.1/tcp/{self.ports[j]}"]\n'
                f'bootstrap = ["/ip4/127.0.0.1/tcp/{self.ports[other]}"]\n'
                f'api = "127.0.0.1:{self.apis[j]}"\nblobs_listen = "127.0.0.1:{self.blobs[j]}"\n'
                f"anti_entropy_secs = 1\n[mirror]\nmax_artifact_mib = 4096\n"
            )

    def start(self, j):
        p = subprocess.Popen(
            [self.exe, "node", "run", "--config", f"{j}.toml"],
            cwd=self.d,
            env={**os.environ, "ACCORD_PASSPHRASE": PASS},
            stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.d, f"{j}.log"), "w"),
            text=True,
        )
        line = p.stdout.readline()
        assert "ready" in line, line
        self.procs[j] = p

    def stop(self, j):
        p = self.procs.pop(j)
        p.send_signal(signal.SIGTERM)
        p.wait()

    def held(self, j):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.apis[j]}/v1/releases/CAP-B01@1.0.0") as r:
                v = json.load(r)
            return v["artifacts"][0]["held"].get(j, 0)
        except Exception:
            return 0

    def round(self):
        size = os.path.getsize(self.src)
        self.init("uk")
        self.start("uk")
        t = time.monotonic()
        while self.held("uk") < size:
            time.sleep(0.02)
            assert time.monotonic() - t < 600, "UK never completed"
        sync()
        took = time.monotonic() - t
        with open(f"/proc/{self.procs['uk'].pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
        self.stop("uk")
        return took, hwm

    def close(self):
        for j in list(self.procs):
            self.stop(j)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    a = ap.parse_args()
    need("nginx", "apt-get install nginx-light")
    need("curl", "apt-get install curl")
    need("sendme", "cargo install sendme")
    subprocess.run(["cargo", "build", "--release", "-p", "accord-node"], cwd=ROOT, check=True)
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
            for _ in range(a.rounds):
                results["nginx + curl"].append(nginx_round(d, src)[0])
                results["sendme"].append(sendme_round(d, src)[0])
                took, peak = accord.round()
                results["accord"].append(took)
                hwm.append(peak)
        finally:
            accord.close()
    mib = size / (1 << 20)
    med = {k: mib / statistics.median(v) for k, v in results.items()}
    print(f"| {a.size_mib} MiB, loopback, to durable file | median MiB/s | runs (s) |")
    print("|---|---|---|")
    for k, v in results.items():
        print(f"| {k} | {med[k]:.0f} | {', '.join(f'{x:.2f}' for x in v)} |")
    print(f"| accord / sendme | {med['accord'] / med['sendme']:.2f}x | target >= 1.5x |")
    print(f"| accord / nginx + curl | {med['accord'] / med['nginx + curl']:.2f}x | target >= 0.4x |")
    print(f"| accord receiving node peak RSS (VmHWM) | {max(hwm):.0f} MiB | target < 100 MiB |")


if __name__ == "__main__":
    main()
