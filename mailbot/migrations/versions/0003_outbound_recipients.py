"""outbound recipients: an index for the automatic-mail cap per address

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 11:40:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailbot.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "outbound_recipients",
        sa.Column("outbound_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", mailbot.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbound_id"],
            ["outbound_messages.id"],
            name=op.f("fk_outbound_recipients_outbound_id_outbound_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("outbound_id", "address", name=op.f("pk_outbound_recipients")),
    )
    op.create_index(
        "ix_outbound_recipients_address_created",
        "outbound_recipients",
        ["address", "created_at"],
        unique=False,
    )
    # Existing mail gets its rows too, so the cap counts what went out before the upgrade.
    conn = op.get_bind()
    outbound = sa.table(
        "outbound_messages",
        sa.column("id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("recipients", sa.JSON()),
        sa.column("created_at", mailbot.models.UTCDateTime(timezone=True)),
    )
    rows = conn.execute(
        sa.select(outbound.c.id, outbound.c.kind, outbound.c.recipients, outbound.c.created_at)
    ).all()
    values = []
    for outbound_id, kind, recipients, created_at in rows:
        addresses = json.loads(recipients) if isinstance(recipients, str) else recipients
        for address in dict.fromkeys(addresses or []):
            values.append(
                {
                    "outbound_id": outbound_id,
                    "address": address,
                    "kind": kind,
                    "created_at": created_at,
                }
            )
    if values:
        op.bulk_insert(table, values)


def downgrade() -> None:
    op.drop_index("ix_outbound_recipients_address_created", table_name="outbound_recipients")
    op.drop_table("outbound_recipients")
