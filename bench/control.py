#!/usr/bin/env python3
"""The control path at scale, HAProxy and fulcrum side by side (#19, item 8).

For generated haproxy.cfg files of B backends x 5 servers (and one backend of many servers),
each proxy is measured on the same file:
  check    wall time of `haproxy -c -q -f CFG`
  start    from exec to the first answered request (one frontend, backend b0 -> a local origin)
  reload   from SIGUSR2 to READY=1 on the notify socket (`-Ws`, systemd's protocol), the new
           configuration serving
  rss      resident memory once serving (HAProxy: master and worker together)
Medians over RUNS runs (one run for the 100k-server backend, where HAProxy 2.6 takes minutes
per step); the ratio is fulcrum / HAProxy. Only loopback is used; servers other
than b0's first point at 127.0.0.1 ports nobody listens on and are not checked.

  bench/control.py [RUNS] [SIZES]     e.g. bench/control.py 3 10,1000,10000  (100k servers too)
"""
import http.server
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
SIZES = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "10,1000,10000").split(",")]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULCRUM = os.path.join(ROOT, "target", "release", "fulcrum")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def origin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def config(backends, servers, front, origin_port):
    out = ["global", "    maxconn 4096", "defaults", "    mode http", "    timeout client 10s",
           "    timeout server 10s", "    timeout connect 2s",
           "frontend web", f"    bind 127.0.0.1:{front}", "    default_backend b0"]
    port = 20000
    for b in range(backends):
        out.append(f"backend b{b}")
        for s in range(servers):
            if b == 0 and s == 0:
                out.append(f"    server s0 127.0.0.1:{origin_port}")
            else:
                out.append(f"    server s{s} 127.0.0.1:{port}")
                port = 20000 + (port - 19999) % 40000
    return "\n".join(out) + "\n"


def program(name):
    if name == "haproxy":
        return ["haproxy"]
    return [FULCRUM, "haproxy"]


def answered(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = s.recv(64)
            return head.startswith(b"HTTP/1.") and head[8:13] == b" 200 "
    except OSError:
        return False


def rss_kib(pid):
    """RSS of pid and its children, in KiB."""
    total = 0
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def measure(name, path, front, deadline_s=900):
    cmd = program(name)
    t0 = time.monotonic()
    subprocess.run(cmd + ["-c", "-q", "-f", path], check=True)
    check = time.monotonic() - t0

    sock_path = tempfile.mktemp(prefix="notify-", dir=os.path.dirname(path))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(sock_path)
    notify.settimeout(deadline_s)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd + ["-Ws", "-f", path], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while not answered(front):
            if time.monotonic() - t0 > deadline_s or proc.poll() is not None:
                raise RuntimeError(f"{name} did not serve")
            time.sleep(0.005)
        start = time.monotonic() - t0
        rss = rss_kib(proc.pid)
        # Drain start-up notifications, then time a reload.
        notify.settimeout(0.2)
        try:
            while True:
                notify.recv(512)
        except socket.timeout:
            pass
        notify.settimeout(deadline_s)
        t0 = time.monotonic()
        proc.send_signal(12)  # SIGUSR2
        while True:
            msg = notify.recv(512)
            if msg.startswith(b"READY=1"):
                break
        reload_s = time.monotonic() - t0
        while not answered(front):
            time.sleep(0.005)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        notify.close()
        os.unlink(sock_path)
    return check, start, reload_s, rss


def main():
    if not os.path.exists(FULCRUM):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "fulcrum"], cwd=ROOT, check=True)
    origin_port = origin()
    work = tempfile.mkdtemp(prefix="fulcrum-control-")
    cases = [(b, 5) for b in SIZES] + [(1, 100_000)]
    print(f"runs: {RUNS}; {os.cpu_count()} CPUs; haproxy: "
          + subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.splitlines()[0])
    print("| configuration | proxy | -c s | start s | reload s | RSS MiB |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for backends, servers in cases:
        medians = {}
        for name in ["haproxy", "fulcrum"]:
            runs = []
            # HAProxy 2.6 takes minutes per step on 100k servers in one backend: one run there.
            for _ in range(RUNS if servers < 100_000 else 1):
                front = free_port()
                path = os.path.join(work, f"{name}-{backends}x{servers}.cfg")
                with open(path, "w") as f:
                    f.write(config(backends, servers, front, origin_port))
                runs.append(measure(name, path, front))
            medians[name] = [statistics.median(r[i] for r in runs) for i in range(4)]
            c, s, r, m = medians[name]
            print(f"| {backends} x {servers} | {name} | {c:.3f} | {s:.3f} | {r:.3f} | {m / 1024:.1f} |",
                  flush=True)
        h, f = medians["haproxy"], medians["fulcrum"]
        ratios.append((f"{backends} x {servers}", [f[i] / h[i] if h[i] else float("nan") for i in range(4)]))
    print()
    print("| configuration | -c | start | reload | RSS |  (fulcrum / HAProxy)")
    print("|---|---|---|---|---|")
    for label, r in ratios:
        print(f"| {label} | " + " | ".join(f"{x:.2f}" for x in r) + " |")


if __name__ == "__main__":
    main()
