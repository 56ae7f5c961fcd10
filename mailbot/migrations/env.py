"""Alembic environment: runs migrations on the engine mailbot hands over."""

from alembic import context

from mailbot.errors import DatabaseError
from mailbot.models import Base

engine = context.config.attributes["engine"]
sqlite = engine.dialect.name == "sqlite"
with engine.connect() as connection:
    if sqlite:
        # Batch mode changes a SQLite table by copying it, dropping the old one and renaming the
        # copy; with foreign keys enforced, dropping a table other rows refer to (cases) fails
        # once there is data. They are off for the migration (the pragma only works outside a
        # transaction, so it comes first), checked at the end, and on again afterwards.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise DatabaseError(f"the migration left broken foreign keys: {broken[:5]}")
        connection.commit()
    finally:
        if sqlite:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
