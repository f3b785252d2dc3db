"""Datasette and the crawl scheduler in one process on one event loop, and consistent snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import threading
from pathlib import Path

import uvicorn

from indexer import schedule, site, store

# The embedded sample, shipped in the wheel (a link to the checkout's catalog.db).
SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "catalog.db"
log = logging.getLogger("indexer.serve")


class ServeError(Exception):
    """The site cannot start; the message is one line."""


class _Server(uvicorn.Server):
    def __init__(self, config, on_exit=None):
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        # A running crawl starts winding down while uvicorn closes connections.
        if self.on_exit is not None:
            self.on_exit()

    # uvicorn (0.29+) re-raises SIGINT/SIGTERM once its own shutdown is done,
    # which would kill the process before the scheduler and a running crawl
    # stop. Catch them as uvicorn does, restore the handlers, raise nothing.
    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit)
                     for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def bind_socket(host, port):
    """A listening socket; bound before anything starts, so a busy port fails cleanly."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise ServeError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    return sock


def url_of(sock):
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/"


async def serve(db_path, sock, crawler=None, api_every=None, full_cron=None, on_ready=None,
                sample=None):
    """Serve the catalog on `sock` until SIGINT/SIGTERM, and the crawl jobs given a `crawler`."""
    served = store.catalog_for_reading(db_path, sample)
    # The embedded sample is served immutable: nothing may write it (issue 13).
    ds = site.build_datasette(served, immutable=store.holds_sample(served))
    # `datasette serve` runs startup hooks on a loop it then closes
    # (docs/datasette.md §7.1); here everything shares this one loop.
    await ds.invoke_startup()
    if crawler is not None:
        loop = asyncio.get_running_loop()

        def after_crawl():
            # The crawl ran in its own thread; Datasette's databases change on the loop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(site.switch_catalog, ds, db_path, sample)

        crawler.after_crawl = after_crawl
    config = uvicorn.Config(ds.app(), log_config=None)
    server = _Server(config, on_exit=crawler.stop.set if crawler is not None else None)
    jobs = (schedule.scheduling(crawler, api_every, full_cron) if crawler is not None
            else contextlib.nullcontext())
    async with jobs:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started and on_ready is not None:
            on_ready(url_of(sock))
        await task


def run(db_path, host, port, crawler=None, api_every=None, full_cron=None, on_ready=None,
        sample=None):
    """Bind, then serve until stopped; ServeError when the site cannot start.

    `sample`: the packaged sample, served until `db_path` holds a complete crawl
    (an installed wheel run where no catalog exists yet).
    """
    if sample is not None and not os.path.exists(sample):
        sample = None
    if not os.path.exists(db_path) and sample is None:
        if crawler is None:
            raise ServeError(f"no catalog at {db_path}: run `indexer crawl --db {db_path}` first")
        # The scheduler's first crawl fills it; until then the site shows empty tables.
        try:
            store.open_db(db_path).conn.close()
        except store.CatalogError as error:
            raise ServeError(str(error)) from None
    sock = bind_socket(host, port)
    try:
        asyncio.run(serve(db_path, sock, crawler, api_every, full_cron, on_ready, sample))
    finally:
        sock.close()


def write_snapshot(db_path, dest):
    """A consistent copy of the catalog at `dest`, even while a crawl writes; returns its size."""
    # VACUUM INTO reads one transaction, so a crawl committing meanwhile is
    # either wholly in the copy or not at all; copying the file of a WAL
    # database is not (docs/datasette.md §8).
    db_path, dest = os.fspath(db_path), os.fspath(dest)
    if not os.path.exists(db_path):
        raise store.CatalogError(f"no catalog at {db_path}")
    if os.path.abspath(dest) == os.path.abspath(db_path) or (
            os.path.exists(dest) and os.path.samefile(dest, db_path)):
        raise store.CatalogError(f"{dest} is the catalog itself; pick another path")
    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        raise store.CatalogError(f"cannot write {dest}: folder {folder} does not exist")
    partial = os.path.join(folder, f".{os.path.basename(dest)}.{os.getpid()}.partial")
    try:
        source = sqlite3.connect(db_path, timeout=30)
        try:
            source.execute("vacuum into ?", [partial])
        finally:
            source.close()
        # Replicas open the copy read-only or immutable: no WAL to carry along.
        copy = sqlite3.connect(partial, isolation_level=None)
        try:
            copy.execute("pragma journal_mode = delete")
        finally:
            copy.close()
        os.replace(partial, dest)
    except sqlite3.Error as error:
        raise store.CatalogError(store.describe_db_error(db_path, error)) from None
    except OSError as error:
        raise store.CatalogError(f"cannot write {dest} ({error.strerror})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
    return os.path.getsize(dest)
