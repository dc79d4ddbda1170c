"""How the Symphony provider ships: the pip hint without its extra, the example config, the application profile."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from importlib.resources import files
from pathlib import Path

import msgspec
import pytest
from scaler.adapters.registry import spec
from scaler.adapters.symphony.spec import SymphonyOptions

from scaler.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
WITHOUT_SDK = """import sys
sys.modules["ibm_cloud_sdk_core"] = None  # as if the symphony extra were not installed
from scaler.adapters.symphony.main import main
main()
"""


def test_without_the_extra_naming_the_provider_fails_at_start_with_the_pip_hint(tmp_path: Path) -> None:
    config = tmp_path / "symphony.toml"
    text = (ROOT / "configs" / "symphony.toml").read_text()
    # Every address on loopback: if the hint ever failed to stop it, the adapter would dial nothing outside.
    text = text.replace("https://symhead.example.com:8050", "https://127.0.0.1:9")
    text = text.replace("tcp://10.20.0.5:6378", "tcp://127.0.0.1:9")
    config.write_text(text.replace('name = "symphony"\n', f'name = "symphony"\nstate_dir = "{tmp_path}"\n'))
    argv = [sys.executable, "-c", WITHOUT_SDK, "--config", str(config)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "provider 'symphony' needs ibm_cloud_sdk_core: pip install 'scaler[symphony]'" in done.stderr


def test_the_example_config_loads_and_its_options_decode() -> None:
    config = load_config(ROOT / "configs" / "symphony.toml")
    (section,) = config.adapter
    options = msgspec.convert(section.options, spec("symphony").options)
    assert isinstance(options, SymphonyOptions) and options.auth == "login" and not options.password


def test_the_application_profile_ships_and_names_the_default_application_and_service() -> None:
    profile = files("scaler.adapters.symphony").joinpath("ScalerWorker.xml").read_text()
    root = ElementTree.fromstring(profile)
    namespace = {"p": "http://www.platform.com/Symphony/Profile/Application"}
    consumer = root.find("p:Consumer", namespace)
    service = root.find("p:Service", namespace)
    assert consumer is not None and consumer.get("applicationName") == SymphonyOptions(url="https://h").application
    assert service is not None and service.get("name") == SymphonyOptions(url="https://h").service
    commands = [
        t.get("startCmd", "") for t in service.iter("{http://www.platform.com/Symphony/Profile/Application}osType")
    ]
    assert commands and all("scaler.adapters.symphony.service" in c for c in commands)


@pytest.mark.parametrize(
    ("line", "refusal"),
    [
        ('url = "symhead:8050"', "$.adapter[0].options: url 'symhead:8050' must be the SYMREST base"),
        ('url = "https://h"\nusrname = "x"', "$.adapter[0].options.usrname: unknown field"),
        ('url = "https://h"\nrenew_before = 30000', "renew_before must be shorter than token_lifetime"),
    ],
)
def test_bad_options_are_refused_naming_the_file_and_key(tmp_path: Path, line: str, refusal: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        f"""[scheduler]
address = "tcp://127.0.0.1:9"
[[adapter]]
provider = "symphony"
[adapter.options]
{line}
[[adapter.group]]
name = "cpu"
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value).startswith(f"{config}: ") and refusal in str(info.value)
