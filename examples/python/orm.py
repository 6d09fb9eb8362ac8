#!/usr/bin/env python3
"""SQLAlchemy ORM over walrouter (postgresql+walrouter://): reads go to a
replica that has what this user wrote, writes to the primary, and the
user's session token carries that across requests.

    python3 examples/python/orm.py "postgresql://user:pw@h1:5432,h2:5432,h3:5432/db"

Prints, for each statement, the node that ran it and why.
"""

import sys

from sqlalchemy import Column, Integer, String, create_engine, event, select
from sqlalchemy.orm import Session, declarative_base

import walrouter.sqlalchemy  # registers the dialect (pip installs an entry point too)

Base = declarative_base()


class Note(Base):
    __tablename__ = "wr_orm_notes"
    id = Column(Integer, primary_key=True)
    author = Column(String(40), nullable=False)
    body = Column(String(200), nullable=False)


def engine_for(dsn: str, **kw):
    """An engine on the nodes of a libpq URI. AUTOCOMMIT: every statement is
    routed on its own (the default isolation level would run every ORM
    transaction on the primary)."""
    return create_engine(walrouter.sqlalchemy.url_from_dsn(dsn), isolation_level="AUTOCOMMIT", **kw)


def where_it_ran(engine, log):
    """Records (SQL's first word, node, reason) of every statement."""
    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        log.append((statement.split()[0].upper(), cursor.node, cursor.reason))


def request(engine, token, author, body=None):
    """One web request: one connection (one walrouter session) resumed from
    the cookie's token, maybe a new note, then the author's notes; returns
    them and the token for the next request's cookie."""
    with engine.connect() as conn:
        dbapi_conn = conn.connection.connection  # the walrouter.dbapi connection
        dbapi_conn.resume(token)
        with Session(bind=conn) as orm:
            if body is not None:
                orm.add(Note(author=author, body=body))
                orm.commit()
            notes = orm.scalars(select(Note.body).where(Note.author == author).order_by(Note.id)).all()
        return notes, dbapi_conn.token


def main(dsn: str) -> None:
    engine = engine_for(dsn)
    log = []
    where_it_ran(engine, log)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    token = None
    notes, token = request(engine, token, "ada", "first note")
    print("after writing:", notes)
    notes, token = request(engine, token, "ada")
    print("next request:", notes)
    for what, node, reason in log:
        print(f"  {what:<8} {node} ({reason})")
    Base.metadata.drop_all(engine)
    engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
