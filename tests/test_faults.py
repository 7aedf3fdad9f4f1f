"""Fault injection against the real daemon process: "nothing lost, nothing twice".

Every test runs `python -m daemon.cli run --config F` as a child process and
hurts it from the outside only (no mocks, no test hooks in the product):
hostile files and names on the share, kill -9 at chosen phases, a share that
vanishes, a locked store, a full state disk, files that make the analysis blow
up. After each scenario `verify()` checks DESIGN's promises from the store and
the reports alone:

- every matching file has exactly one `images` row, with the right status
  (good content: 'done', once per content and sample, else 'duplicate'; broken
  files: 'quarantined' with a one-line reason a person understands);
- particles only for 'done' rows, each image's particles once, and equal to
  what `pipeline.analyse.analyse_image` (the code path of `psdwatch process`)
  measures on that file with the same settings; so each sample's PSD is the PSD
  of its good images alone;
- the reports are current, valid HTML without injected markup, and show that PSD;
- `PRAGMA integrity_check` is ok and `store.problems()` is empty;
- the share is byte-for-byte what the test wrote, and nothing was written
  outside the state folder;
- the daemon is still running (or was restarted cleanly by the test).

Phases are hit without product hooks: the test polls the store (WAL: reading
never blocks the daemon) and freezes the daemon with SIGSTOP at the moment it
sees the phase, confirms the phase while the process cannot move (a job still
'processing'; the store's write lock still held; a 'done' row whose report is
not written yet), then sends SIGKILL. A frozen-then-killed process is exactly
a process killed at that instant.
"""

from __future__ import annotations

import errno
import hashlib
import io
import math
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import unicodedata
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import tifffile

from psdwatch.daemon import report
from psdwatch.daemon import store
from psdwatch.daemon.store.queries import SUMMARY_TABLE
from psdwatch.daemon.config import load_config, settings_from_config
from psdwatch.pipeline.measure import psd
from psdwatch.pipeline.analyse import analyse_image, analysis_record
from psdwatch.pipeline.synth import SynthSpec, synth_image

from .conftest import wait_for as shared_wait_for

pytestmark = pytest.mark.slow  # real processes or training: `pytest -m 'not slow'` skips them

REPO = Path(__file__).resolve().parent.parent
SETTLE = 0.6
XSS_SAMPLE = "<img src=x onerror=alert(1)>"          # a sample folder name
XSS_FILE = "<script>alert(1)</script>.tif"           # a "file name" (the / makes a folder)
READY_LINE = "catch-up scan of"


# --------------------------------------------------------------------------- content

_SYNTH_CACHE: dict[tuple[int, int], bytes] = {}
TRUE_SCALE: dict[str, float] = {}  # sha256 of a synthetic frame -> its true nm per pixel


def synth_bytes(seed: int, size: int = 384) -> bytes:
    """A synthetic HAADF frame (with its scale bar) as the TIFF bytes a microscope writes."""
    key = (seed, size)
    if key not in _SYNTH_CACHE:
        image, _mask, truth = synth_image(SynthSpec(size=size, bits=16 if seed % 2 else 8,
                                                     style="band", seed=seed))
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, image)
        _SYNTH_CACHE[key] = buffer.getvalue()
        TRUE_SCALE[sha256(buffer.getvalue())] = truth["nm_per_px"]
    return _SYNTH_CACHE[key]


def tiff_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


def huge_declared_tiff(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid little TIFF whose header claims width x height 8-bit pixels in one
    deflate strip: a few hundred bytes on disk, 10 GB if anyone believed it."""
    data = zlib.compress(b"\0" * 4096)
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1),
               (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, len(data))]
    data_offset = 8 + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\0" + struct.pack("<IH", 8, len(entries)))
    for tag, kind, value in entries:
        value = data_offset if tag == 273 else value
        out += struct.pack("<HHIHH", tag, kind, 1, value, 0) if kind == 3 else \
            struct.pack("<HHII", tag, kind, 1, value)
    return bytes(out + struct.pack("<I", 0) + data)


def corrupt_ifd_tiff() -> bytes:
    """TIFF magic, then a first-IFD offset far past the end of the file."""
    good = synth_bytes(900, 256)
    return good[:4] + struct.pack("<I", 10**9) + good[8:]


FAKE_PDF = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
            + bytes(range(256)) * 8 + b"%%EOF\n")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored(rel: str) -> str:
    """The path a file must have in the store: as it is, or, for a name that is
    not valid UTF-8 (its bytes arrive as surrogate escapes), with those bytes as \\xNN."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return os.fsencode(rel).decode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------- the share

class Share:
    """The microscope's side: everything the test writes, and what it expects of it."""

    def __init__(self, root: Path):
        self.root = root
        self.expect: dict[str, tuple[str, tuple[str, ...]]] = {}  # rel -> (good|bad, reason words)
        self.threads: list[threading.Thread] = []
        self.dropped = 0

    def put(self, rel: str, data: bytes, *, bad: tuple[str, ...] | None = None, chunks: int = 1,
            pause: float = 0.0, stall: float = 0.0, background: bool = False,
            root: Path | None = None) -> None:
        """Write `data` to root/rel, in `chunks` with `pause` between them (a slow
        copy) and one `stall` half-way (a writer that hangs longer than settle)."""
        path = (root or self.root) / rel
        path.parent.mkdir(parents=True, exist_ok=True)

        def write():
            step = max(1, math.ceil(len(data) / chunks))
            with open(path, "wb") as handle:
                for i in range(chunks):
                    handle.write(data[i * step:(i + 1) * step])
                    handle.flush()
                    if i < chunks - 1:
                        time.sleep(stall if stall and i == chunks // 2 else pause)

        self.expect[rel] = ("bad", bad) if bad is not None else ("good", ())
        self.dropped += 1
        if background:
            thread = threading.Thread(target=write, daemon=True)
            thread.start()
            self.threads.append(thread)
        else:
            write()

    def ignored(self, rel: str, data: bytes) -> None:
        """A file the watch patterns do not match: must get no row."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)
        self.threads.clear()

    def state(self) -> dict[str, tuple]:
        """Every entry below the root: files with content hash, mode and mtime; folders."""
        out = {}
        for dirpath, dirs, files in os.walk(self.root):
            for name in dirs + files:
                path = Path(dirpath) / name
                info = path.lstat()
                rel = path.relative_to(self.root).as_posix()
                if path.is_file():
                    out[rel] = (sha256(path.read_bytes()), info.st_mode, info.st_mtime_ns)
                else:
                    out[rel] = ("dir", info.st_mode)
        return out


def outside_state(tmp_path: Path) -> dict[str, tuple]:
    """Everything under tmp_path except the state folder and the share (checked on its own)."""
    out = {}
    for dirpath, dirs, files in os.walk(tmp_path):
        top = Path(dirpath).relative_to(tmp_path).parts[:1]
        if top and top[0] in ("state", "share"):
            continue
        for name in dirs + files:
            path = Path(dirpath) / name
            rel = path.relative_to(tmp_path).as_posix()
            if rel in ("state", "share"):
                continue
            info = path.lstat()
            out[rel] = (info.st_size if path.is_file() else "dir", info.st_mtime_ns)
    return out


# --------------------------------------------------------------------------- the daemon

class Daemon:
    """`python -m daemon.cli run` of this checkout, its output kept in memory."""

    def __init__(self, config: Path):
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.starts = 0
        self.kills: list[str] = []

    def start(self, wait: bool = True) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        self.lines.append(f"--- start {self.starts} ---")
        self._mark = len(self.lines)
        self.proc = subprocess.Popen([sys.executable, "-m", "psdwatch.daemon.cli", "run", "--config", str(self.config)],
                                     cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace")
        self.starts += 1
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if wait:
            wait_for(lambda: any(READY_LINE in line for line in self.lines[self._mark:]), 120,
                     "the daemon to start watching", self)

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, phase: str) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills.append(phase)

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; returns the exit code."""
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def log(self, last: int = 60) -> str:
        return "\n".join(self.lines[-last:])


def wait_for(predicate, timeout: float, what: str, daemon: Daemon | None = None,
             interval: float = 0.2) -> None:
    """The shared wait, failing at once with the log when the daemon died."""
    def alive(what: str) -> None:
        if daemon is not None and not daemon.alive():
            pytest.fail(f"the daemon died (exit {daemon.proc.returncode}) while waiting for {what}:\n"
                        f"{daemon.log()}")
    shared_wait_for(predicate, timeout, what, interval, alive)


def connect(database: Path, timeout: float = 10.0) -> sqlite3.Connection:
    """A plain reader (autocommit: every SELECT its own snapshot; never a write)."""
    conn = sqlite3.connect(str(database), timeout=timeout, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def query(database: Path, sql: str, params=()) -> list[sqlite3.Row]:
    if not database.is_file():
        return []
    conn = connect(database)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []
        raise
    finally:
        conn.close()


# --------------------------------------------------------------------------- the environment

class Env:
    def __init__(self, tmp_path: Path, state: Path | None = None):
        self.tmp = tmp_path
        self.root = tmp_path / "share"
        self.root.mkdir()
        self.state = state or tmp_path / "state"
        self.database = self.state / "psdwatch.sqlite"
        self.reports = self.state / "reports"
        self.config = tmp_path / "psdwatch.toml"
        self.config.write_text(
            "[watch]\nroot = \"share\"\npolling = false\n"
            f"settle_seconds = {SETTLE}\n"
            "[store]\ndatabase = \"state/psdwatch.sqlite\"\n"
            "[reports]\ndir = \"state/reports\"\n"
            "[models]\ndir = \"state/models\"\n"
            "[annotations]\ndir = \"state/annotations\"\nproposals_dir = \"state/proposals\"\n"
            "[segment]\nengine = \"classical\"\n"
            "[psd]\nbootstrap = 200\n"
            "[train]\nenabled = false\n", encoding="utf-8")
        self.settings = settings_from_config(load_config(self.config))
        self.share = Share(self.root)
        self.daemon = Daemon(self.config)
        self.expected: dict[str, dict] = {}   # sha256 -> analysis record of that content
        self.outside_before = outside_state(tmp_path)
        self.checks = 0

    # ---- waiting

    def queue_rows(self) -> list[sqlite3.Row]:
        return query(self.database, "SELECT * FROM queue")

    def image_rows(self) -> dict[str, sqlite3.Row]:
        return {r["path"]: r for r in query(self.database, "SELECT * FROM images")}

    def pending(self) -> list[str]:
        """What is not finished yet: files without a row for their current
        version, queue entries, samples whose reports lag behind the store."""
        rows = self.image_rows()
        out = []
        for rel in self.share.expect:
            try:
                info = (self.root / rel).stat()
            except FileNotFoundError:
                out.append(f"{rel!r}: missing from the share")
                continue
            row = rows.get(stored(rel))
            if row is None or (row["size"], row["mtime_ns"]) != (info.st_size, info.st_mtime_ns):
                out.append(f"{rel!r}: no row for its current version")
        out += [f"queue: {r['path']!r} {r['state']}" for r in self.queue_rows()]
        if out:
            return out
        return self.stale_reports()

    def stale_reports(self) -> list[str]:
        out = []
        latest = {r["sample"]: r["latest"] for r in query(
            self.database, "SELECT sample, MAX(processed_at) AS latest FROM images GROUP BY sample")}
        cached = {r["sample"]: r for r in query(self.database, f"SELECT * FROM {SUMMARY_TABLE}")}
        index = self.reports / "index.html"
        pages = []
        for sample, when in latest.items():
            page = self.reports / report.sample_page_name(sample)
            if not page.is_file():
                out.append(f"report of sample {sample!r} missing")
            elif sample not in cached or cached[sample]["as_of"] != when:
                out.append(f"report of sample {sample!r} older than its newest image")
            else:
                pages.append(page.stat().st_mtime_ns)
        if latest and (not index.is_file() or index.stat().st_mtime_ns < max(pages, default=0)):
            out.append("index.html older than a sample page")
        return out

    def wait_settled(self, timeout: float = 120) -> None:
        self.share.join()
        last: list[str] = []

        def settled():
            nonlocal last
            last = self.pending()
            return not last

        try:
            wait_for(settled, timeout, "every file to be finished and reported", self.daemon)
        except pytest.fail.Exception as failure:
            raise AssertionError(f"{failure}\nstill pending: {last[:20]}") from None

    # ---- expectations

    def record_of(self, rel: str, digest: str) -> dict:
        """What `psdwatch process` measures on this content (cached per content)."""
        if digest not in self.expected:
            real = next(r for r in self.share.expect if stored(r) == rel)
            analysis = analyse_image(self.root / real, self.settings)
            self.expected[digest] = analysis_record(analysis, "expected")
        return self.expected[digest]

    # ---- the checks

    def verify(self, scenario: str, *, timeout: float = 120, running: bool = True) -> None:
        """DESIGN's promises after `scenario`, from the store and the reports alone."""
        self.wait_settled(timeout)
        self.checks += 1
        if running:
            assert self.daemon.alive(), f"{scenario}: the daemon is not running\n{self.daemon.log()}"
        rows = self.image_rows()
        current = {stored(rel): (self.root / rel).read_bytes() for rel in self.share.expect}
        expect = {stored(rel): value for rel, value in self.share.expect.items()}

        # One row per matching file, none for anything else.
        assert set(rows) == set(current), (
            f"{scenario}: rows for files not dropped: {sorted(set(rows) - set(current))}; "
            f"files without a row: {sorted(set(current) - set(rows))}")

        # The right status; duplicates once per content and sample.
        groups: dict[tuple[str, str], list[str]] = {}
        for rel, data in current.items():
            row, (kind, words) = rows[rel], expect[rel]
            digest = sha256(data)
            assert row["sha256"] in (digest, None), f"{scenario}: {rel!r} row holds another content"
            if kind == "bad":
                assert row["status"] == "quarantined", f"{scenario}: {rel!r} is {row['status']}, not quarantined"
                check_reason(rel, row["reason"], words)
                continue
            assert row["status"] in ("done", "duplicate"), (
                f"{scenario}: good file {rel!r} is {row['status']}: {row['reason']}")
            assert row["sha256"] == digest
            groups.setdefault((row["sample"], digest), []).append(rel)
        for (sample, digest), paths in groups.items():
            done = [p for p in paths if rows[p]["status"] == "done"]
            assert len(done) == 1, f"{scenario}: content {digest[:8]} in {sample!r} is 'done' as {done} of {paths}"
            for dup in set(paths) - set(done):
                assert rows[dup]["duplicate_of"] == rows[done[0]]["id"], f"{scenario}: {dup!r}"

        # Particles: only for 'done' rows, once each, equal to `psdwatch process` on the file.
        conn = connect(self.database)
        try:
            per_image = {}
            for p in conn.execute("SELECT image_id, number, ecd_px, ecd_nm, area_px, x, y FROM particles "
                                  "ORDER BY image_id, number"):
                per_image.setdefault(p["image_id"], []).append(tuple(p)[1:])
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", scenario
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == [], scenario
        finally:
            conn.close()
        ids = {row["id"]: rel for rel, row in rows.items()}
        assert set(per_image) <= {rows[rel]["id"] for rel in rows if rows[rel]["status"] == "done"}, (
            f"{scenario}: particles of images that are not 'done': "
            f"{[ids.get(i, i) for i in set(per_image) - {r['id'] for r in rows.values() if r['status'] == 'done'}]}")
        by_sample: dict[str, list[float]] = {}
        for rel, row in rows.items():
            if row["status"] != "done":
                continue
            record = self.record_of(rel, row["sha256"])
            want = [(p["id"], p["ecd_px"], p["ecd_nm"], p["area_px"], p["x"], p["y"]) for p in record["particles"]]
            got = per_image.get(row["id"], [])
            assert len(got) == len(want) == row["n_particles"], (
                f"{scenario}: {rel!r} has {len(got)} particles stored, n_particles {row['n_particles']}, "
                f"`process` measures {len(want)}")
            assert [g[0] for g in got] == [w[0] for w in want], f"{scenario}: {rel!r} particle numbers"
            np.testing.assert_allclose(np.array([g[1:] for g in got], float), np.array([w[1:] for w in want], float),
                                       rtol=1e-6, atol=1e-6, err_msg=f"{scenario}: {rel!r} particles")
            assert row["nm_per_px"] == pytest.approx(record["nm_per_px"]) if record["nm_per_px"] else \
                row["nm_per_px"] is None
            if row["sha256"] in TRUE_SCALE and row["nm_per_px"]:  # a scale read is the true one
                assert row["nm_per_px"] == pytest.approx(TRUE_SCALE[row["sha256"]], rel=0.02), (
                    f"{scenario}: {rel!r} scale {row['nm_per_px']} ({row['scale_source']}), "
                    f"true {TRUE_SCALE[row['sha256']]}")
            if record["nm_per_px"]:
                by_sample.setdefault(row["sample"], []).extend(p["ecd_nm"] for p in record["particles"])

        # Store rules, as the product states them.
        db = store.open_store(self.database)
        try:
            assert store.problems(db) == [], f"{scenario}: {store.problems(db)}"
        finally:
            db.close()

        # Reports: one valid page per sample showing the PSD of its good images, the index, thumbnails.
        samples = {row["sample"] for row in rows.values()}
        for sample in samples:
            want = psd.summarise(by_sample.get(sample, []), "nm", 0)
            page = self.reports / report.sample_page_name(sample)
            parsed = check_html(page, scenario)
            assert sample in parsed.text, f"{scenario}: the page of {sample!r} does not name it"
            shown_n = parsed.ids.get("n")
            if want["n"]:
                assert shown_n is not None and int(shown_n) == want["n"], (
                    f"{scenario}: page of {sample!r} shows n={shown_n}, the good images give {want['n']}")
            cached = query(self.database, f"SELECT n, d50, d10, d90 FROM {SUMMARY_TABLE} WHERE sample = ?",
                           [sample])[0]
            assert cached["n"] == want["n"], f"{scenario}: {sample!r}"
            for key in ("d10", "d50", "d90"):
                if want[key] is not None:
                    assert cached[key] == pytest.approx(want[key], rel=1e-6), f"{scenario}: {sample!r} {key}"
            csv_rows = (self.reports / report.sample_csv_name(sample)).read_text(encoding="utf-8").count("\n") - 1
            n_done = sum(len(per_image.get(r["id"], [])) for r in rows.values() if r["sample"] == sample)
            assert csv_rows == n_done, f"{scenario}: CSV of {sample!r} has {csv_rows} rows for {n_done} particles"
        index = check_html(self.reports / "index.html", scenario)
        for sample in samples:
            assert report.sample_page_name(sample) in index.hrefs, f"{scenario}: index does not link {sample!r}"
        for rel, row in rows.items():
            if row["status"] in ("done", "duplicate"):
                thumb = report.thumbnail_path(self.reports, row["sha256"])
                assert thumb.is_file(), f"{scenario}: no thumbnail for {rel!r}"
        for page in self.reports.glob("*.html"):
            check_html(page, scenario)

        # The share is read-only to psdwatch; nothing is written outside the state folder.
        assert self.share.state() == self.share_before, f"{scenario}: the share changed"
        assert outside_state(self.tmp) == self.outside_before, f"{scenario}: something was written outside state/"

    def snapshot_share(self) -> None:
        """Call after the test's own writes: the share must stay exactly like this."""
        self.share.join()
        self.share_before = self.share.state()


def check_reason(rel: str, reason: str | None, words: tuple[str, ...]) -> None:
    """A person reads this in the report: one line, plain words, the expected cause."""
    assert reason, f"{rel!r} is quarantined without a reason"
    assert "\n" not in reason and len(reason) < 300, f"{rel!r}: reason is not one short line: {reason!r}"
    assert "Traceback" not in reason and not reason.startswith(("error:", "Error")), f"{rel!r}: {reason!r}"
    assert any(w.lower() in reason.lower() for w in words), f"{rel!r}: reason {reason!r} does not say {words}"


class Page(HTMLParser):
    """Collects what the checks need and every sign of injected markup."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.bad: list[str] = []
        self.ids: dict[str, str] = {}
        self.hrefs: set[str] = set()
        self._id: str | None = None
        self._chunks: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag in ("script", "iframe", "object", "embed"):
            self.bad.append(f"<{tag}>")
        self.bad += [f"<{tag} {k}=...>" for k in attrs if k.startswith("on")]
        href = attrs.get("href") or attrs.get("src") or ""
        if href.strip().lower().startswith("javascript:"):
            self.bad.append(href)
        if tag == "a" and attrs.get("href"):
            self.hrefs.add(attrs["href"])
        self._id = attrs.get("id")

    def handle_data(self, data):
        self._chunks.append(data)
        if self._id and data.strip():
            self.ids.setdefault(self._id, data.strip())

    def handle_endtag(self, tag):
        self._id = None

    @property
    def text(self) -> str:
        return "".join(self._chunks)


def check_html(path: Path, scenario: str) -> Page:
    assert path.is_file(), f"{scenario}: {path.name} missing"
    raw = path.read_text(encoding="utf-8")
    assert raw.lstrip().lower().startswith("<!doctype html"), f"{scenario}: {path.name}"
    for needle in ("<script", "<img src=x", "<b>bold"):
        assert needle not in raw.lower(), f"{scenario}: {path.name} contains unescaped {needle!r}"
    page = Page()
    page.feed(raw)
    page.close()
    assert not page.bad, f"{scenario}: {path.name} has injected markup {page.bad}"
    assert "html" in page.tags and "body" in page.tags, f"{scenario}: {path.name} is not an HTML page"
    return page


# --------------------------------------------------------------------------- freezing at a phase

def freeze(daemon: Daemon) -> None:
    os.kill(daemon.pid, signal.SIGSTOP)
    time.sleep(0.05)  # let the stop land (it is asynchronous for other threads of the process)


def thaw(daemon: Daemon) -> None:
    os.kill(daemon.pid, signal.SIGCONT)


def write_lock_held(database: Path) -> bool:
    """Is some connection inside a write transaction? (BEGIN IMMEDIATE would have to wait.)"""
    probe = sqlite3.connect(str(database), timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as error:
        assert "locked" in str(error) or "busy" in str(error), error
        return True
    finally:
        probe.close()


def job_state(conn: sqlite3.Connection, rel: str) -> sqlite3.Row | None:
    return conn.execute("SELECT state, sha256, attempts FROM queue WHERE path = ?", [rel]).fetchone()


def kill_while_analysing(env: Env, rel: str, timeout: float = 90) -> int:
    """SIGKILL while the worker analyses `rel`: its job is 'processing', its hash
    noted, and no write transaction is open. Returns the job's attempts."""
    conn = connect(env.database)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            row = job_state(conn, rel)
            if row is not None and row["state"] == "processing" and row["sha256"]:
                freeze(env.daemon)
                row = job_state(conn, rel)
                if row is not None and row["state"] == "processing" and not write_lock_held(env.database):
                    env.daemon.kill(f"analysis of {rel}")
                    return row["attempts"]
                thaw(env.daemon)
            if not env.daemon.alive():
                pytest.fail(f"the daemon died before the kill\n{env.daemon.log()}")
            time.sleep(0.005)
    finally:
        conn.close()
    pytest.fail(f"never saw {rel!r} being analysed\n{env.daemon.log()}")


def kill_inside_store_transaction(env: Env, rel: str, timeout: float = 90) -> None:
    """SIGKILL inside the transaction that writes the result of `rel`.

    Armed once the job is 'processing' with its hash noted: from then on the
    worker's next write transaction is the one storing the row, the particles
    and the end of the job. The daemon is frozen when the store's write lock is
    seen taken, and killed only if the lock is still held and every dropped
    file is already queued or stored (so the holder is not the watcher queueing
    a file)."""
    conn = connect(env.database)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            row = job_state(conn, rel)
            if row is not None and row["state"] == "processing" and row["sha256"]:
                break
            time.sleep(0.005)
        else:
            pytest.fail(f"never saw {rel!r} being processed\n{env.daemon.log()}")
        while time.monotonic() < deadline:
            if write_lock_held(env.database):
                freeze(env.daemon)
                queued = len(env.queue_rows()) + len(env.image_rows())
                if write_lock_held(env.database) and queued == env.share.dropped:
                    env.daemon.kill(f"store transaction of {rel}")
                    return
                thaw(env.daemon)
            if job_state(conn, rel) is None:
                pytest.fail(f"{rel!r} was stored before the transaction could be caught")
            time.sleep(0.002)
    finally:
        conn.close()
    pytest.fail(f"never caught the store transaction of {rel!r}")


def kill_while_reporting(env: Env, rel: str, timeout: float = 90) -> str:
    """SIGKILL after the row of `rel` is committed but before its reports are
    all written. Returns what had been written (for the record)."""
    conn = connect(env.database)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT sample, sha256, status, processed_at FROM images WHERE path = ?",
                               [rel]).fetchone()
            if row is not None and row["status"] == "done":
                freeze(env.daemon)
                if env.stale_reports():
                    thumb = report.thumbnail_path(env.reports, row["sha256"]).is_file()
                    env.daemon.kill(f"report writing after {rel}")
                    return f"thumbnail {'written' if thumb else 'not yet written'}; {env.stale_reports()}"
                thaw(env.daemon)
                return ""
            time.sleep(0.003)
    finally:
        conn.close()
    pytest.fail(f"never saw {rel!r} done\n{env.daemon.log()}")


def summary(env: Env) -> None:
    """For the record (pytest -rP shows it): what was done to the daemon."""
    errors = [line for line in env.daemon.lines if line.split(" ", 2)[1:2] in (["ERROR"], ["WARNING"], ["CRITICAL"])]
    print(f"files dropped: {env.share.dropped}; daemon starts: {env.daemon.starts}; "
          f"kills: {env.daemon.kills}; checks passed: {env.checks}")
    print("\n".join(errors[:40]))


@pytest.fixture
def env(tmp_path):
    environment = Env(tmp_path)
    yield environment
    environment.daemon.stop()
    summary(environment)


# --------------------------------------------------------------------------- the tests

def test_hostile_files_a_vanishing_share_and_a_locked_store(env):
    """Broken and hostile files and names, slow and replaced files, duplicates;
    then the share disappears and comes back; then someone holds the store."""
    share = env.share
    env.daemon.start()

    # Good frames across samples, written in every way a share sees them.
    share.put("Pt on Al2O3 (batch 1)/frame 001.tif", synth_bytes(1))
    share.put("Pt on Al2O3 (batch 1)/frame 002.tif", synth_bytes(2, 512), chunks=12, pause=0.1, background=True)
    share.put("Pt on Al2O3 (batch 1)/frame 001 copy.tif", synth_bytes(1))          # same content, same sample
    share.put("deep/a/b/c/d/e/f/frame 001.tif", synth_bytes(1))                     # same content, other sample
    share.put("Probe \u00e4\u00f6\u00fc \u2013 \u00b5m \u8a66\u6599/na\u00efve \u00e9.tif", synth_bytes(3))
    share.put(unicodedata.normalize("NFD", "Probe \u00e4\u00f6\u00fc \u2013 \u00b5m \u8a66\u6599/na\u00efve \u00e9.tif"),
              synth_bytes(4))                                                       # NFD twin: another file
    share.put(f"{XSS_SAMPLE}/{XSS_FILE}", synth_bytes(5))
    share.put(f"{XSS_SAMPLE}/it's \"quoted\" & <b>bold</b>.TIF", synth_bytes(6))
    share.put(f"{XSS_FILE[:-4]}/frame.tif", synth_bytes(7))                           # sample "<script>alert(1)<"
    latin1 = os.fsdecode(b"Probe \xe4 latin-1/frame \xe9 001.tif")                   # not UTF-8 (old SMB share)
    share.put(latin1, synth_bytes(17))
    share.put("loose.tif", synth_bytes(8))                                          # root: sample "unsorted"
    share.put("loose copy.tiff", synth_bytes(8))
    share.put("slow/stalled writer.tif", synth_bytes(9, 512), chunks=8, pause=0.1, stall=3 * SETTLE + 1,
              background=True)                                                      # taken half-written, then whole
    share.put("replace/orig.tif", synth_bytes(10))
    share.put("replace/orig (copy).tif", synth_bytes(10))
    share.put("replace/v.tif", synth_bytes(11))
    # Copied the rsync/robocopy way: a temporary name, then renamed into place.
    tmp = env.root / "Pt on Al2O3 (batch 1)" / ".frame 003.tif.part"
    tmp.write_bytes(synth_bytes(12))
    tmp.rename(env.root / "Pt on Al2O3 (batch 1)" / "frame 003.tif")
    share.expect["Pt on Al2O3 (batch 1)/frame 003.tif"] = ("good", ())
    share.dropped += 1

    # Broken files, each with the words its reason must contain.
    share.put("Pt on Al2O3 (batch 1)/empty.tif", b"", bad=("empty",))
    share.put("Pt on Al2O3 (batch 1)/truncated.tif", synth_bytes(13)[:30_000], bad=("truncated",))
    share.put("broken/corrupt header.tif", corrupt_ifd_tiff(), bad=("corrupt",))
    share.put("broken/notes.tif", b"Session notes\nHT 300 kV, spot 6\n" * 40, bad=("text",))
    share.put("broken/manual.pdf.tif", FAKE_PDF, bad=("not a valid", "text", "unsupported"))
    share.put("broken/mosaic 100000x100000.tif", huge_declared_tiff(), bad=("too large",))
    share.put(f"{XSS_SAMPLE}/empty <i>.tif", b"", bad=("empty",))
    # Not matched by the patterns: no row at all.
    share.ignored("Pt on Al2O3 (batch 1)/notes.txt", b"not an image")
    share.ignored("Thumbs.db", b"\0" * 100)
    share.ignored("broken/left over.tif.part", synth_bytes(14)[:5000])

    share.join()
    wait_for(lambda: {"replace/v.tif", "replace/orig.tif", "replace/orig (copy).tif"} <= set(env.image_rows()),
             120, "the first versions of replace/", env.daemon)
    # A file replaced by a new version under the same name, and the original of a duplicate replaced.
    share.put("replace/v.tif", synth_bytes(15))
    share.put("replace/orig.tif", synth_bytes(16))
    env.snapshot_share()
    env.verify("hostile files")
    rows = env.image_rows()
    assert rows["loose.tif"]["sample"] == "unsorted"
    assert rows["deep/a/b/c/d/e/f/frame 001.tif"]["sample"] == "deep"
    assert rows[f"{XSS_SAMPLE}/{XSS_FILE}"]["sample"] == XSS_SAMPLE
    assert rows[f"{XSS_FILE[:-4]}/frame.tif"]["sample"] == "<script>alert(1)<"
    assert rows["Probe \\xe4 latin-1/frame \\xe9 001.tif"]["status"] == "done"
    assert rows["replace/orig (copy).tif"]["status"] == "done"  # promoted when its original changed
    history = query(env.database, "SELECT path FROM images_history")
    assert {"replace/v.tif", "replace/orig.tif"} <= {h["path"] for h in history}

    # The share vanishes (unmounted, renamed) with work queued, and comes back.
    pid = env.daemon.pid
    for i in range(6):
        share.put(f"vanish/frame {i}.tif", synth_bytes(20 + i, 512))
    wait_for(lambda: sum(r["path"].startswith("vanish/") for r in env.queue_rows()) >= 3, 30,
             "vanish/ files to be queued", env.daemon, interval=0.02)
    away = env.tmp / "share-away"
    env.root.rename(away)
    share.put("vanish/arrived while away.tif", synth_bytes(30), root=away)
    wait_for(lambda: any("waiting for it to come back" in line for line in env.daemon.lines), 15,
             "the daemon to notice the share is gone", env.daemon)
    time.sleep(2)
    away.rename(env.root)
    env.snapshot_share()
    env.verify("share vanished and came back")
    assert env.daemon.pid == pid

    # Someone reads the store in one long transaction while images arrive (WAL: no waiting).
    reader = connect(env.database)
    reader.execute("BEGIN")
    before = reader.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    share.put("locks/read 1.tif", synth_bytes(40))
    share.put("locks/read 2.tif", synth_bytes(41))
    wait_for(lambda: {"locks/read 1.tif", "locks/read 2.tif"} <= set(env.image_rows()), 60,
             "images to be stored while a reader holds a snapshot", env.daemon)
    assert reader.execute("SELECT COUNT(*) FROM images").fetchone()[0] == before  # its snapshot held
    time.sleep(1)
    reader.execute("COMMIT")
    reader.close()
    # Someone holds the write lock (BEGIN EXCLUSIVE) for several seconds: the service waits, loses nothing.
    locker = sqlite3.connect(str(env.database), timeout=10, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    share.put("locks/exclusive 1.tif", synth_bytes(42))
    share.put("locks/exclusive 2.tif", b"", bad=("empty",))
    time.sleep(6)
    assert "locks/exclusive 1.tif" not in env.image_rows()
    assert env.daemon.alive()
    locker.execute("COMMIT")
    locker.close()
    env.snapshot_share()
    env.verify("long read, then exclusive lock")
    assert env.daemon.stop() == 0, env.daemon.log()
    assert "Traceback" not in "\n".join(env.daemon.lines), env.daemon.log(200)


def test_kill_9_in_each_phase_and_a_file_that_keeps_killing_the_worker(env):
    """kill -9 while analysing, inside the store transaction, while writing the
    reports; files arrive while the service is down; a file whose processing
    kills the worker every time (as the kernel's OOM killer would: simulated by
    SIGKILL each time the worker takes it) ends quarantined after 3 crashes."""
    share = env.share
    heavy = "kill/heavy frame.tif"
    # 2048²: its analysis must outlast the watcher queueing the files dropped while
    # the daemon was down, or the store-transaction kill below cannot tell the
    # worker's write lock from the watcher's (at 1024² an idle machine missed it).
    share.put(heavy, synth_bytes(50, 2048))
    env.daemon.start()
    wait_for(lambda: any(r["path"] == heavy for r in env.queue_rows()), 30, "the first file queued",
             env.daemon, interval=0.02)
    for i in range(3):
        share.put(f"kill/frame {i}.tif", synth_bytes(51 + i))
    share.put("kill/frame 0 copy.tif", synth_bytes(51))

    # 1: during the analysis.
    assert kill_while_analysing(env, heavy) == 1
    share.put("down 1/frame.tif", synth_bytes(60))
    share.put("down 1/empty.tif", b"", bad=("empty",))
    share.put("kill/frame 1 again.tif", synth_bytes(52))
    env.daemon.start()

    # 2: inside the transaction that stores the result.
    kill_inside_store_transaction(env, heavy)
    assert heavy not in env.image_rows(), "a transaction killed half-way left its row behind"
    share.put("down 2/frame.tif", synth_bytes(61))
    share.put("down 2/truncated.tif", synth_bytes(62)[:9000], bad=("truncated",))
    env.daemon.start()

    # 3: during the analysis again: the third time the worker dies on this file.
    assert kill_while_analysing(env, heavy) == 3
    share.put("down 3/frame.tif", synth_bytes(63))
    env.daemon.start()
    share.expect[heavy] = ("bad", ("crashed 3 times",))
    env.snapshot_share()
    env.verify("kill -9 while analysing and while storing")
    assert query(env.database, "SELECT COUNT(*) FROM particles p JOIN images i ON i.id = p.image_id "
                               "WHERE i.path = ?", [heavy])[0][0] == 0

    # 4: after the row is stored, while the reports are written (a sample of its own,
    # so no later image of that sample rewrites its page).
    phase = ""
    for attempt in range(3):
        rel = f"report kill {attempt}/frame.tif"
        share.put(rel, synth_bytes(70 + attempt, 512))
        phase = kill_while_reporting(env, rel)
        if phase:
            break
        env.wait_settled()
    assert phase, "never caught the daemon between storing an image and writing its reports"
    print(f"killed while writing reports: {phase}")
    share.put("down 4/frame.tif", synth_bytes(75))
    env.daemon.start()
    env.snapshot_share()
    env.verify(f"kill -9 while writing reports ({phase})")
    assert len(env.daemon.kills) == 4
    assert env.daemon.stop() == 0, env.daemon.log()


def test_files_that_break_the_analysis_are_quarantined_and_the_service_keeps_running(env):
    """Files the analysis was never tried on: one whose analysis raises an
    unexpected error (not UnreadableImage) is quarantined with its reason; the
    service, and the files queued behind it, carry on. Frames smaller than the
    engine's background window (a line scan, a small high-magnification crop)
    are measured, not crashed on."""
    share = env.share
    env.daemon.start()
    pid = env.daemon.pid
    rng = np.random.default_rng(0)
    share.put("poison/float overflow.tif", tiff_bytes(rng.random((256, 256)).astype(np.float32) * 3e38),
              bad=("analysis failed",))
    share.put("poison/line scan 1x600.tif", tiff_bytes(rng.integers(0, 255, (1, 600)).astype(np.uint8)))
    crop = io.BytesIO()
    tifffile.imwrite(crop, rng.integers(0, 255, (130, 130)).astype(np.uint8), imagej=True,
                     resolution=(1 / 0.005, 1 / 0.005), metadata={"unit": "nm"})
    share.put("poison/crop 130 px at 0.005 nm per px.tif", crop.getvalue())
    share.put("poison/after the poison.tif", synth_bytes(80))
    env.snapshot_share()
    env.verify("files that make the analysis raise")
    rows = env.image_rows()
    assert rows["poison/crop 130 px at 0.005 nm per px.tif"]["scale_source"] == "metadata"
    assert env.daemon.pid == pid and env.daemon.starts == 1
    assert env.daemon.stop() == 0, env.daemon.log()


def _mount_tmpfs(folder: Path, size: str) -> str | None:
    """Mount a small tmpfs; None when done, else why not."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return "no mount command"
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    return None if result.returncode == 0 else f"cannot mount a tmpfs here: {result.stderr.strip()}"


def fill(path: Path) -> int:
    """Write zeros to `path` until the file system has not one block left; returns bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    written = 0
    try:
        for block in (1 << 16, 512, 1):
            while True:
                try:
                    written += os.write(fd, b"\0" * block)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    break
    finally:
        os.close(fd)
    return written


def test_full_disks_lose_nothing(tmp_path):
    """The reports folder, then the store, on small file systems that fill up
    while images arrive and get space again: the service waits and loses nothing."""
    state, reports = tmp_path / "state", tmp_path / "state" / "reports"
    why = _mount_tmpfs(state, "6m")
    if why:
        pytest.skip(why)
    env = None
    try:
        if why := _mount_tmpfs(reports, "3m"):
            pytest.skip(why)
        env = Env(tmp_path)
        share = env.share
        env.daemon.start()
        share.put("disk/frame 0.tif", synth_bytes(90, 256))
        share.put("disk/frame 1.tif", synth_bytes(91, 256))
        env.snapshot_share()
        env.verify("before the disks fill")

        # The reports' file system is full: the store has room, thumbnails and pages do not.
        ballast = reports / "ballast"
        fill(ballast)
        share.put("disk/reports full 0.tif", synth_bytes(92, 256))
        share.put("reports full/frame.tif", synth_bytes(93, 256))
        share.put("reports full/empty.tif", b"", bad=("empty",))
        time.sleep(8)
        assert env.daemon.alive(), f"the daemon died on a full reports disk\n{env.daemon.log()}"
        ballast.unlink()
        env.snapshot_share()
        env.verify("reports disk full, then space again")

        # The store's file system is full while files wait in the queue.
        ballast = state / "ballast"
        for i in range(5):
            share.put(f"disk/full {i}.tif", synth_bytes(94 + i, 256))
        wait_for(lambda: sum(r["path"].startswith("disk/full") for r in env.queue_rows()) >= 4, 30,
                 "files to be queued", env.daemon, interval=0.02)
        fill(ballast)
        share.put("disk full 2/frame.tif", synth_bytes(99, 256))   # cannot even be queued yet
        share.put("disk full 2/empty.tif", b"", bad=("empty",))
        time.sleep(8)  # the service meets ENOSPC in the store
        assert env.daemon.alive(), f"the daemon died on a full state disk\n{env.daemon.log()}"
        # Said, not shouted: one line a minute for the files waiting to be queued,
        # no traceback per file per second to fill the log's own disk.
        whole_log = env.daemon.log(last=10**6)
        assert whole_log.count("cannot queue new files yet") <= 2, env.daemon.log()
        assert "could not queue" not in whole_log, env.daemon.log()
        ballast.unlink()
        env.snapshot_share()
        env.verify("state disk full, then space again")
        assert env.daemon.stop() == 0, env.daemon.log()
    finally:
        if env is not None:
            env.daemon.stop()
            summary(env)
        for folder in (reports, state):
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
