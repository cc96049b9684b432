#!/usr/bin/env python3
"""Resumed TLS handshakes, one request per connection: `tls_resume.py HOST PORT SECONDS [PROCS]`.

Each process connects again and again for SECONDS, offering the session (TLS 1.3 ticket) of
its previous connection, sends one request with `Connection: close` and reads the answer to
its end. Prints `handshakes N resumed R failed F` summed over the processes (wrk and
`openssl s_time` do not resume TLS 1.3 sessions, so this client exists for the benchmark).
"""
import multiprocessing as mp
import socket
import ssl
import sys
import time


def worker(host, port, secs, out):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    request = b"GET / HTTP/1.1\r\nHost: bench.example\r\nConnection: close\r\n\r\n"
    session = None
    done = resumed = failed = 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            raw = socket.create_connection((host, port), timeout=5)
            s = ctx.wrap_socket(raw, server_hostname="bench.example", session=session)
            s.sendall(request)
            while s.recv(65536):
                pass
            if s.session_reused:
                resumed += 1
            session = s.session
            s.close()
            done += 1
        except OSError:
            failed += 1
            session = None
    out.put((done, resumed, failed))


def main():
    host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    procs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    out = mp.Queue()
    ps = [mp.Process(target=worker, args=(host, port, secs, out)) for _ in range(procs)]
    for p in ps:
        p.start()
    totals = [0, 0, 0]
    for _ in ps:
        for i, v in enumerate(out.get()):
            totals[i] += v
    for p in ps:
        p.join()
    print(f"handshakes {totals[0]} resumed {totals[1]} failed {totals[2]}")


if __name__ == "__main__":
    main()
