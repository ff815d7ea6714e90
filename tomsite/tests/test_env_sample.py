"""env.sample documents exactly the variables TOM reads: no more, no fewer."""

from __future__ import annotations

import ast
import re

from conftest import REPO

ENV_READERS = {"env_str", "env_bool", "env_int", "env_float", "env_list", "env_map", "env_path",
               "env_choice", "env_is_set"}
SOURCE_DIRS = ("tomsite", "calls", "voice", "toolhub", "greenlights")
REQUIRED_GROUPS = (
    "Backend", "WebSocket", "TTS", "LLM", "STT", "FreeSWITCH", "TLS", "JWT", "Redis", "Chroma",
    "Audio Recording", "Telephony", "Monitoring", "Rate Limiting", "Performance",
    "Feature Flags", "Logging", "Development", "Provider APIs",
)
SECRETS = ("SECRET_KEY", "TOM_PHONE_HASH_KEY", "TOM_JWT_SECRET", "FREESWITCH_ESL_PASSWORD",
           "TOM_FORK_BASIC_AUTH_PASSWORD", "TOM_FORK_TOKEN_SECRET", "TOM_METRICS_TOKEN",
           "TOM_PROVIDER_API_KEY")


def _is_os_environ(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ"
            and isinstance(node.value, ast.Name) and node.value.id == "os")


def variables_read_by_code() -> dict[str, str]:
    """Map each environment variable the code reads to the first file that reads it."""
    found: dict[str, str] = {}
    files = [REPO / "manage.py"]
    for folder in SOURCE_DIRS:
        files += [p for p in (REPO / folder).rglob("*.py") if "tests" not in p.parts]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                is_reader = isinstance(func, ast.Name) and func.id in ENV_READERS
                is_os = isinstance(func, ast.Attribute) and (
                    (func.attr in {"get", "setdefault", "pop"} and _is_os_environ(func.value))
                    or (func.attr == "getenv" and isinstance(func.value, ast.Name)
                        and func.value.id == "os"))
                if (is_reader or is_os) and isinstance(node.args[0], ast.Constant):
                    name = node.args[0].value
            elif isinstance(node, ast.Subscript) and _is_os_environ(node.value) \
                    and isinstance(node.slice, ast.Constant):
                name = node.slice.value
            if isinstance(name, str):
                found.setdefault(name, str(path.relative_to(REPO)))
    # The install scripts read a few TOM_ variables too (TOM_GPU: what llama.cpp is built for).
    for path in sorted((REPO / "deploy" / "local").glob("*.sh")):
        for name in re.findall(r"\$\{?(TOM_[A-Z0-9_]+)", path.read_text()):
            found.setdefault(name, str(path.relative_to(REPO)))
    return found


def env_sample() -> tuple[dict[str, str], list[str]]:
    """The variables in env.sample with their values, and its group headings."""
    text = (REPO / "env.sample").read_text()
    variables = dict(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", text, re.MULTILINE))
    groups = re.findall(r"^# =+ (.+?) =+$", text, re.MULTILINE)
    return variables, groups


def test_the_scanner_finds_reads_of_every_kind() -> None:
    found = variables_read_by_code()
    assert found["DATABASE_URL"] == "tomsite/settings.py"  # env_str
    assert found["DJANGO_SETTINGS_MODULE"] == "manage.py"  # os.environ.setdefault
    assert "TOM_FORK_MODE" in found  # env_choice in tom_settings.py
    assert len(found) > 60


def test_every_variable_the_code_reads_is_in_env_sample() -> None:
    documented, _ = env_sample()
    missing = {name: path for name, path in variables_read_by_code().items()
               if name not in documented}
    assert not missing, f"read by the code but missing from env.sample: {missing}"


def test_every_variable_in_env_sample_is_read_by_the_code() -> None:
    documented, _ = env_sample()
    unused = sorted(set(documented) - set(variables_read_by_code()))
    assert not unused, f"in env.sample but read nowhere: {unused}"


def test_env_sample_has_every_group() -> None:
    _, groups = env_sample()
    assert [g for g in REQUIRED_GROUPS if g not in groups] == []


def test_secrets_are_placeholders() -> None:
    documented, _ = env_sample()
    for name in SECRETS:
        assert documented[name] == "CHANGE_ME", name
