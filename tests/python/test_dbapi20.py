"""The DB-API 2.0 (PEP 249) compliance checks, in the structure of the
well-known dbapi20.py suite (a base class parameterized by the driver
module, its connect arguments, a table prefix and DDL; one test per
requirement of the PEP), written for walrouter.dbapi and run against the
real cluster. Optional extensions the driver does not offer (nextset) are
skipped, as in the original."""

import os
import time
import unittest

from walrouter import dbapi


class DatabaseAPI20Test(unittest.TestCase):
    """Subclasses set driver, connect_args, connect_kw_args, table_prefix,
    lower_func."""

    __test__ = False  # the base: only subclasses naming a driver run
    driver = None
    connect_args = ()
    connect_kw_args = {}
    table_prefix = "dbapi20test_"
    lower_func = "lower"

    @property
    def ddl1(self):
        return f"CREATE TABLE {self.table_prefix}booze (name varchar(20))"

    @property
    def ddl2(self):
        return f"CREATE TABLE {self.table_prefix}barflys (name varchar(20), drink varchar(30))"

    @property
    def xddl1(self):
        return f"DROP TABLE IF EXISTS {self.table_prefix}booze"

    @property
    def xddl2(self):
        return f"DROP TABLE IF EXISTS {self.table_prefix}barflys"

    samples = ["Carlton Cold", "Carlton Draft", "Mountain Goat", "Redback", "Victoria Bitter", "XXXX"]

    def _connect(self):
        return self.driver.connect(*self.connect_args, **self.connect_kw_args)

    def setUp(self):
        self.tearDown()  # leftovers of an interrupted run

    def tearDown(self):
        con = self._connect()
        try:
            cur = con.cursor()
            for ddl in (self.xddl1, self.xddl2):
                cur.execute(ddl)
            con.commit()
        finally:
            con.close()

    def executeDDL1(self, cursor):  # noqa: N802 - the original's names
        cursor.execute(self.ddl1)

    def executeDDL2(self, cursor):  # noqa: N802
        cursor.execute(self.ddl2)

    def _paraminsert(self, cur):
        self.executeDDL2(cur)
        table = f"{self.table_prefix}barflys"
        # No parameters: the text goes as it is. With parameters, %% is a percent sign.
        cur.execute(f"INSERT INTO {table} VALUES ('Victoria Bitter', 'thi%s :may ca%(u)se? troub:1e')")
        self.assertTrue(cur.rowcount in (-1, 1))
        style = self.driver.paramstyle
        if style == "qmark":
            cur.execute(f"INSERT INTO {table} VALUES (?, 'thi%%s :may ca%%(u)se? troub:1e')", ("Cooper's",))
        elif style == "numeric":
            cur.execute(f"INSERT INTO {table} VALUES (:1, 'thi%%s :may ca%%(u)se? troub:1e')", ("Cooper's",))
        elif style == "named":
            cur.execute(f"INSERT INTO {table} VALUES (:beer, 'thi%%s :may ca%%(u)se? troub:1e')",
                        {"beer": "Cooper's"})
        elif style == "format":
            cur.execute(f"INSERT INTO {table} VALUES (%s, 'thi%%s :may ca%%(u)se? troub:1e')", ("Cooper's",))
        elif style == "pyformat":
            cur.execute(f"INSERT INTO {table} VALUES (%(beer)s, 'thi%%s :may ca%%(u)se? troub:1e')",
                        {"beer": "Cooper's"})
        else:
            self.fail("invalid paramstyle")
        self.assertTrue(cur.rowcount in (-1, 1))
        cur.execute(f"SELECT name, drink FROM {table}")
        res = cur.fetchall()
        self.assertEqual(len(res), 2, "cursor.fetchall returned too few rows")
        beers = sorted([res[0][0], res[1][0]])
        self.assertEqual(beers, ["Cooper's", "Victoria Bitter"], "cursor.fetchall retrieved incorrect data")
        self.assertEqual(res[0][1], "thi%s :may ca%(u)se? troub:1e", "quoted text with %% was mangled")
        self.assertEqual(res[1][1], "thi%s :may ca%(u)se? troub:1e", "quoted text with %% was mangled")

    # ---- module interface --------------------------------------------------------------------

    def test_connect(self):
        con = self._connect()
        con.close()

    def test_apilevel(self):
        self.assertEqual(self.driver.apilevel, "2.0")

    def test_threadsafety(self):
        self.assertIn(self.driver.threadsafety, (0, 1, 2, 3))

    def test_paramstyle(self):
        self.assertIn(self.driver.paramstyle, ("qmark", "numeric", "named", "format", "pyformat"))

    def test_Exceptions(self):  # noqa: N802
        d = self.driver
        self.assertTrue(issubclass(d.Warning, Exception))
        self.assertTrue(issubclass(d.Error, Exception))
        for name in ("InterfaceError", "DatabaseError"):
            self.assertTrue(issubclass(getattr(d, name), d.Error), name)
        for name in ("DataError", "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
                     "NotSupportedError"):
            self.assertTrue(issubclass(getattr(d, name), d.DatabaseError), name)

    def test_ExceptionsAsConnectionAttributes(self):  # noqa: N802
        con = self._connect()
        d = self.driver
        try:
            for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "OperationalError",
                         "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError", "DataError"):
                self.assertIs(getattr(con, name), getattr(d, name))
        finally:
            con.close()

    # ---- connection --------------------------------------------------------------------------

    def test_commit(self):
        con = self._connect()
        try:
            con.commit()  # with no transaction open
        finally:
            con.close()

    def test_rollback(self):
        con = self._connect()
        try:
            if hasattr(con, "rollback"):
                con.rollback()
        finally:
            con.close()

    def test_cursor(self):
        con = self._connect()
        try:
            con.cursor()
        finally:
            con.close()

    def test_cursor_isolation(self):
        con = self._connect()
        try:
            cur1, cur2 = con.cursor(), con.cursor()
            self.executeDDL1(cur1)
            cur1.execute(f"INSERT INTO {self.table_prefix}booze VALUES ('Victoria Bitter')")
            cur2.execute(f"SELECT name FROM {self.table_prefix}booze")
            booze = cur2.fetchall()
            self.assertEqual(len(booze), 1)
            self.assertEqual(len(booze[0]), 1)
            self.assertEqual(booze[0][0], "Victoria Bitter")
        finally:
            con.close()

    def test_description(self):
        con = self._connect()
        try:
            cur = con.cursor()
            self.executeDDL1(cur)
            self.assertIsNone(cur.description, "cursor.description should be None after a statement with no rows")
            cur.execute(f"SELECT name FROM {self.table_prefix}booze")
            self.assertEqual(len(cur.description), 1)
            self.assertEqual(len(cur.description[0]), 7)
            self.assertEqual(cur.description[0][0].lower(), "name")
            self.assertEqual(cur.description[0][1], self.driver.STRING)
            self.executeDDL2(cur)
            self.assertIsNone(cur.description)
        finally:
            con.close()

    def test_rowcount(self):
        con = self._connect()
        try:
            cur = con.cursor()
            self.executeDDL1(cur)
            self.assertIn(cur.rowcount, (-1, 0))
            cur.execute(f"INSERT INTO {self.table_prefix}booze VALUES ('Victoria Bitter')")
            self.assertIn(cur.rowcount, (-1, 1))
            cur.execute(f"SELECT name FROM {self.table_prefix}booze")
            self.assertIn(cur.rowcount, (-1, 1))
            self.executeDDL2(cur)
            self.assertIn(cur.rowcount, (-1, 0))
        finally:
            con.close()

    lower_func_result = "foo"

    def test_callproc(self):
        con = self._connect()
        try:
            cur = con.cursor()
            if self.lower_func and hasattr(cur, "callproc"):
                r = cur.callproc(self.lower_func, ("FOO",))
                self.assertEqual(len(r), 1)
                self.assertEqual(r[0], "FOO")
                r = cur.fetchall()
                self.assertEqual(len(r), 1, "callproc produced no result set")
                self.assertEqual(len(r[0]), 1, "callproc produced invalid result set")
                self.assertEqual(r[0][0], self.lower_func_result, "callproc produced invalid results")
        finally:
            con.close()

    def test_close(self):
        con = self._connect()
        try:
            cur = con.cursor()
        finally:
            con.close()
        self.assertRaises(self.driver.Error, self.executeDDL1, cur)
        self.assertRaises(self.driver.Error, con.commit)
        self.assertRaises(self.driver.Error, con.cursor)
        con.close()  # a second close is fine

    def test_execute(self):
        con = self._connect()
        try:
            self._paraminsert(con.cursor())
        finally:
            con.close()

    def test_executemany(self):
        con = self._connect()
        try:
            cur = con.cursor()
            self.executeDDL1(cur)
            largs = [("Cooper's",), ("Boag's",)]
            margs = [{"beer": "Cooper's"}, {"beer": "Boag's"}]
            table = f"{self.table_prefix}booze"
            if self.driver.paramstyle == "format":
                cur.executemany(f"INSERT INTO {table} VALUES (%s)", largs)
            elif self.driver.paramstyle == "pyformat":
                cur.executemany(f"INSERT INTO {table} VALUES (%(beer)s)", margs)
            else:
                self.fail("unknown paramstyle")
            self.assertIn(cur.rowcount, (-1, 2))
            cur.execute(f"SELECT name FROM {table}")
            res = cur.fetchall()
            self.assertEqual(len(res), 2)
            self.assertEqual(sorted([res[0][0], res[1][0]]), ["Boag's", "Cooper's"])
        finally:
            con.close()

    def test_fetchone(self):
        con = self._connect()
        try:
            cur = con.cursor()
            self.assertRaises(self.driver.Error, cur.fetchone)  # nothing executed yet
            self.executeDDL1(cur)
            self.assertRaises(self.driver.Error, cur.fetchone)  # no result set
            cur.execute(f"SELECT name FROM {self.table_prefix}booze")
            self.assertIsNone(cur.fetchone())
            self.assertIn(cur.rowcount, (-1, 0))
            cur.execute(f"INSERT INTO {self.table_prefix}booze VALUES ('Victoria Bitter')")
            self.assertRaises(self.driver.Error, cur.fetchone)
            cur.execute(f"SELECT name FROM {self.table_prefix}booze")
            r = cur.fetchone()
            self.assertEqual(len(r), 1)
            self.assertEqual(r[0], "Victoria Bitter")
            self.assertIsNone(cur.fetchone())
            self.assertIn(cur.rowcount, (-1, 1))
        finally:
            con.close()

    def _populate(self):
        return [f"INSERT INTO {self.table_prefix}booze VALUES ('{s}')" for s in self.samples]

    def test_fetchmany(self):
        con = self._connect()
        try:
            cur = con.cursor()
            self.assertRaises(self.driver.Error, cur.fetchmany, 4)
            self.executeDDL1(cur)
            for sql in self._populate():
                cur.execute(sql)
            cur.execute(f"SELECT name FROM {self.table_prefix}booze")
            r = cur.fetchmany()
            self.assertEqual(len(r), 1, "cursor.fetchmany retrieved more than arraysize (1) rows")
            cur.arraysize = 10
            r = cur.fetchmany(3)
            self.assertEqual(len(r), 3)
            r = cur.fetchmany(4)
            self.assertEqual(len(r), 2)
            r = cur.fetchmany(4)
            self.assertEqual(len(r), 0)
            self.assertIn(cur.rowcount, (-1, 6))
            cur.arraysize = 4
            cur.execute(f"SELECT name FROM {self.table_prefix}booze")
            r = cur.fetchmany()
            self.assertEqual(len(r), 4)
            r = cur.fetchmany()
            self.assertEqual(len(r), 2)
            r = cur.fetchmany()
            self.assertEqual(len(r), 0)
            self.assertIn(cur.rowcount, (-1, 6))
            cur.arraysize = 6
            cur.execute(f"SELECT name FROM {self.table_prefix}booze")
            rows = cur.fetchmany()
            self.assertIn(cur.rowcount, (-1, 6))
            self.assertEqual(len(rows), 6)
            self.assertEqual(sorted(r[0] for r in rows), sorted(self.samples))
            self.assertEqual(len(cur.fetchmany()), 0)
            self.assertIn(cur.rowcount, (-1, 6))
            self.executeDDL2(cur)
            cur.execute(f"SELECT name FROM {self.table_prefix}barflys")
            r = cur.fetchmany()
            self.assertEqual(len(r), 0)
            self.assertIn(cur.rowcount, (-1, 0))
        finally:
            con.close()

    def test_fetchall(self):
        con = self._connect()
        try:
            cur = con.cursor()
            self.assertRaises(self.driver.Error, cur.fetchall)
            self.executeDDL1(cur)
            for sql in self._populate():
                cur.execute(sql)
            self.assertRaises(self.driver.Error, cur.fetchall)  # after an INSERT
            cur.execute(f"SELECT name FROM {self.table_prefix}booze")
            rows = cur.fetchall()
            self.assertIn(cur.rowcount, (-1, len(self.samples)))
            self.assertEqual(len(rows), len(self.samples))
            self.assertEqual(sorted(r[0] for r in rows), sorted(self.samples))
            self.assertEqual(cur.fetchall(), [])
            self.assertIn(cur.rowcount, (-1, len(self.samples)))
            self.executeDDL2(cur)
            cur.execute(f"SELECT name FROM {self.table_prefix}barflys")
            self.assertEqual(cur.fetchall(), [])
            self.assertIn(cur.rowcount, (-1, 0))
        finally:
            con.close()

    def test_mixedfetch(self):
        con = self._connect()
        try:
            cur = con.cursor()
            self.executeDDL1(cur)
            for sql in self._populate():
                cur.execute(sql)
            cur.execute(f"SELECT name FROM {self.table_prefix}booze")
            rows1 = cur.fetchone()
            rows23 = cur.fetchmany(2)
            rows4 = cur.fetchone()
            rows56 = cur.fetchall()
            self.assertIn(cur.rowcount, (-1, 6))
            self.assertEqual(len(rows23), 2)
            self.assertEqual(len(rows56), 2)
            rows = [rows1[0], rows23[0][0], rows23[1][0], rows4[0], rows56[0][0], rows56[1][0]]
            self.assertEqual(sorted(rows), sorted(self.samples))
        finally:
            con.close()

    def test_nextset(self):
        con = self._connect()
        try:
            if not hasattr(con.cursor(), "nextset"):
                self.skipTest("nextset is optional and not offered")
        finally:
            con.close()

    def test_arraysize(self):
        con = self._connect()
        try:
            self.assertTrue(hasattr(con.cursor(), "arraysize"))
            self.assertEqual(con.cursor().arraysize, 1)
        finally:
            con.close()

    def test_setinputsizes(self):
        con = self._connect()
        try:
            cur = con.cursor()
            cur.setinputsizes((25,))
            self._paraminsert(cur)  # still works
        finally:
            con.close()

    def test_setoutputsize_basic(self):
        con = self._connect()
        try:
            cur = con.cursor()
            cur.setoutputsize(1000)
            cur.setoutputsize(2000, 0)
            self._paraminsert(cur)
        finally:
            con.close()

    def test_None(self):  # noqa: N802
        con = self._connect()
        try:
            cur = con.cursor()
            self.executeDDL2(cur)
            table = f"{self.table_prefix}barflys"
            cur.execute(f"INSERT INTO {table} VALUES ('a', NULL)")
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", ("b", None))
            cur.execute(f"SELECT drink FROM {table} ORDER BY name")
            self.assertEqual(cur.fetchall(), [(None,), (None,)])
        finally:
            con.close()

    # ---- type objects and constructors --------------------------------------------------------

    def test_Date(self):  # noqa: N802
        d1 = self.driver.Date(2002, 12, 25)
        d2 = self.driver.DateFromTicks(time.mktime((2002, 12, 25, 0, 0, 0, 0, 0, 0)))
        self.assertEqual(str(d1), str(d2))

    def test_Time(self):  # noqa: N802
        t1 = self.driver.Time(13, 45, 30)
        t2 = self.driver.TimeFromTicks(time.mktime((2001, 1, 1, 13, 45, 30, 0, 0, 0)))
        self.assertEqual(str(t1), str(t2))

    def test_Timestamp(self):  # noqa: N802
        t1 = self.driver.Timestamp(2002, 12, 25, 13, 45, 30)
        t2 = self.driver.TimestampFromTicks(time.mktime((2002, 12, 25, 13, 45, 30, 0, 0, 0)))
        self.assertEqual(str(t1), str(t2))

    def test_Binary(self):  # noqa: N802
        self.driver.Binary(b"Something")
        self.driver.Binary(b"")

    def test_STRING(self):  # noqa: N802
        self.assertTrue(hasattr(self.driver, "STRING"))

    def test_BINARY(self):  # noqa: N802
        self.assertTrue(hasattr(self.driver, "BINARY"))

    def test_NUMBER(self):  # noqa: N802
        self.assertTrue(hasattr(self.driver, "NUMBER"))

    def test_DATETIME(self):  # noqa: N802
        self.assertTrue(hasattr(self.driver, "DATETIME"))

    def test_ROWID(self):  # noqa: N802
        self.assertTrue(hasattr(self.driver, "ROWID"))


class test_Walrouter(DatabaseAPI20Test):  # noqa: N801 - the original's naming
    __test__ = True
    driver = dbapi
    connect_args = (os.environ.get("WR_TEST_DSN", ""),)
    table_prefix = f"wr_dbapi20_{os.getpid()}_"

    def test_type_objects_match_the_column_types(self):
        con = self._connect()
        try:
            cur = con.cursor()
            cur.execute("SELECT 'a'::text, 1::int, 1.5::numeric, now(), '\\x00'::bytea, 1::oid")
            kinds = [d[1] for d in cur.description]
            self.assertEqual(kinds[0], dbapi.STRING)
            self.assertEqual(kinds[1], dbapi.NUMBER)
            self.assertEqual(kinds[2], dbapi.NUMBER)
            self.assertEqual(kinds[3], dbapi.DATETIME)
            self.assertEqual(kinds[4], dbapi.BINARY)
            self.assertEqual(kinds[5], dbapi.ROWID)
            self.assertNotEqual(kinds[0], dbapi.NUMBER)
        finally:
            con.close()
