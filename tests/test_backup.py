"""``scrapy backup`` and ``scrapy restore`` on real SQLite files, during and after real crawls.

The main test starts a slow crawl of the demo shop in a subprocess (small
store batches, so it commits often), takes a backup while it writes, and
checks that the backup opens, passes SQLite's integrity check and holds every
product committed before the backup started; a restore over the database
the crawl holds is refused meanwhile, and the crawl ends unharmed.  Then the
backup is restored (over a changed database) and ``scrapy export`` gives the
same rows as from the backup itself.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from demoshop.process import ShopProcess
from storage.backup import BackupError, backup_sqlite, check_backup, restore_sqlite
from tests.conftest import ROOT, catalog_command, scrapy_command


def command(name: str, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = scrapy_command(name, "-s", f"DATABASE_URL=sqlite:///{db}", *args)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def keys(db: Path) -> set[str]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return {k for (k,) in conn.execute("SELECT key FROM products")}
    finally:
        conn.close()


def one_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr


def test_backup_during_a_crawl_then_restore(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    backup = tmp_path / "backup.db"
    with ShopProcess(products=300, seed=11) as shop:
        cmd = catalog_command(
            shop.list_url, "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"STATS_DUMP_DIR={tmp_path / 'stats'}",
            "-s", "CONCURRENT_REQUESTS=2", "-s", "DOWNLOAD_DELAY=0.02",
            "-s", "STORE_BATCH_SIZE=5", "-s", "STORE_FLUSH_INTERVAL=0.2",
        )  # fmt: skip
        crawl = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            before: set[str] = set()
            while len(before) < 30:
                assert crawl.poll() is None, crawl.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "the crawl saved too little"
                time.sleep(0.2)
                if db.exists():
                    try:
                        before = keys(db)
                    except sqlite3.OperationalError:
                        before = set()  # the crawl is still creating its tables
            taken = command("backup", db, "-o", str(backup))
            during = crawl.poll() is None
            refused = command("restore", db, "-i", str(backup), "--force")
            still = crawl.poll() is None
            _, stderr = crawl.communicate(timeout=180)
        finally:
            if crawl.poll() is None:
                crawl.kill()
    assert taken.returncode == 0, taken.stderr
    assert during and still, "the crawl ended before the backup: make it slower"
    assert crawl.returncode == 0, stderr[-3000:]
    # the backup opens, is intact, and holds every product committed before it started
    conn = sqlite3.connect(backup)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
    conn.close()
    in_backup = keys(backup)
    assert before <= in_backup
    final = keys(db)
    assert in_backup < final, "the crawl wrote after the backup"
    assert f"{len(in_backup)} products" in taken.stdout
    assert not Path(f"{backup}-wal").exists()
    # a restore while the crawl held the database was refused, the database untouched
    one_error(refused, "a crawl holds the database")

    # restore over a changed database: export gives the rows of the backup
    from_backup = command("export", backup, "-o", str(tmp_path / "backup.jsonl"))
    assert from_backup.returncode == 0, from_backup.stderr
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM products WHERE key IN (SELECT key FROM products LIMIT 10)")
    conn.execute("UPDATE products SET data = '{}'")
    conn.commit()
    conn.close()
    one_error(command("restore", db, "-i", str(backup)), "add --force")
    restored = command("restore", db, "-i", str(backup), "--force")
    assert restored.returncode == 0, restored.stderr
    assert f"{len(in_backup)} products" in restored.stdout
    after = command("export", db, "-o", str(tmp_path / "restored.jsonl"))
    assert after.returncode == 0, after.stderr
    exported = (tmp_path / "restored.jsonl").read_text(encoding="utf-8")
    assert exported == (tmp_path / "backup.jsonl").read_text(encoding="utf-8")
    assert exported.count("\n") == len(in_backup)
    assert keys(db) == in_backup


def test_restore_into_a_new_database_and_errors(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, site TEXT, key TEXT)")
    conn.executemany("INSERT INTO products (site, key) VALUES ('s', ?)", [(f"k{i}",) for i in range(12)])
    conn.commit()
    conn.close()
    backup = tmp_path / "b.db"
    assert backup_sqlite(source, backup).products == 12
    fresh = tmp_path / "new" / "catalog.db"
    result = command("restore", fresh, "-i", str(backup))
    assert result.returncode == 0, result.stderr
    assert len(keys(fresh)) == 12

    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello\n" * 100)
    one_error(command("restore", fresh, "-i", str(not_db), "--force"), "is not an SQLite database")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    one_error(command("restore", fresh, "-i", str(other), "--force"), "no products table")
    one_error(command("restore", fresh, "-i", str(tmp_path / "missing.db")), "no backup at")
    one_error(command("restore", fresh), "needs -i FILE")
    one_error(command("backup", fresh, "-o", str(backup)), "add --force")
    one_error(command("backup", tmp_path / "missing.db", "-o", str(tmp_path / "x.db")), "no database at")
    one_error(command("backup", fresh, "-o", str(tmp_path / "nodir" / "x.db")), "no directory")
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "x.db").exists()
    pg = "postgresql+psycopg://u:secret@db.invalid/catalog"
    for name, args, hint in (("backup", ("-o", "x.db"), "pg_dump"), ("restore", ("-i", str(backup)), "pg_restore")):
        cmd = scrapy_command(name, "-s", f"DATABASE_URL={pg}", *args)
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        one_error(result, hint)
        assert "secret" not in result.stderr
    # --force replaces a backup
    assert command("backup", fresh, "-o", str(backup), "--force").returncode == 0


def test_backup_and_restore_refuse_the_database_itself(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, site TEXT, key TEXT)")
    conn.close()
    with pytest.raises(BackupError, match="is the database itself"):
        backup_sqlite(db, db)
    with pytest.raises(BackupError, match="is the database itself"):
        restore_sqlite(db, db)
    assert check_backup(db) == 0
    assert os.path.getsize(db) > 0
