"""All models, imported so that their tables are known to the metadata and to migrations."""
from asthron.models.audit import AuditEntry, AuditHead  # noqa: F401
from asthron.models.base import Model  # noqa: F401
from asthron.models.integrations import Subprocessor, SubprocessorListChange  # noqa: F401
from asthron.models.jobs import OutboxEntry, OutboxStatus  # noqa: F401
from asthron.models.security import UserSession  # noqa: F401
from asthron.models.tenancy import Agency, Membership, Role, Workspace, WorkspaceStatus  # noqa: F401
from asthron.models.chat import (  # noqa: F401
    AIConnection, ConsentRecord, Conversation, ConversationOwner, KnowledgeEntry, Message, MessageRole,
    UsageEntry, WidgetSettings,
)
from asthron.models.leads import (  # noqa: F401
    ActivityKind, FieldKind, Lead, LeadActivity, LeadField, LeadSource, PipelineStage, RuleOperator, ScoringRule,
    StageRule,
)
from asthron.models import knowledge_search  # noqa: F401  (full-text search DDL on knowledge_entry)
from asthron.models.notifications import (  # noqa: F401
    EmailSettings, Notification, NotificationAttachment, NotificationPreference, NotificationStatus, OutboxEmail,
)
from asthron.models.booking import (  # noqa: F401
    Booking, BookingSettings, BookingStatus, BusyBlock, DateOverride, OverrideKind, Resource, Service, WorkingHours,
)
from asthron.models.inbox import CannedReply, InboxSettings, StaffAvailability  # noqa: F401
