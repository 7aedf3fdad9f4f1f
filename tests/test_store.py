"""The store on a real SQLite file: queue, outcomes, the one-row-per-file and
one-'done'-per-content rules, crash recovery with real killed processes, and
readers in other processes that must never block the writer."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlite_utils

from psdwatch.daemon import store

MAIN = Path(__file__).resolve().parent.parent


def record(n: int, scale: float | None = 0.5, model: str = "classical") -> dict:
    """An analysis_record-shaped result with n particles."""
    particles = [{"id": i + 1, "x": 10.0 + i, "y": 20.0 + i, "area_px": 50.0 + i,
                  "perimeter_px": 25.0, "ecd_px": 8.0 + i / 10,
                  "area_nm2": (50.0 + i) * scale ** 2 if scale else None,
                  "perimeter_nm": 25.0 * scale if scale else None,
                  "ecd_nm": (8.0 + i / 10) * scale if scale else None,
                  "circularity": 0.9, "solidity": 0.95, "mean_intensity": 120.0}
                 for i in range(n)]
    return {"image": "/share/x.tif", "sample": "s", "nm_per_px": scale,
            "scale_source": "metadata" if scale else None, "scale_text": "0.5 nm/px" if scale else None,
            "model": model, "engine": "classical", "model_sha256": None, "particles": particles,
            "psd": {"n": n, "d50": 4.0}, "flags": [] if scale else ["scale_unknown"],
            "scale": {}, "timings_s": {"read_s": 0.1, "segment_s": 0.4}}


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    db = store.open_store(tmp_path / "state" / "psdwatch.sqlite")
    yield db
    assert store.problems(db) == []
    db.close()


def claim(db, relpath: str, sample: str = "s1", size: int = 100, mtime_ns: int = 1) -> store.Job:
    store.enqueue(db, relpath, sample, size, mtime_ns)
    job = store.claim_next(db)
    assert job is not None and job.path == relpath
    return job


def images(db) -> list[dict]:
    return list(db.query("SELECT * FROM images ORDER BY id"))


# --------------------------------------------------------------------------- schema

def test_schema_is_designs_and_wal(db):
    assert db.journal_mode == "wal"
    cols = set(db["images"].columns_dict)
    assert {"id", "path", "sample", "sha256", "status", "reason", "nm_per_px", "scale_source",
            "model", "processed_at", "engine", "model_sha256", "scale_text", "software_version",
            "seconds", "flags"} <= cols
    assert {"id", "image_id", "x", "y", "area_px", "area_nm2", "perimeter_nm", "ecd_nm"} \
        <= set(db["particles"].columns_dict)
    fks = {(fk.column, fk.other_table) for fk in db["particles"].foreign_keys}
    assert ("image_id", "images") in fks
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_open_twice_keeps_data(tmp_path):
    path = tmp_path / "s.sqlite"
    first = store.open_store(path)
    store.finish_done(first, claim(first, "a/1.tif"), "h1", record(3))
    first.close()
    again = store.open_store(path)
    assert again["particles"].count == 3


# --------------------------------------------------------------------------- queue

def test_enqueue_is_idempotent_and_follows_new_versions(db):
    assert store.enqueue(db, "a/1.tif", "a", 100, 1)
    assert not store.enqueue(db, "a/1.tif", "a", 100, 1)
    assert db["queue"].count == 1
    assert store.enqueue(db, "a/1.tif", "a", 200, 2)       # grew again: new version
    assert list(db.query("SELECT size, mtime_ns FROM queue")) == [{"size": 200, "mtime_ns": 2}]
    job = store.claim_next(db)
    store.finish_done(db, job, "h1", record(2))
    assert not store.enqueue(db, "a/1.tif", "a", 200, 2)   # that version is done
    assert store.enqueue(db, "a/1.tif", "a", 200, 2, force=True)


def test_claim_is_fifo_and_counts_attempts(db):
    for name in ("a/1.tif", "a/2.tif", "b/3.tif"):
        store.enqueue(db, name, name[0], 10, 1)
    jobs = [store.claim_next(db) for _ in range(3)]
    assert [j.path for j in jobs] == ["a/1.tif", "a/2.tif", "b/3.tif"]
    assert all(j.attempts == 1 for j in jobs)
    assert store.claim_next(db) is None
    assert store.counts(db)["processing"] == 3


def test_file_changed_while_processing_is_queued_again(db):
    job = claim(db, "a/1.tif", "a", 100, 1)
    assert store.enqueue(db, "a/1.tif", "a", 150, 2)       # written to during analysis
    store.finish_done(db, job, "old", record(2))
    again = store.claim_next(db)
    assert again is not None and (again.size, again.mtime_ns, again.attempts) == (150, 2, 1)
    store.finish_done(db, again, "new", record(4))
    assert [(r["sha256"], r["n_particles"]) for r in images(db)] == [("new", 4)]


def test_release_does_not_count_the_attempt(db):
    job = claim(db, "a/1.tif")
    store.release(db, job)
    assert store.claim_next(db).attempts == 1


# --------------------------------------------------------------------------- outcomes

def test_finish_done_writes_row_particles_and_provenance(db):
    job = claim(db, "s1/img.tif", "s1", 1234, 99)
    finished = store.finish_done(db, job, "abc", record(5), seconds=1.5)
    assert finished.status == "done"
    row = images(db)[0]
    assert row["path"] == "s1/img.tif" and row["sample"] == "s1" and row["sha256"] == "abc"
    assert row["status"] == "done" and row["reason"] is None
    assert row["nm_per_px"] == 0.5 and row["scale_source"] == "metadata"
    assert row["scale_text"] == "0.5 nm/px" and row["engine"] == "classical"
    assert row["model"] == "classical" and row["software_version"]
    assert row["seconds"] == 1.5 and json.loads(row["flags"]) == []
    assert (row["size"], row["mtime_ns"], row["attempts"], row["n_particles"]) == (1234, 99, 1, 5)
    assert row["processed_at"].endswith("+00:00")
    parts = store.sample_particles(db, "s1")
    assert [p["number"] for p in parts] == [1, 2, 3, 4, 5]
    assert parts[0]["image_path"] == "s1/img.tif" and parts[0]["ecd_nm"] == pytest.approx(4.0)
    assert db["queue"].count == 0


def test_finish_done_is_one_transaction(db):
    """A particle that cannot be written leaves nothing behind: no row, no
    particles, and the job still waits in the queue."""
    job = claim(db, "s1/img.tif")
    bad = record(3)
    bad["particles"][2]["x"] = object()  # not storable
    with pytest.raises(Exception):
        store.finish_done(db, job, "abc", bad)
    assert images(db) == [] and db["particles"].count == 0
    assert list(db.query("SELECT state FROM queue")) == [{"state": "processing"}]
    assert not db.conn.in_transaction


def test_scale_unknown_keeps_pixels_only(db):
    store.finish_done(db, claim(db, "s1/a.tif"), "h", record(2, scale=None))
    row = images(db)[0]
    assert row["nm_per_px"] is None and json.loads(row["flags"]) == ["scale_unknown"]
    assert all(p["ecd_nm"] is None and p["ecd_px"] for p in store.sample_particles(db, "s1"))


def test_quarantine_keeps_reason(db):
    store.finish_quarantined(db, claim(db, "s1/bad.tif"), "not an image: bad TIFF header", "h0")
    row = images(db)[0]
    assert (row["status"], row["reason"], row["sha256"]) == \
        ("quarantined", "not an image: bad TIFF header", "h0")
    assert db["particles"].count == 0 and db["queue"].count == 0


def test_same_content_same_sample_is_duplicate_other_sample_is_done(db):
    first = store.finish_done(db, claim(db, "s1/a.tif", "s1"), "same", record(3))
    assert store.is_duplicate(db, "s1", "same") == first.image_id
    assert store.is_duplicate(db, "s1", "same", exclude_path="s1/a.tif") is None
    assert store.is_duplicate(db, "s2", "same") is None
    dup = store.finish_duplicate(db, claim(db, "s1/copy of a.tif", "s1"), "same", first.image_id)
    other = store.finish_done(db, claim(db, "s2/a.tif", "s2"), "same", record(3))
    assert dup.status == "duplicate" and other.status == "done"
    rows = {r["path"]: r for r in images(db)}
    assert rows["s1/copy of a.tif"]["duplicate_of"] == first.image_id
    assert len(store.sample_particles(db, "s1")) == 3 and len(store.sample_particles(db, "s2")) == 3


def test_done_twice_in_a_sample_becomes_duplicate(db):
    """The worker checked is_duplicate before analysing, yet the same content got
    finished meanwhile: finish_done itself keeps one 'done' per content."""
    a, b = claim(db, "s1/a.tif"), claim(db, "s1/b.tif")
    store.finish_done(db, a, "same", record(3))
    assert store.finish_done(db, b, "same", record(3)).status == "duplicate"
    assert db["particles"].count == 3
    with pytest.raises(sqlite3.IntegrityError):  # and the database refuses it too
        db.execute("UPDATE images SET status = 'done' WHERE path = 's1/b.tif'")


def test_finish_duplicate_whose_target_was_replaced_goes_back_to_queue(db):
    first = store.finish_done(db, claim(db, "s1/a.tif"), "h1", record(2))
    job = claim(db, "s1/b.tif")
    store.finish_done(db, claim(db, "s1/a.tif", size=200, mtime_ns=2), "h2", record(1))
    assert store.finish_duplicate(db, job, "h1", first.image_id) is None
    assert list(db.query("SELECT path, state FROM queue")) == [{"path": "s1/b.tif", "state": "queued"}]


# --------------------------------------------------------------------------- replaced files

def test_replaced_file_rewrites_its_one_row_and_keeps_history(db):
    first = store.finish_done(db, claim(db, "s1/a.tif", size=100, mtime_ns=1), "v1", record(4))
    second = store.finish_done(db, claim(db, "s1/a.tif", size=300, mtime_ns=5), "v2", record(2))
    assert second.image_id == first.image_id
    rows = images(db)
    assert len(rows) == 1 and rows[0]["sha256"] == "v2" and rows[0]["n_particles"] == 2
    assert db["particles"].count == 2
    hist = list(db.query("SELECT image_id, sha256, n_particles, replaced_because FROM images_history"))
    assert hist == [{"image_id": first.image_id, "sha256": "v1", "n_particles": 4,
                     "replaced_because": "content changed"}]


def test_replaced_by_a_file_that_fails_is_quarantined_in_the_same_row(db):
    store.finish_done(db, claim(db, "s1/a.tif"), "v1", record(4))
    store.finish_quarantined(db, claim(db, "s1/a.tif", size=7, mtime_ns=9), "truncated TIFF", "v2")
    rows = images(db)
    assert [(r["status"], r["n_particles"], r["nm_per_px"]) for r in rows] == [("quarantined", None, None)]
    assert db["particles"].count == 0


def test_replacing_a_done_file_promotes_its_duplicate(db):
    """a.tif is done, b.tif and c.tif are copies; then a.tif gets new content.
    The old content still lives in b and c: b inherits the particles, c points at b."""
    a = store.finish_done(db, claim(db, "s1/a.tif"), "old", record(3))
    b = store.finish_duplicate(db, claim(db, "s1/b.tif"), "old", a.image_id)
    c = store.finish_duplicate(db, claim(db, "s1/c.tif"), "old", a.image_id)
    store.finish_done(db, claim(db, "s1/a.tif", size=500, mtime_ns=7), "new", record(5))
    rows = {r["path"]: r for r in images(db)}
    assert rows["s1/a.tif"]["sha256"] == "new" and rows["s1/a.tif"]["n_particles"] == 5
    assert rows["s1/b.tif"]["status"] == "done" and rows["s1/b.tif"]["n_particles"] == 3
    assert rows["s1/b.tif"]["reason"].startswith("promoted")
    assert rows["s1/c.tif"]["duplicate_of"] == b.image_id
    assert len(store.sample_particles(db, "s1")) == 8
    assert c.status == "duplicate"


def test_reprocessing_the_same_content_keeps_duplicates_pointing(db):
    a = store.finish_done(db, claim(db, "s1/a.tif"), "same", record(3))
    store.finish_duplicate(db, claim(db, "s1/b.tif"), "same", a.image_id)
    store.enqueue(db, "s1/a.tif", "s1", 100, 1, force=True)
    store.finish_done(db, store.claim_next(db), "same", record(4, model="unet-2"))
    rows = {r["path"]: r for r in images(db)}
    assert rows["s1/a.tif"]["model"] == "unet-2" and rows["s1/b.tif"]["duplicate_of"] == a.image_id
    assert db["particles"].count == 4
    assert list(db.query("SELECT replaced_because FROM images_history")) == [{"replaced_because": "reprocessed"}]


def test_touched_file_with_same_content_changes_nothing_else(db):
    store.finish_done(db, claim(db, "s1/a.tif", size=100, mtime_ns=1), "h", record(3))
    job = claim(db, "s1/a.tif", size=100, mtime_ns=2)   # e.g. mtime changed by a re-copy
    assert store.image_of_path(db, job.path)["sha256"] == "h"
    store.finish_unchanged(db, job)
    assert store.is_known(db, "s1/a.tif", 100, 2) and db["particles"].count == 3
    assert db["queue"].count == 0 and db["images_history"].count == 0


# --------------------------------------------------------------------------- crashes

CLAIM_AND_DIE = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{main!r}]
    from psdwatch.daemon import store
    db = store.open_store(sys.argv[1])
    job = store.claim_next(db)
    store.note_sha256(db, job, "deadly")
    os.kill(os.getpid(), signal.SIGKILL)   # the worker dies in the middle of the image
""").format(main=str(MAIN))


def claim_and_die(path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", CLAIM_AND_DIE, str(path)], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()


def test_a_file_that_kills_the_worker_three_times_is_quarantined(tmp_path):
    path = tmp_path / "s.sqlite"
    db = store.open_store(path)
    store.enqueue(db, "s1/poison.tif", "s1", 10, 1)
    store.enqueue(db, "s1/fine.tif", "s1", 10, 1)
    for attempt in (1, 2, 3):
        claim_and_die(path)
        result = store.recover_after_crash(db, max_attempts=3)
        assert result == ({"requeued": 1, "quarantined": 0} if attempt < 3
                          else {"requeued": 0, "quarantined": 1})
    row = images(db)[0]
    assert (row["path"], row["status"], row["sha256"]) == ("s1/poison.tif", "quarantined", "deadly")
    assert row["reason"] == "crashed 3 times while processing"
    assert [j["path"] for j in db.query("SELECT path FROM queue")] == ["s1/fine.tif"]
    assert store.problems(db) == []


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_doubles_nothing(tmp_path):
    """A worker loop killed with SIGKILL at random moments and restarted, until
    the queue is empty: every image ends with one row and all its particles."""
    import random
    path = tmp_path / "s.sqlite"
    db = store.open_store(path)
    for i in range(30):
        store.enqueue(db, f"s1/{i}.tif", "s1", 10, 1)
    script = textwrap.dedent("""
        import sys
        sys.path[:0] = [{main!r}]
        from psdwatch.daemon import store
        particles = [{{"id": i + 1, "x": 1.0, "y": 2.0, "area_px": 50.0, "ecd_nm": 4.0}}
                     for i in range(300)]
        db = store.open_store(sys.argv[1])
        print("ready", flush=True)
        while (job := store.claim_next(db)) is not None:
            store.finish_done(db, job, job.path, {{"particles": particles, "model": "classical"}})
    """).format(main=str(MAIN))
    rng, kills = random.Random(7), 0
    while db["queue"].count:
        store.recover_after_crash(db, max_attempts=100)
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        try:
            proc.wait(timeout=rng.uniform(0.005, 0.08))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            kills += 1
        assert store.problems(db) == []
        assert db["particles"].count == 300 * db["images"].count
        assert db["queue"].count + db["images"].count == 30
    assert kills >= 2 and db["images"].count == 30
    assert db.execute("SELECT COUNT(DISTINCT path) FROM images").fetchone()[0] == 30


# --------------------------------------------------------------------------- readers

HOLD_READ = textwrap.dedent("""
    import sys, time, sqlite_utils
    db = sqlite_utils.Database(sys.argv[1])
    db.conn.execute("BEGIN")
    print(db.execute("SELECT COUNT(*) FROM particles").fetchone()[0], flush=True)
    sys.stdin.readline()            # hold the read transaction until told
    print(db.execute("SELECT COUNT(*) FROM particles").fetchone()[0], flush=True)
    db.conn.execute("COMMIT")
    print(db.execute("SELECT COUNT(*) FROM particles").fetchone()[0], flush=True)
""")


def test_a_reader_in_another_process_never_blocks_the_writer(tmp_path):
    """A person's sqlite-utils session holding a read transaction: the service
    still commits at once (busy_timeout is short here to prove no waiting), and
    the reader keeps its consistent snapshot until it ends its transaction."""
    path = tmp_path / "s.sqlite"
    db = store.open_store(path, busy_timeout=0.2)
    store.finish_done(db, claim(db, "s1/a.tif"), "h1", record(10))
    reader = subprocess.Popen([sys.executable, "-c", HOLD_READ, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "10"
    t = time.perf_counter()
    for i in range(5):
        store.finish_done(db, claim(db, f"s1/{i}.tif"), f"x{i}", record(1000))
    for i in range(5):
        store.enqueue(db, f"s2/{i}.tif", "s2", 1, 1)
    elapsed = time.perf_counter() - t
    reader.stdin.write("\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "10"      # its snapshot
    assert reader.stdout.readline().strip() == "5010"    # after its transaction
    reader.wait(timeout=10)
    assert elapsed < 5
    assert db["particles"].count == 5010


def test_a_second_writer_waits_instead_of_failing(tmp_path):
    """Two connections writing (watcher thread enqueuing, worker finishing):
    BEGIN IMMEDIATE + busy_timeout serialise them, nobody sees SQLITE_BUSY."""
    path = tmp_path / "s.sqlite"
    a, b = store.open_store(path), store.open_store(path)
    job = claim(a, "s1/x.tif")
    with store.write_transaction(a):
        a.execute("UPDATE queue SET claimed_at = 'now' WHERE id = ?", [job.id])
        writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import sys
            sys.path[:0] = [{str(MAIN)!r}]
            from psdwatch.daemon import store
            db = store.open_store({str(path)!r}, busy_timeout=10)
            print(store.enqueue(db, "s1/y.tif", "s1", 1, 1))
        """)], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)                              # the other writer is now waiting
        assert writer.poll() is None
    assert writer.communicate(timeout=20)[0].strip() == "True"
    assert b["queue"].count == 2


# --------------------------------------------------------------------------- reading

def test_counts_for_status(db):
    store.finish_done(db, claim(db, "s1/a.tif", "s1"), "h1", record(2, model="unet-7"))
    a = store.image_of_path(db, "s1/a.tif")["id"]
    store.finish_duplicate(db, claim(db, "s1/b.tif", "s1"), "h1", a)
    store.finish_quarantined(db, claim(db, "s2/c.tif", "s2"), "unreadable")
    store.enqueue(db, "s3/d.tif", "s3", 1, 1)
    counts = store.counts(db)
    assert counts == {"queued": 1, "processing": 0, "done": 1, "quarantined": 1, "duplicate": 1,
                      "skipped": 0, "samples": 2, "model": "unet-7", "unsure": 0, "mixed_model_samples": 0,
                      "mixed_models": {}}
    assert store.counts(db, live_model="unet-8")["model"] == "unet-8"
    assert [r["path"] for r in store.sample_images(db, "s1")] == ["s1/a.tif", "s1/b.tif"]


def test_real_measured_particles_fit_the_table(db, tmp_path):
    """Particles measured by the real pipeline.measure on a real human mask
    (../shared/data) go into the table column for column."""
    import cv2
    from psdwatch.pipeline.measure import particles as measure
    data = MAIN.parent / "shared" / "data" / "pt-alumina-haadf"
    image = cv2.imread(str(data / "ptal_014.tif"), cv2.IMREAD_UNCHANGED)
    mask = cv2.imread(str(data / "ptal_014_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
    particles = measure.measure_particles(measure.label_particles(measure.clean_mask(mask, 6)),
                                          image, 0.3)
    assert len(particles) > 3
    rec = record(0) | {"particles": particles}
    store.finish_done(db, claim(db, "pt/ptal_000.tif", "pt"), "real", rec)
    stored = store.sample_particles(db, "pt")
    assert len(stored) == len(particles)
    for mine, theirs in zip(stored, particles):
        assert mine["number"] == theirs["id"]
        for key, value in theirs.items():
            if key != "id":
                assert mine[key] == pytest.approx(value), key


def test_full_pipeline_record_is_stored(db):
    """The real analyse_image -> analysis_record -> finish_done path."""
    from psdwatch.pipeline.analyse import Settings, analyse_image, analysis_record
    path = MAIN.parent / "shared" / "data" / "pt-alumina-haadf" / "ptal_014.tif"
    analysis = analyse_image(path, Settings(engine="classical", bootstrap=20))
    rec = analysis_record(analysis, "pt")
    store.finish_done(db, claim(db, "pt/ptal_000.tif", "pt"), "real", rec)
    assert len(rec["particles"]) > 0
    assert len(store.sample_particles(db, "pt")) == len(rec["particles"])


def test_the_invariant_check_knows_every_status(tmp_path):
    """store.problems, which the service tests run after each scenario, accepts a valid
    'skipped' row (a bright-field frame) and names rows no rule allows."""
    db = store.open_store(tmp_path / "s.db")
    db.execute("INSERT INTO images (path, sample, status, reason) VALUES ('bf.tif', 's', 'skipped', "
               "'bright-field image; psdwatch measures HAADF')")
    assert store.problems(db) == []
    db.execute("INSERT INTO images (path, sample, status) VALUES ('q.tif', 's', 'quarantined')")
    db.execute("INSERT INTO images (path, sample, status, reason) VALUES ('x.tif', 's', 'lost', 'why')")
    found = store.problems(db)
    assert "1 x status outside done/quarantined/duplicate/skipped" in found
    assert "1 x 'skipped' or 'quarantined' image without its reason" in found
