"""Every table, imported in one place for Alembic and the test fixtures."""

from community.accounts import models as accounts_models  # noqa: F401
from community.affiliates import models as affiliates_models  # noqa: F401
from community.billing import models as billing_models  # noqa: F401
from community.campaigns import models as campaigns_models  # noqa: F401
from community.checkout import models as checkout_models  # noqa: F401
from community.content import models as content_models  # noqa: F401
from community.db import Base
from community.hubs import models as hubs_models  # noqa: F401
from community.jobs import OutboxJob  # noqa: F401
from community.mail import models as mail_models  # noqa: F401
from community.members import models as members_models  # noqa: F401
from community.notifications import models as notifications_models  # noqa: F401
from community.offers import models as offers_models  # noqa: F401

metadata = Base.metadata
