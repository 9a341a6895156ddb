"""Leads pipeline, handoff and inbox, notifications, booking and calendar sync

Hand-written parts (autogenerate cannot see them): the booking table's no-double-booking guarantee
(a PostgreSQL exclusion constraint with btree_gist, SQLite triggers; the same statements as
asthron/models/booking.py, copied so this revision stays fixed), the rename of lead.fields to
lead.field_values, server defaults for the new non-null lead columns, and lead clean-up that the
new unique email/phone indexes need (lower-cased emails; a later duplicate keeps its data but gives
up the duplicate address, noted in its notes).

Revision ID: d3a6772d4a8c
Revises: d5a76509f643
Create Date: 2026-11-28 00:22:28.211521

"""
from alembic import op
import sqlalchemy as sa

OVERLAP = ("SELECT RAISE(ABORT, 'booking_overlap') WHERE EXISTS (SELECT 1 FROM booking b "
           "WHERE b.resource_id = NEW.resource_id AND b.status = 'confirmed' AND b.id IS NOT NEW.id "
           "AND b.blocked_start < NEW.blocked_end AND b.blocked_end > NEW.blocked_start)")
SQLITE_TRIGGERS = [
    ("CREATE TRIGGER booking_no_overlap_insert BEFORE INSERT ON booking "
     f"WHEN NEW.status = 'confirmed' BEGIN {OVERLAP}; END"),
    ("CREATE TRIGGER booking_no_overlap_update BEFORE UPDATE OF resource_id, blocked_start, blocked_end, status "
     f"ON booking WHEN NEW.status = 'confirmed' BEGIN {OVERLAP}; END"),
]
POSTGRESQL_EXCLUSION = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    ("ALTER TABLE booking ADD CONSTRAINT ex_booking_no_overlap EXCLUDE USING gist "
     "(resource_id WITH =, tstzrange(blocked_start, blocked_end, '[)') WITH &&) WHERE (status = 'confirmed')"),
]


def _no_double_booking():
    statements = {"postgresql": POSTGRESQL_EXCLUSION, "sqlite": SQLITE_TRIGGERS}.get(op.get_bind().dialect.name, [])
    for statement in statements:
        op.execute(statement)


def _dedupe_leads():
    """Lower-case emails, then keep each email and phone on the oldest lead of its workspace only."""
    op.execute("UPDATE lead SET email = lower(trim(email)) WHERE email IS NOT NULL")
    for column in ("email", "phone"):
        op.execute(
            f"UPDATE lead SET notes = coalesce(notes || ' ', '') || '(Duplicate {column} ' || {column} || "
            f"' of lead ' || (SELECT min(o.id) FROM lead o WHERE o.workspace_id = lead.workspace_id "
            f"AND o.{column} = lead.{column}) || ')', {column} = NULL "
            f"WHERE {column} IS NOT NULL AND id > (SELECT min(o.id) FROM lead o "
            f"WHERE o.workspace_id = lead.workspace_id AND o.{column} = lead.{column})")

# revision identifiers, used by Alembic.
revision = 'd3a6772d4a8c'
down_revision = 'd5a76509f643'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('notification_preference',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'template', name='uq_notification_preference')
    )
    with op.batch_alter_table('notification_preference', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_preference_user_id'), ['user_id'], unique=False)

    op.create_table('booking_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reminder_offsets_minutes', sa.JSON(), nullable=False),
    sa.Column('reminders_enabled', sa.Boolean(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('booking_settings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_booking_settings_workspace_id'), ['workspace_id'], unique=False)
        batch_op.create_index('uq_booking_settings_workspace', ['workspace_id'], unique=True)

    op.create_table('canned_reply',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('canned_reply', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_canned_reply_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('email_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('from_name', sa.String(length=120), nullable=True),
    sa.Column('from_address', sa.String(length=320), nullable=True),
    sa.Column('reply_to', sa.String(length=320), nullable=True),
    sa.Column('transport', sa.String(length=64), nullable=True),
    sa.Column('transport_settings', sa.JSON(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('email_settings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_settings_workspace_id'), ['workspace_id'], unique=False)
        batch_op.create_index('uq_email_settings_workspace', ['workspace_id'], unique=True)

    op.create_table('inbox_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('auto_assign', sa.Boolean(), nullable=False),
    sa.Column('expected_reply', sa.String(length=200), nullable=False),
    sa.Column('ask_email_when_away', sa.Boolean(), nullable=False),
    sa.Column('handoff_score_threshold', sa.Integer(), nullable=True),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('inbox_settings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_settings_workspace_id'), ['workspace_id'], unique=False)
        batch_op.create_index('uq_inbox_settings_workspace', ['workspace_id'], unique=True)

    op.create_table('lead_field',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.Enum('text', 'email', 'phone', 'number', 'select', 'multiselect', 'date', 'checkbox', name='lead_field_kind', native_enum=False, length=16), nullable=False),
    sa.Column('required', sa.Boolean(), nullable=False),
    sa.Column('help_text', sa.String(length=300), nullable=True),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('question', sa.String(length=300), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workspace_id', 'key', name='uq_lead_field_workspace_key')
    )
    with op.batch_alter_table('lead_field', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lead_field_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('transport', sa.String(length=64), nullable=True),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('transport_message_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.CheckConstraint("status IN ('queued', 'retrying', 'sent', 'failed')", name='ck_notification_status'),
    sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_workspace_id'), ['workspace_id'], unique=False)
        batch_op.create_index('ix_notification_workspace_status', ['workspace_id', 'status'], unique=False)

    op.create_table('pipeline_stage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('qualified', sa.Boolean(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workspace_id', 'name', name='uq_pipeline_stage_workspace_name')
    )
    with op.batch_alter_table('pipeline_stage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pipeline_stage_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('resource',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('calendar_backend', sa.String(length=64), nullable=False),
    sa.Column('calendar_settings', sa.JSON(), nullable=False),
    sa.Column('feed_token_hash', sa.String(length=128), nullable=True),
    sa.Column('calendar_token_encrypted', sa.Text(), nullable=True),
    sa.Column('busy_synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('busy_refresh_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('busy_sync_error', sa.String(length=500), nullable=True),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('feed_token_hash')
    )
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resource_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_resource_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('scoring_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('field_key', sa.String(length=64), nullable=False),
    sa.Column('operator', sa.Enum('equals', 'contains', 'greater_than', 'less_than', 'is_set', name='rule_operator', native_enum=False, length=16), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=True),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('scoring_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scoring_rule_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('service',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('buffer_before_minutes', sa.Integer(), nullable=False),
    sa.Column('buffer_after_minutes', sa.Integer(), nullable=False),
    sa.Column('min_notice_minutes', sa.Integer(), nullable=False),
    sa.Column('max_days_ahead', sa.Integer(), nullable=False),
    sa.Column('slot_step_minutes', sa.Integer(), nullable=False),
    sa.Column('price_text', sa.String(length=80), nullable=True),
    sa.Column('location_text', sa.String(length=300), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('service', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('staff_availability',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('available', sa.Boolean(), nullable=False),
    sa.Column('last_assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('staff_availability', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_availability_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_availability_workspace_id'), ['workspace_id'], unique=False)
        batch_op.create_index('uq_staff_availability_workspace_user', ['workspace_id', 'user_id'], unique=True)

    op.create_table('busy_block',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resource_id', sa.Integer(), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=500), nullable=True),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['resource_id'], ['resource.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('busy_block', schema=None) as batch_op:
        batch_op.create_index('ix_busy_block_resource_range', ['resource_id', 'start_at', 'end_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_busy_block_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('date_override',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resource_id', sa.Integer(), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('kind', sa.Enum('closed', 'extra', 'holiday', name='date_override_kind', native_enum=False, length=16), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=True),
    sa.Column('end_time', sa.Time(), nullable=True),
    sa.Column('label', sa.String(length=120), nullable=True),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['resource_id'], ['resource.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('date_override', schema=None) as batch_op:
        batch_op.create_index('ix_date_override_resource_date', ['resource_id', 'date'], unique=False)
        batch_op.create_index(batch_op.f('ix_date_override_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('notification_attachment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['notification_id'], ['notification.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notification_attachment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_attachment_notification_id'), ['notification_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_attachment_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('outbox_email',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=True),
    sa.Column('message_id', sa.String(length=255), nullable=True),
    sa.Column('to', sa.String(length=1000), nullable=False),
    sa.Column('from_addr', sa.String(length=400), nullable=True),
    sa.Column('reply_to', sa.String(length=320), nullable=True),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('html', sa.Text(), nullable=True),
    sa.Column('attachments', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['notification_id'], ['notification.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox_email', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_email_notification_id'), ['notification_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_email_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('service_resource',
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('resource_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['resource_id'], ['resource.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['service_id'], ['service.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('service_id', 'resource_id')
    )
    with op.batch_alter_table('service_resource', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_resource_resource_id'), ['resource_id'], unique=False)

    op.create_table('stage_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('field_key', sa.String(length=64), nullable=False),
    sa.Column('operator', sa.Enum('equals', 'contains', 'greater_than', 'less_than', 'is_set', name='stage_rule_operator', native_enum=False, length=16), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=True),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stage_id'], ['pipeline_stage.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stage_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stage_rule_stage_id'), ['stage_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stage_rule_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('working_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resource_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=False),
    sa.Column('end_time', sa.Time(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['resource_id'], ['resource.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('working_hours', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_working_hours_resource_id'), ['resource_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_working_hours_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('booking',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=32), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('resource_id', sa.Integer(), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('confirmed', 'cancelled', name='booking_status', native_enum=False, length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('visitor_time_zone', sa.String(length=64), nullable=False),
    sa.Column('conversation_id', sa.String(length=40), nullable=True),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_reason', sa.String(length=300), nullable=True),
    sa.Column('reminders_sent', sa.JSON(), nullable=False),
    sa.Column('external_event_id', sa.String(length=500), nullable=True),
    sa.Column('sync_status', sa.String(length=16), nullable=False),
    sa.Column('sync_error', sa.String(length=500), nullable=True),
    sa.Column('calendar_resource_id', sa.Integer(), nullable=True),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['resource_id'], ['resource.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['service_id'], ['service.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reference')
    )
    with op.batch_alter_table('booking', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_booking_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_booking_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index('ix_booking_resource_blocked', ['resource_id', 'blocked_start', 'blocked_end'], unique=False)
        batch_op.create_index(batch_op.f('ix_booking_service_id'), ['service_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_booking_workspace_id'), ['workspace_id'], unique=False)
        batch_op.create_index('ix_booking_workspace_start', ['workspace_id', 'start_at'], unique=False)
        batch_op.create_index('uq_booking_workspace_idempotency', ['workspace_id', 'idempotency_key'], unique=True, postgresql_where=sa.text('idempotency_key IS NOT NULL'), sqlite_where=sa.text('idempotency_key IS NOT NULL'))
    _no_double_booking()

    op.create_table('lead_activity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('created', 'updated', 'stage', 'note', 'merged', 'conversation', 'booking', name='lead_activity_kind', native_enum=False, length=16), nullable=False),
    sa.Column('summary', sa.String(length=500), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['ab_user.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lead_activity', schema=None) as batch_op:
        batch_op.create_index('ix_lead_activity_lead_id_id', ['lead_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_activity_workspace_id'), ['workspace_id'], unique=False)

    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assignee_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('handoff_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('visitor_email', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('transcript_sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_conversation_assignee_id'), ['assignee_id'], unique=False)
        batch_op.create_foreign_key('fk_conversation_assignee_id_ab_user', 'ab_user', ['assignee_id'], ['id'],
                                    ondelete='SET NULL')

    _dedupe_leads()
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.alter_column('fields', new_column_name='field_values', existing_type=sa.JSON(),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('tags', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('score', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('stage_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('owner_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('consent_version', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('consented_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column('source',
               existing_type=sa.VARCHAR(length=20),
               type_=sa.Enum('widget', 'ai', 'imported', 'api', name='lead_source', native_enum=False, length=16),
               existing_nullable=False)
        batch_op.alter_column('phone',
               existing_type=sa.VARCHAR(length=40),
               type_=sa.String(length=20),
               existing_nullable=True)
        batch_op.drop_index(batch_op.f('ix_lead_email'))
        batch_op.create_index(batch_op.f('ix_lead_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_score'), ['score'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_stage_id'), ['stage_id'], unique=False)
        batch_op.create_index('ix_lead_workspace_created', ['workspace_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_lead_workspace_stage_created', ['workspace_id', 'stage_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('uq_lead_workspace_email', ['workspace_id', 'email'], unique=True, postgresql_where=sa.text('email IS NOT NULL'), sqlite_where=sa.text('email IS NOT NULL'))
        batch_op.create_index('uq_lead_workspace_phone', ['workspace_id', 'phone'], unique=True, postgresql_where=sa.text('phone IS NOT NULL'), sqlite_where=sa.text('phone IS NOT NULL'))
        batch_op.create_foreign_key('fk_lead_owner_id_ab_user', 'ab_user', ['owner_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key('fk_lead_stage_id_pipeline_stage', 'pipeline_stage', ['stage_id'], ['id'],
                                    ondelete='SET NULL')

    with op.batch_alter_table('widget_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_form', sa.String(length=16), server_default='off', nullable=False))
        batch_op.add_column(sa.Column('phone_region', sa.String(length=2), nullable=True))



def downgrade():
    with op.batch_alter_table('widget_settings', schema=None) as batch_op:
        batch_op.drop_column('phone_region')
        batch_op.drop_column('lead_form')

    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_constraint('fk_lead_stage_id_pipeline_stage', type_='foreignkey')
        batch_op.drop_constraint('fk_lead_owner_id_ab_user', type_='foreignkey')
        batch_op.drop_index('uq_lead_workspace_phone', postgresql_where=sa.text('phone IS NOT NULL'), sqlite_where=sa.text('phone IS NOT NULL'))
        batch_op.drop_index('uq_lead_workspace_email', postgresql_where=sa.text('email IS NOT NULL'), sqlite_where=sa.text('email IS NOT NULL'))
        batch_op.drop_index('ix_lead_workspace_stage_created')
        batch_op.drop_index('ix_lead_workspace_created')
        batch_op.drop_index(batch_op.f('ix_lead_stage_id'))
        batch_op.drop_index(batch_op.f('ix_lead_score'))
        batch_op.drop_index(batch_op.f('ix_lead_owner_id'))
        batch_op.create_index(batch_op.f('ix_lead_email'), ['email'], unique=False)
        batch_op.alter_column('phone',
               existing_type=sa.String(length=20),
               type_=sa.VARCHAR(length=40),
               existing_nullable=True)
        batch_op.alter_column('source',
               existing_type=sa.Enum('widget', 'ai', 'imported', 'api', name='lead_source', native_enum=False, length=16),
               type_=sa.VARCHAR(length=20),
               existing_nullable=False)
        batch_op.drop_column('consented_at')
        batch_op.drop_column('consent_version')
        batch_op.drop_column('owner_id')
        batch_op.drop_column('stage_id')
        batch_op.drop_column('score')
        batch_op.drop_column('tags')
        batch_op.alter_column('field_values', new_column_name='fields', existing_type=sa.JSON(),
                              existing_nullable=False)

    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.drop_constraint('fk_conversation_assignee_id_ab_user', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_conversation_assignee_id'))
        batch_op.drop_column('transcript_sent_at')
        batch_op.drop_column('visitor_email')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('handoff_at')
        batch_op.drop_column('assignee_id')

    with op.batch_alter_table('lead_activity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_activity_workspace_id'))
        batch_op.drop_index('ix_lead_activity_lead_id_id')

    op.drop_table('lead_activity')
    with op.batch_alter_table('booking', schema=None) as batch_op:
        batch_op.drop_index('uq_booking_workspace_idempotency', postgresql_where=sa.text('idempotency_key IS NOT NULL'), sqlite_where=sa.text('idempotency_key IS NOT NULL'))
        batch_op.drop_index('ix_booking_workspace_start')
        batch_op.drop_index(batch_op.f('ix_booking_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_booking_service_id'))
        batch_op.drop_index('ix_booking_resource_blocked')
        batch_op.drop_index(batch_op.f('ix_booking_lead_id'))
        batch_op.drop_index(batch_op.f('ix_booking_conversation_id'))

    op.drop_table('booking')
    with op.batch_alter_table('working_hours', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_working_hours_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_working_hours_resource_id'))

    op.drop_table('working_hours')
    with op.batch_alter_table('stage_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stage_rule_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_stage_rule_stage_id'))

    op.drop_table('stage_rule')
    with op.batch_alter_table('service_resource', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_resource_resource_id'))

    op.drop_table('service_resource')
    with op.batch_alter_table('outbox_email', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_email_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_email_notification_id'))

    op.drop_table('outbox_email')
    with op.batch_alter_table('notification_attachment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_attachment_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_notification_attachment_notification_id'))

    op.drop_table('notification_attachment')
    with op.batch_alter_table('date_override', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_date_override_workspace_id'))
        batch_op.drop_index('ix_date_override_resource_date')

    op.drop_table('date_override')
    with op.batch_alter_table('busy_block', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_busy_block_workspace_id'))
        batch_op.drop_index('ix_busy_block_resource_range')

    op.drop_table('busy_block')
    with op.batch_alter_table('staff_availability', schema=None) as batch_op:
        batch_op.drop_index('uq_staff_availability_workspace_user')
        batch_op.drop_index(batch_op.f('ix_staff_availability_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_staff_availability_user_id'))

    op.drop_table('staff_availability')
    with op.batch_alter_table('service', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_workspace_id'))

    op.drop_table('service')
    with op.batch_alter_table('scoring_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scoring_rule_workspace_id'))

    op.drop_table('scoring_rule')
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resource_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_resource_user_id'))

    op.drop_table('resource')
    with op.batch_alter_table('pipeline_stage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pipeline_stage_workspace_id'))

    op.drop_table('pipeline_stage')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_workspace_status')
        batch_op.drop_index(batch_op.f('ix_notification_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_notification_user_id'))

    op.drop_table('notification')
    with op.batch_alter_table('lead_field', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_field_workspace_id'))

    op.drop_table('lead_field')
    with op.batch_alter_table('inbox_settings', schema=None) as batch_op:
        batch_op.drop_index('uq_inbox_settings_workspace')
        batch_op.drop_index(batch_op.f('ix_inbox_settings_workspace_id'))

    op.drop_table('inbox_settings')
    with op.batch_alter_table('email_settings', schema=None) as batch_op:
        batch_op.drop_index('uq_email_settings_workspace')
        batch_op.drop_index(batch_op.f('ix_email_settings_workspace_id'))

    op.drop_table('email_settings')
    with op.batch_alter_table('canned_reply', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_canned_reply_workspace_id'))

    op.drop_table('canned_reply')
    with op.batch_alter_table('booking_settings', schema=None) as batch_op:
        batch_op.drop_index('uq_booking_settings_workspace')
        batch_op.drop_index(batch_op.f('ix_booking_settings_workspace_id'))

    op.drop_table('booking_settings')
    with op.batch_alter_table('notification_preference', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_preference_user_id'))

    op.drop_table('notification_preference')
