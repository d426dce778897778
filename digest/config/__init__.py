"""Settings: what the operator configures, read once and checked as a whole at start.

- `settings`: the settings tree (`Settings`, one dataclass per section) and the checks
  of each value.
- `load`: `load_settings` reads the defaults, the TOML file and the environment.
- `mail`: the mail settings checked together (`mail_identity`) and the DKIM signer.
"""

from digest.config.load import load_settings, settings_to_dict
from digest.config.settings import (
    ArxivSettings,
    DatabaseSettings,
    DeliverySettings,
    DkimSettings,
    HFSettings,
    HttpSettings,
    LearnSettings,
    MailSettings,
    MatchSettings,
    ScheduleSettings,
    ServiceSettings,
    Settings,
    SmtpSettings,
    SourcesSettings,
    WebSettings,
)

__all__ = [
    "ArxivSettings",
    "DatabaseSettings",
    "DeliverySettings",
    "DkimSettings",
    "HFSettings",
    "HttpSettings",
    "LearnSettings",
    "MailSettings",
    "MatchSettings",
    "ScheduleSettings",
    "ServiceSettings",
    "Settings",
    "SmtpSettings",
    "SourcesSettings",
    "WebSettings",
    "load_settings",
    "settings_to_dict",
]
