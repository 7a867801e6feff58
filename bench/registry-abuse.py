#!/usr/bin/env python3
"""Abuse an OCI registry on 127.0.0.1 and print what happened (stdlib only).

    registry-abuse.py STEP --port PORT --state DIR     one step; prints one JSON line
    registry-abuse.py report RESULTS.tsv [--json OUT]  the side-by-side table

Steps (bench/abuse-bench.sh runs them in this order against each server and
reads the server's VmHWM around each one):

  connections      CONNS (3000) TCP connections at once, each sending a partial
                   request head and then nothing, held HOLD (5) s; near the end of
                   the hold one normal GET /v2/ on a fresh connection (the probe),
                   then all are closed and /v2/ is probed again
  uploads          UPLOADS (2000) POST /v2/abuse/blobs/uploads/, 32 at a time on
                   keep-alive connections, never finished
  patch-flood      PATCH_SESSIONS (200) upload sessions opened (32 at a time),
                   then one 8 MiB PATCH into each, all at once, sent as fast as
                   the sockets take it
  push-blob        (setup) a 64 MiB random blob, monolithic POST ?digest=; when
                   the server answers 202 instead of 201, POST + PUT ?digest=
  slow-readers     SLOW_READERS (300) GETs of that blob at once; the clients read
                   nothing for 5 s, then read one buffer (for the status) and close
  range-flood      RANGE_CLIENTS (100) GETs at once of that blob with
                   Range: bytes=0-,0-,... (200 ranges), read to the end
  monolithic-huge  HUGE_CLIENTS (50) POST ?digest= declaring Content-Length
                   100 GiB, sending 1 MiB, waiting up to 1 s for an answer, closing
  cancel-uploads   (cleanup) DELETE every upload session the steps above opened

Outcomes that are not an HTTP status: held (open, nothing received),
closed (EOF before a response head), reset, timeout, refused, err-<errno>.
"""
import asyncio
import errno
import hashlib
import json
import os
import random
import socket
import sys
import time
import urllib.parse

REPO = "abuse"
MiB = 1 << 20
HOST = "127.0.0.1"


def env_int(name, default):
    return int(os.environ.get(name, default))


# --------------------------------------------------------------- tiny HTTP ---
# Probes come from a second loopback address: the abuse all comes from 127.0.0.1, and a
# server that limits connections per client should still serve a different one.
PROBE_SOURCE = "127.0.0.2"


class Conn:
    """A non-blocking socket with a read buffer; HTTP/1.1 by hand."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, port, timeout=20.0, rcvbuf=None, source=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        if source:  # another client: any 127.0.0.0/8 address is this host
            s.bind((source, 0))
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(s, (HOST, port)), timeout)
        except BaseException:
            s.close()
            raise
        return cls(s)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    async def send(self, data, piece=MiB):
        mv = memoryview(data)
        for i in range(0, len(mv), piece):
            await self.loop.sock_sendall(self.sock, mv[i:i + piece])

    async def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError()
        chunk = await asyncio.wait_for(self.loop.sock_recv(self.sock, 65536), left)
        if not chunk:
            raise EOFError()
        self.buf += chunk

    async def read_head(self, deadline):
        """(status, {lower-case header: value}, head bytes) of the next response."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(self.buf) > 1 << 20:
                raise ValueError("response head over 1 MiB")
            await self._fill(deadline)
        head = bytes(self.buf[:i]).decode("latin-1")
        del self.buf[:i + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers, i + 4

    async def read_body(self, method, status, headers, deadline, scratch=None):
        """Reads (and drops) the body; returns its length in bytes."""
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return 0
        if "chunked" in headers.get("transfer-encoding", "").lower():
            total = 0
            while True:
                while b"\r\n" not in self.buf:
                    await self._fill(deadline)
                i = self.buf.find(b"\r\n")
                size = int(bytes(self.buf[:i]).split(b";")[0], 16)
                del self.buf[:i + 2]
                if size == 0:
                    while b"\r\n\r\n" not in self.buf and not self.buf.startswith(b"\r\n"):
                        await self._fill(deadline)
                    j = 2 if self.buf.startswith(b"\r\n") else self.buf.find(b"\r\n\r\n") + 4
                    del self.buf[:j]
                    return total
                await self._skip(size + 2, deadline, scratch)
                total += size
        if "content-length" in headers:
            n = int(headers["content-length"])
            await self._skip(n, deadline, scratch)
            return n
        return await self._skip(None, deadline, scratch)  # to EOF

    async def _skip(self, n, deadline, scratch):
        """Drops n bytes (None: until EOF) from buffer and socket; returns the count."""
        got = min(len(self.buf), n) if n is not None else len(self.buf)
        del self.buf[:got]
        scratch = scratch or bytearray(MiB)
        while n is None or got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError()
            want = len(scratch) if n is None else min(len(scratch), n - got)
            k = await asyncio.wait_for(self.loop.sock_recv_into(self.sock, memoryview(scratch)[:want]), left)
            if k == 0:
                if n is None:
                    return got
                raise EOFError()
            got += k
        return got


def request_head(method, path, headers=(), length=None):
    h = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "User-Agent: registry-abuse"]
    h += [f"{k}: {v}" for k, v in headers]
    if length is not None:
        h.append(f"Content-Length: {length}")
    return ("\r\n".join(h) + "\r\n\r\n").encode("latin-1")


def outcome_of(exc):
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(exc, EOFError):
        return "closed"
    if isinstance(exc, OSError) and exc.errno:
        return "err-" + errno.errorcode.get(exc.errno, str(exc.errno))
    return "err-" + type(exc).__name__


class Hist:
    def __init__(self):
        self.d = {}

    def add(self, key, n=1):
        key = str(key)
        self.d[key] = self.d.get(key, 0) + n

    def items(self):
        return dict(sorted(self.d.items(), key=lambda kv: (-kv[1], kv[0])))


def path_of(location):
    u = urllib.parse.urlsplit(location)
    return u.path + ("?" + u.query if u.query else "")


async def simple(port, method, path, headers=(), body=b"", timeout=30.0, source=None):
    """One request on a fresh connection: (status or outcome, headers, ms)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    c = None
    try:
        c = await Conn.open(port, timeout, source=source)
        await c.send(request_head(method, path, headers, len(body) if (body or method in ("POST", "PUT", "PATCH")) else None) + body)
        st, hd, _ = await c.read_head(deadline)
        await c.read_body(method, st, hd, deadline)
        return st, hd, round((time.monotonic() - t0) * 1000, 1)
    except Exception as e:  # noqa: BLE001 - every failure is an outcome
        return outcome_of(e), {}, round((time.monotonic() - t0) * 1000, 1)
    finally:
        if c:
            c.close()


async def health(port):
    st, _, ms = await simple(port, "GET", "/v2/", timeout=10.0, source=PROBE_SOURCE)
    return f"{st} in {ms:g} ms"


class KeepAlivePool:
    """Workers sending requests on keep-alive connections (reconnecting when needed)."""

    def __init__(self, port, workers):
        self.port, self.workers = port, workers

    async def run(self, jobs, hist, on_response=None, timeout=30.0):
        """jobs: list of (method, path, headers); hist gets 'METHOD status'."""
        q = list(reversed(jobs))
        by_method = len({j[0] for j in jobs}) > 1

        async def worker():
            c = None
            while q:
                method, path, headers = q.pop()
                for attempt in (0, 1):
                    reused = c is not None
                    try:
                        if c is None:
                            c = await Conn.open(self.port, timeout)
                        await c.send(request_head(method, path, headers, 0 if method in ("POST", "PUT", "PATCH") else None))
                        deadline = time.monotonic() + timeout
                        st, hd, _ = await c.read_head(deadline)
                        await c.read_body(method, st, hd, deadline)
                        hist.add(f"{method} {st}" if by_method else st)
                        if on_response:
                            on_response(method, path, st, hd)
                        if hd.get("connection", "").lower() == "close":
                            c.close()
                            c = None
                        break
                    except Exception as e:  # noqa: BLE001
                        if c:
                            c.close()
                        c = None
                        if reused and attempt == 0 and isinstance(e, (EOFError, ConnectionResetError, BrokenPipeError)):
                            continue  # the server closed an idle keep-alive connection; retry once
                        hist.add(outcome_of(e))
                        break
            if c:
                c.close()

        await asyncio.gather(*(worker() for _ in range(self.workers)))


def save_sessions(state, name, paths):
    with open(os.path.join(state, f"sessions.{name}"), "w") as fh:
        for p in paths:
            fh.write(p + "\n")


# ------------------------------------------------------------------- steps ---
async def step_connections(port, state):
    n, hold = env_int("CONNS", 3000), float(os.environ.get("HOLD", "5"))
    hist, conns = Hist(), []
    partial = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n"
    t0 = time.monotonic()

    async def one():
        try:
            c = await Conn.open(port, timeout=30.0)
        except Exception as e:  # noqa: BLE001
            return outcome_of(e), None
        try:
            await c.send(partial)
        except Exception as e:  # noqa: BLE001
            c.close()
            return outcome_of(e), None
        return None, c

    res = await asyncio.gather(*(one() for _ in range(n)))
    connect_s = time.monotonic() - t0
    for oc, c in res:
        if c is None:
            hist.add(oc)
        else:
            conns.append(c)
    hold_end = time.monotonic() + hold
    result = {}

    async def watch(c):
        try:
            st, _, _ = await c.read_head(hold_end + 3600)  # cancelled at the end of the hold
            return st
        except asyncio.CancelledError:
            return "held"
        except Exception as e:  # noqa: BLE001
            return outcome_of(e)

    watchers = [asyncio.ensure_future(watch(c)) for c in conns]
    await asyncio.sleep(max(0.0, hold_end - time.monotonic() - 1.0))
    # The probe, while all are held, from another client address: is anyone else served?
    st, _, ms = await simple(port, "GET", "/v2/", timeout=10.0, source=PROBE_SOURCE)
    result["probe_during_hold"] = f"{st} in {ms:g} ms"
    result["probe_ok"] = st == 200
    await asyncio.sleep(max(0.0, hold_end - time.monotonic()))
    for w in watchers:
        if not w.done():
            w.cancel()
    for w in watchers:
        try:
            hist.add(await w)
        except asyncio.CancelledError:
            hist.add("held")
    for c in conns:
        c.close()
    wall = time.monotonic() - t0
    await asyncio.sleep(1.0)
    result["probe_after_close"] = await health(port)
    result.update(hist=hist.items(), wall_s=round(wall, 2), connect_all_s=round(connect_s, 2), opened=len(conns))
    return result


async def step_uploads(port, state):
    n = env_int("UPLOADS", 2000)
    hist, sessions = Hist(), []

    def keep(method, path, st, hd):
        if st == 202 and "location" in hd:
            sessions.append(path_of(hd["location"]))

    t0 = time.monotonic()
    await KeepAlivePool(port, 32).run([("POST", f"/v2/{REPO}/blobs/uploads/", ())] * n, hist, keep)
    wall = time.monotonic() - t0
    save_sessions(state, "uploads", sessions)
    return dict(hist=hist.items(), wall_s=round(wall, 2), sessions_open=len(sessions))


async def step_patch_flood(port, state):
    n, size = env_int("PATCH_SESSIONS", 200), env_int("PATCH_MIB", 8) * MiB
    body = random.Random(3).randbytes(size)
    hist, sessions = Hist(), []

    def keep(method, path, st, hd):
        if st == 202 and "location" in hd:
            sessions.append(path_of(hd["location"]))

    t0 = time.monotonic()
    await KeepAlivePool(port, 32).run([("POST", f"/v2/{REPO}/blobs/uploads/", ())] * n, hist, keep)
    refused = sum(v for k, v in hist.d.items() if k != "202")
    t1 = time.monotonic()
    phist = Hist()
    moved = {}
    sent_total = [0]
    lat = []

    async def patch(path):
        c = None
        ts = time.monotonic()
        deadline = ts + 120.0
        try:
            c = await Conn.open(port)
            await c.send(request_head("PATCH", path, [("Content-Type", "application/octet-stream")], size))
            sent = 0
            send_err = None
            try:
                for i in range(0, size, MiB):
                    await c.loop.sock_sendall(c.sock, memoryview(body)[i:i + MiB])
                    sent += min(MiB, size - i)
            except (ConnectionResetError, BrokenPipeError) as e:
                send_err = e  # the server may have answered early; look for it
            sent_total[0] += sent
            try:
                st, hd, _ = await c.read_head(deadline if send_err is None else time.monotonic() + 2.0)
            except Exception:  # noqa: BLE001
                if send_err is not None:
                    raise send_err
                raise
            phist.add(f"PATCH {st}" + ("(early)" if sent < size else ""))
            if st == 202 and "location" in hd:
                moved[path] = path_of(hd["location"])  # distribution's _state changes with each PATCH
            lat.append(time.monotonic() - ts)
        except Exception as e:  # noqa: BLE001
            phist.add("PATCH " + outcome_of(e))
        finally:
            if c:
                c.close()

    async def bounded(path):
        try:
            await asyncio.wait_for(patch(path), 150.0)
        except asyncio.TimeoutError:
            phist.add("PATCH timeout")

    await asyncio.gather(*(bounded(p) for p in sessions))
    t2 = time.monotonic()
    save_sessions(state, "patch-flood", [moved.get(p, p) for p in sessions])
    h = {f"POST {k}": v for k, v in hist.items().items()}
    h.update(phist.items())
    lat.sort()
    return dict(hist=h, wall_s=round(t2 - t0, 2), open_s=round(t1 - t0, 2), patch_s=round(t2 - t1, 2),
                sessions_refused=refused, patch_bytes_sent=sent_total[0],
                patch_mb_per_s=round(sent_total[0] / 1e6 / max(t2 - t1, 1e-9), 1),
                patch_p50_s=round(lat[len(lat) // 2], 2) if lat else None,
                patch_max_s=round(lat[-1], 2) if lat else None)


def blob_bytes(state):
    """The 64 MiB random blob (same bytes for every server) and its digest."""
    p = os.path.join(state, "blob64.bin")
    size = env_int("BLOB_MIB", 64) * MiB
    if not os.path.exists(p) or os.path.getsize(p) != size:
        with open(p + ".tmp", "wb") as fh:
            fh.write(random.Random(64).randbytes(size))
        os.rename(p + ".tmp", p)
    data = open(p, "rb").read()
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


async def step_push_blob(port, state):
    data, digest = blob_bytes(state)
    t0 = time.monotonic()
    hist = Hist()
    st, _, _ = await simple(port, "HEAD", f"/v2/{REPO}/blobs/{digest}")
    if st == 200:
        return dict(hist={"HEAD 200": 1}, wall_s=0.0, digest=digest, how="already there")
    st, hd, ms = await simple(port, "POST", f"/v2/{REPO}/blobs/uploads/?digest={digest}",
                              [("Content-Type", "application/octet-stream")], data, timeout=120.0)
    hist.add(f"POST {st}")
    how = "monolithic POST"
    if st != 201:
        how = f"POST then PUT (the monolithic POST: {st})"
        if st == 202 and "location" in hd:  # the server started a session instead; finish it with one PUT
            loc = path_of(hd["location"])
        else:
            st2, hd2, _ = await simple(port, "POST", f"/v2/{REPO}/blobs/uploads/")
            hist.add(f"POST {st2}")
            loc = path_of(hd2.get("location", ""))
            if not loc:
                return dict(hist=hist.items(), wall_s=round(time.monotonic() - t0, 2), error="no upload session")
        sep = "&" if "?" in loc else "?"
        st, _, _ = await simple(port, "PUT", f"{loc}{sep}digest={digest}",
                                [("Content-Type", "application/octet-stream")], data, timeout=120.0)
        hist.add(f"PUT {st}")
    st, hd, _ = await simple(port, "HEAD", f"/v2/{REPO}/blobs/{digest}")
    return dict(hist=hist.items(), wall_s=round(time.monotonic() - t0, 2), digest=digest, how=how,
                head_after=st, head_length=hd.get("content-length"))


async def step_slow_readers(port, state):
    n, idle = env_int("SLOW_READERS", 300), float(os.environ.get("SLOW_IDLE", "5"))
    _, digest = blob_bytes(state)
    hist = Hist()
    req = request_head("GET", f"/v2/{REPO}/blobs/{digest}")
    t0 = time.monotonic()

    async def one():
        try:
            c = await Conn.open(port, timeout=30.0)
            await c.send(req)
            return None, c
        except Exception as e:  # noqa: BLE001
            return outcome_of(e), None

    res = await asyncio.gather(*(one() for _ in range(n)))
    conns = [c for oc, c in res if c is not None]
    for oc, c in res:
        if c is None:
            hist.add(oc)
    await asyncio.sleep(idle)  # read nothing

    async def status(c):
        try:
            st, _, _ = await c.read_head(time.monotonic() + 2.0)
            return st
        except asyncio.TimeoutError:
            return "no-reply"
        except Exception as e:  # noqa: BLE001
            return outcome_of(e)
        finally:
            c.close()

    for st in await asyncio.gather(*(status(c) for c in conns)):
        hist.add(st)
    wall = time.monotonic() - t0
    await asyncio.sleep(1.0)
    return dict(hist=hist.items(), wall_s=round(wall, 2), after=await health(port))


async def step_range_flood(port, state):
    n, nranges = env_int("RANGE_CLIENTS", 100), env_int("RANGES", 200)
    _, digest = blob_bytes(state)
    hist = Hist()
    rng = "bytes=" + ",".join(["0-"] * nranges)
    req = request_head("GET", f"/v2/{REPO}/blobs/{digest}", [("Range", rng)])
    totals = {"body": 0, "head": 0}
    sample = {}
    t0 = time.monotonic()

    async def one():
        c = None
        scratch = bytearray(MiB)
        try:
            c = await Conn.open(port, timeout=30.0)
            await c.send(req)
            deadline = time.monotonic() + 180.0
            st, hd, hn = await c.read_head(deadline)
            totals["head"] += hn
            try:
                nb = await c.read_body("GET", st, hd, deadline, scratch)
            finally:
                pass
            totals["body"] += nb
            hist.add(st)
            if str(st) not in sample:
                sample[str(st)] = {k: hd[k] for k in ("content-type", "content-range", "content-length") if k in hd}
        except Exception as e:  # noqa: BLE001
            hist.add(outcome_of(e))
        finally:
            if c:
                c.close()

    await asyncio.gather(*(one() for _ in range(n)))
    wall = time.monotonic() - t0
    return dict(hist=hist.items(), wall_s=round(wall, 2), body_bytes=totals["body"],
                bytes_sent=totals["body"] + totals["head"], sample_headers=sample,
                mb_per_s=round((totals["body"] + totals["head"]) / 1e6 / max(wall, 1e-9), 1),
                after=await health(port))


async def step_monolithic_huge(port, state):
    n = env_int("HUGE_CLIENTS", 50)
    declared = env_int("HUGE_GIB", 100) << 30
    hist = Hist()
    piece = random.Random(6).randbytes(MiB)
    sent_total = [0]
    t0 = time.monotonic()

    async def one(i):
        c = None
        digest = "sha256:" + hashlib.sha256(b"never-sent-%d" % i).hexdigest()
        try:
            c = await Conn.open(port, timeout=30.0)
            try:
                await c.send(request_head("POST", f"/v2/{REPO}/blobs/uploads/?digest={digest}",
                                          [("Content-Type", "application/octet-stream")], declared))
                await c.send(piece, 64 * 1024)
                sent_total[0] += len(piece)
                early = ""
            except (ConnectionResetError, BrokenPipeError):
                early = "(early)"
            st, _, _ = await c.read_head(time.monotonic() + 1.0)
            hist.add(f"{st}{early}")
        except asyncio.TimeoutError:
            hist.add("no-reply")  # the server still waits for the body
        except Exception as e:  # noqa: BLE001
            hist.add(outcome_of(e))
        finally:
            if c:
                c.close()

    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.monotonic() - t0
    await asyncio.sleep(1.0)
    return dict(hist=hist.items(), wall_s=round(wall, 2), bytes_sent=sent_total[0], after=await health(port))


async def step_cancel_uploads(port, state):
    paths = []
    for name in sorted(os.listdir(state)):
        if name.startswith("sessions."):
            with open(os.path.join(state, name)) as fh:
                paths += [ln.strip() for ln in fh if ln.strip()]
            os.remove(os.path.join(state, name))
    hist = Hist()
    t0 = time.monotonic()
    await KeepAlivePool(port, 32).run([("DELETE", p, ()) for p in paths], hist)
    return dict(hist=hist.items(), wall_s=round(time.monotonic() - t0, 2), sessions=len(paths))


STEPS = {
    "connections": step_connections, "uploads": step_uploads, "patch-flood": step_patch_flood,
    "push-blob": step_push_blob, "slow-readers": step_slow_readers, "range-flood": step_range_flood,
    "monolithic-huge": step_monolithic_huge, "cancel-uploads": step_cancel_uploads,
}
PHASES = ["connections", "uploads", "patch-flood", "slow-readers", "range-flood", "monolithic-huge"]


# ------------------------------------------------------------------ report ---
def fmt_hist(h):
    return " ".join(f"{k}\u00d7{v}" for k, v in h.items()) or "-"


def report(results, out_json):
    rows = []  # results.tsv: server step hwm_kib rss_after_kib cpu_s alive json
    for line in open(results):
        p = line.rstrip("\n").split("\t", 7)
        if len(p) < 8:
            continue
        srv, st, hwm, rss, cpu, alive, rss0, js = p
        try:
            d = json.loads(js)
        except ValueError:
            d = {"error": js[:200]}
        d.pop("step", None)
        rows.append(dict(server=srv, step=st, peak_rss_mib=round(int(hwm) / 1024, 1),
                         rss_after_mib=round(int(rss) / 1024, 1), rss_before_mib=round(int(rss0) / 1024, 1),
                         server_cpu_s=float(cpu),
                         alive=alive == "1", **d))
    servers = []
    for r in rows:
        if r["server"] not in servers:
            servers.append(r["server"])
    by = {(r["server"], r["step"]): r for r in rows}
    label = {"blobstore": "blobctl serve", "registry": "docker-registry"}
    short = {"blobstore": "blobctl", "registry": "registry"}
    cols = [("peak RSS MiB", "peak_rss_mib", 1), ("RSS before MiB", "rss_before_mib", 1),
            ("RSS after MiB", "rss_after_mib", 1), ("server CPU s", "server_cpu_s", 2), ("wall s", "wall_s", 2)]
    w = 10
    gw = w * len(servers)

    def num(r, k, nd=1):
        v = r.get(k) if r else None
        return "n/a" if v is None else f"{v:,.{nd}f}"

    gws = [max(gw, len(title)) + 2 for title, _, _ in cols]
    print(f"{'':<18}" + "".join(f"{title:>{g}}" for (title, _, _), g in zip(cols, gws)))
    print(f"{'phase':<18}" + "".join("".join(f"{short.get(s, s):>{w}}" for s in servers).rjust(g) for g in gws))
    print("-" * (18 + sum(gws)))
    order = ["idle"] + PHASES
    for i, st in enumerate(order):
        line = f"{st if st == 'idle' else f'{i} {st}':<18}"
        for (_, k, nd), g in zip(cols, gws):
            cells = ""
            for s in servers:
                r = by.get((s, st))
                if r and not r["alive"] and k == "peak_rss_mib":
                    cells += f"{'DIED':>{w}}"
                else:
                    cells += f"{num(r, k, nd) if (st != 'idle' or k not in ('wall_s', 'server_cpu_s')) else '':>{w}}"
            line += cells.rjust(g)
        print(line)
    print("(peak = VmHWM over the phase, reset at its start; it cannot drop below the RSS the phase started from)")
    print()
    print("Outcomes per phase (HTTP status\u00d7count; held = open with nothing received, closed = EOF before a"
          " response, (early) = answered before the body was sent):")
    for i, st in enumerate(PHASES, 1):
        print(f"{i} {st}")
        for s in servers:
            r = by.get((s, st))
            if not r:
                print(f"    {label.get(s, s):<16} (not run)")
                continue
            extra = []
            if not r["alive"]:
                extra.append("SERVER DIED")
            if st == "connections":
                extra.append(f"{r.get('opened')} opened in {r.get('connect_all_s')} s")
                extra.append(f"probe during hold: {r.get('probe_during_hold')}")
                extra.append(f"after close: {r.get('probe_after_close')}")
            elif st == "uploads":
                extra.append(f"{r.get('sessions_open')} sessions open")
            elif st == "patch-flood":
                extra.append(f"{r.get('sessions_refused')} sessions refused")
                extra.append(f"{r.get('patch_bytes_sent', 0) / MiB:,.0f} MiB sent in {r.get('patch_s')} s"
                             f" ({r.get('patch_mb_per_s')} MB/s), PATCH p50 {r.get('patch_p50_s')} s max {r.get('patch_max_s')} s")
            elif st == "range-flood":
                extra.append(f"server sent {r.get('bytes_sent', 0) / MiB:,.1f} MiB"
                             f" ({r.get('body_bytes', 0) / MiB:,.1f} MiB bodies, {r.get('mb_per_s')} MB/s)")
                for code, hd in (r.get("sample_headers") or {}).items():
                    extra.append(f"{code}: " + ", ".join(f"{k}: {v}" for k, v in hd.items()))
            elif st == "monolithic-huge":
                extra.append(f"{r.get('bytes_sent', 0) / MiB:,.0f} MiB sent")
            if r.get("after") and st != "connections":
                extra.append(f"GET /v2/ after: {r['after']}")
            if r.get("error"):
                extra.append("error: " + r["error"])
            print(f"    {label.get(s, s):<16} {fmt_hist(r.get('hist', {}))}")
            if extra:
                print(f"    {'':<16} " + "; ".join(extra))
    side = [r for r in rows if r["step"] not in PHASES and r["step"] != "idle" and r.get("how") != "already there"]
    if side:
        print()
        print("Setup and cleanup steps (not phases; VmHWM is reset before each phase):")
        for r in side:
            more = ""
            if r["step"] == "push-blob":
                more = f"; {r.get('how')}; HEAD after {r.get('head_after')}"
            elif r["step"] == "cancel-uploads":
                more = f"; {r.get('sessions')} sessions"
            print(f"    {label.get(r['server'], r['server']):<16} {r['step']:<15} {fmt_hist(r.get('hist', {}))}"
                  f"; {r.get('wall_s')} s; peak RSS {r['peak_rss_mib']} MiB{more}")
    if out_json:
        with open(out_json, "w") as fh:
            json.dump(rows, fh, indent=2)
        print(f"\nJSON written to {out_json}")


def log_summary(paths):
    """Counts a server log's error lines, grouped once timestamps, ids and numbers are masked."""
    import re
    bad = re.compile(r"level=(error|fatal|panic)|\b(error|critical|fatal|panic)\b", re.I)
    benign = re.compile(r'err\.code="(blob|manifest) unknown"')
    for p in paths:
        try:
            lines = open(p, errors="replace").read().splitlines()
        except OSError:
            continue
        groups = {}
        for ln in lines:
            if not bad.search(ln) or benign.search(ln):
                continue
            m = re.search(r'msg="((?:[^"\\]|\\.)*)"', ln)
            code = re.search(r'err\.code="([^"]*)"', ln)
            key = (m.group(1) + (f" ({code.group(1)})" if code else "")) if m else re.sub(r"^\S*\d{4}-\d\d-\d\dT\S+\s*", "", ln)
            key = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", key)
            key = re.sub(r"[0-9a-fA-F]{16,}", "<hex>", key)
            key = re.sub(r"\d+", "N", key)[:200]
            groups[key] = groups.get(key, 0) + 1
        print(f"server log {p}: {len(lines)} lines, {sum(groups.values())} error lines"
              + (" (docker-registry's 'blob unknown' 404s not counted)" if "registry" in os.path.basename(p) else ""))
        for k, v in sorted(groups.items(), key=lambda kv: -kv[1])[:6]:
            print(f"    {v:>6} x {k}")


def main(argv):
    if len(argv) >= 2 and argv[0] == "logs":
        log_summary(argv[1:])
        return 0
    if len(argv) >= 2 and argv[0] == "report":
        out = argv[argv.index("--json") + 1] if "--json" in argv and argv[argv.index("--json") + 1:] else None
        report(argv[1], out)
        return 0
    if not argv or argv[0] not in STEPS or "--port" not in argv or "--state" not in argv:
        sys.stderr.write(__doc__)
        return 2
    port = int(argv[argv.index("--port") + 1])
    state = argv[argv.index("--state") + 1]
    os.makedirs(state, exist_ok=True)
    res = asyncio.run(STEPS[argv[0]](port, state))
    res["step"] = argv[0]
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
