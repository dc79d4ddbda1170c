"""One TOML file describes a deployment: ``[scheduler]``, ``[scaling]``, ``[[adapter]]`` with ``[[adapter.group]]``."""

from scaler.config.load import ConfigError, load_config
from scaler.config.schema import AdapterSection, Config, GroupSection, ScalingSection, SchedulerSection

__all__ = [
    "AdapterSection",
    "Config",
    "ConfigError",
    "GroupSection",
    "ScalingSection",
    "SchedulerSection",
    "load_config",
]
