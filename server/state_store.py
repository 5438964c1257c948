"""Saved viewer states: a two-method store, backed by SQLite (default) or PostgreSQL.

Ids are content addresses: the first 160 bits of SHA-256 over the state's canonical JSON,
base32 (lower case, no padding, 32 characters). Identical states share an id, and an id
cannot be guessed without knowing the state it names.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
import threading
from pathlib import Path
from typing import Protocol, cast

from cryoet_ng.config import Config

STATE_ID = re.compile(r"[a-z2-7]{32}")
SQLITE_FILENAME = "states.sqlite3"


class StateStore(Protocol):
    """Where saved states live. ``put`` is idempotent: the same bytes give the same id."""

    def put(self, state_json: bytes) -> str: ...

    def get(self, state_id: str) -> bytes | None: ...


def state_id_for(state_json: bytes) -> str:
    digest = hashlib.sha256(state_json).digest()[:20]
    return base64.b32encode(digest).decode("ascii").lower()


def valid_state_id(value: str) -> bool:
    return STATE_ID.fullmatch(value) is not None


class SQLiteStore:
    """One SQLite file; one connection per thread (sqlite3 connections are thread-bound).

    WAL mode lets several gunicorn workers read while one writes.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        # Create the table now (and close), so a bad path fails at start-up, and no
        # connection is inherited across a gunicorn fork.
        with sqlite3.connect(path, timeout=10) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS states ("
                " id TEXT PRIMARY KEY, body BLOB NOT NULL,"
                " created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
        conn.close()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            self._local.conn = conn
        return conn

    def put(self, state_json: bytes) -> str:
        state_id = state_id_for(state_json)
        self._conn().execute(
            "INSERT OR IGNORE INTO states (id, body) VALUES (?, ?)", (state_id, state_json)
        )
        return state_id

    def get(self, state_id: str) -> bytes | None:
        row = self._conn().execute("SELECT body FROM states WHERE id = ?", (state_id,)).fetchone()
        return bytes(row[0]) if row else None


class PostgresStore:
    """A PostgreSQL table shared by every replica; one autocommit connection per thread."""

    def __init__(self, url: str) -> None:
        import psycopg  # imported here: SQLite deployments do not need libpq

        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS cryoet_ng_states ("
                " id TEXT PRIMARY KEY, body BYTEA NOT NULL,"
                " created TIMESTAMPTZ NOT NULL DEFAULT now())"
            )

    def _execute(self, sql: str, params: tuple[object, ...]) -> tuple[object, ...] | None:
        # One retry on a fresh connection: the server may have restarted or dropped an
        # idle connection since this thread last used it.
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            if conn is None or conn.closed:
                conn = self._psycopg.connect(self.url, autocommit=True)
                self._local.conn = conn
            try:
                cur = conn.execute(sql, params)
                return cur.fetchone() if cur.description else None
            except self._psycopg.OperationalError:
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        return None  # pragma: no cover

    def put(self, state_json: bytes) -> str:
        state_id = state_id_for(state_json)
        self._execute(
            "INSERT INTO cryoet_ng_states (id, body) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
            (state_id, state_json),
        )
        return state_id

    def get(self, state_id: str) -> bytes | None:
        row = self._execute("SELECT body FROM cryoet_ng_states WHERE id = %s", (state_id,))
        # psycopg returns BYTEA as bytes (or memoryview); _execute's rows are untyped.
        return bytes(cast(bytes, row[0])) if row else None


def open_store(config: Config) -> StateStore:
    """The store named by ``server.states_db``: a postgresql:// URL, or a SQLite folder.

    A relative folder is relative to the configuration file's folder.
    """
    target = config.server.states_db
    if target.startswith(("postgresql://", "postgres://")):
        return PostgresStore(target)
    folder = Path(target).expanduser()
    if not folder.is_absolute():
        base = Path(config.source).parent if config.source != "<defaults>" else Path.cwd()
        folder = base / folder
    return SQLiteStore(folder.resolve() / SQLITE_FILENAME)
