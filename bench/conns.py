#!/usr/bin/env python3
"""Memory per client connection of a running proxy, as RSS growth of its processes.

  conns.py idle   PORT PID N            N keep-alive connections, one request answered on each,
                                        then all held open and idle
  conns.py active PORT PID N SLOWPORT   N connections with a request in flight each: this
                                        script is also the origin on 127.0.0.1:SLOWPORT, and
                                        answers none until all N have reached it

Prints one line: conns=N rss_before_kib=... rss_after_kib=... per_conn_bytes=...
Everything stays on 127.0.0.1; every wait is bounded (60 s)."""
import asyncio
import resource
import sys

LIMIT = 60.0


def rss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def tree(pid):
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for kid in f.read().split():
                out += tree(int(kid))
    except FileNotFoundError:
        pass
    return out


async def read_response(r):
    head = await r.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if length:
        await r.readexactly(length)
    return head


async def open_and_ask(port, held):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: conns.py\r\nAccept: */*\r\n\r\n")
    await w.drain()
    held.append((r, w))


async def idle(port, pid, n):
    before = rss_kib(pid)
    held = []
    for i in range(0, n, 500):
        batch = []
        await asyncio.wait_for(asyncio.gather(*(open_and_ask(port, batch) for _ in range(min(500, n - i)))), LIMIT)
        await asyncio.wait_for(asyncio.gather(*(read_response(r) for r, _ in batch)), LIMIT)
        held += batch
    await asyncio.sleep(2)
    after = rss_kib(pid)
    return held, before, after


async def active(port, pid, n, slow_port):
    arrived = 0
    all_in = asyncio.Event()
    release = asyncio.Event()

    async def origin(r, w):
        nonlocal arrived
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                arrived += 1
                if arrived >= n:
                    all_in.set()
                await release.wait()
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\nhello from the slow origin, answered late\n")
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()

    server = await asyncio.start_server(origin, "127.0.0.1", slow_port, backlog=4096)
    before = rss_kib(pid)
    held = []
    for i in range(0, n, 500):
        await asyncio.wait_for(asyncio.gather(*(open_and_ask(port, held) for _ in range(min(500, n - i)))), LIMIT)
    await asyncio.wait_for(all_in.wait(), LIMIT)
    await asyncio.sleep(2)
    after = rss_kib(pid)
    release.set()
    await asyncio.wait_for(asyncio.gather(*(read_response(r) for r, _ in held)), LIMIT)
    server.close()
    return held, before, after


async def main():
    mode, port, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    resource.setrlimit(resource.RLIMIT_NOFILE, (2 * n + 1000, 2 * n + 1000))
    await asyncio.sleep(0.5)
    if mode == "idle":
        held, before, after = await idle(port, pid, n)
    else:
        held, before, after = await active(port, pid, n, int(sys.argv[5]))
    per = (after - before) * 1024 / max(len(held), 1)
    print(f"conns={len(held)} rss_before_kib={before} rss_after_kib={after} per_conn_bytes={per:.0f}")
    for _, w in held:
        w.close()


asyncio.run(main())
