"""The throwaway MariaDB helper (tests/support/mariadb.py) does what the outage and isolation tests rely
on: a stopped server comes back on the same port with its data, and each database has its own user."""
from __future__ import annotations

import pytest


class TestMariaDB:
    def test_stop_start_keeps_data_and_port(self, private_mariadb):
        creds = private_mariadb.create_database()
        with creds.connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t (x INT)")
            cur.execute("INSERT INTO t VALUES (7)")
        port = private_mariadb.port
        private_mariadb.stop()
        with pytest.raises(Exception):
            creds.connect(connect_timeout=2)
        private_mariadb.start()
        assert private_mariadb.port == port
        with creds.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT x FROM t")
            assert cur.fetchall() == ((7,),)

    def test_each_database_has_its_own_user(self, mariadb, db):
        other = mariadb.create_database()
        try:
            with db.connect() as conn, conn.cursor() as cur:
                with pytest.raises(Exception):
                    cur.execute(f"SELECT 1 FROM `{other.name}`.dual")
                    cur.execute(f"USE `{other.name}`")
        finally:
            mariadb.drop_database(other)
