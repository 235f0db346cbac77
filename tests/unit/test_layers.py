"""scripts/layers.py: the layer contract catches each kind of violation and passes clean code.

Each test builds a small fake ``paywarden`` tree in ``tmp_path``, plants one violation and runs the
script on it in a subprocess, as scripts/check does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "layers.py"

# Every permitted kind of import, once: if the checker flags any of it, the clean test fails, and
# a violation test would see noise beyond the file it planted.
CLEAN_TREE: dict[str, str] = {
    "__init__.py": '__version__ = "0.1.0"\n',
    "kernel/errors.py": "class InvalidRequest(Exception): ...\n",
    "kernel/money.py": """
        from __future__ import annotations

        import json
        from dataclasses import dataclass
        from importlib import resources
        from typing import TYPE_CHECKING

        from .errors import InvalidRequest

        if TYPE_CHECKING:
            from collections.abc import Mapping


        def table() -> Mapping[str, object]:
            return json.loads(resources.files(__package__).joinpath("t.json").read_text("utf-8"))
        """,
    "payments/intents.py": """
        import uuid
        from datetime import datetime

        from cryptography.hazmat.primitives import hashes

        from paywarden import __version__
        from paywarden.commerce.cart import Cart
        from paywarden.kernel.money import table

        from ..trust import scores


        def parse(text: str) -> datetime:
            return datetime.fromisoformat(text)


        def from_text(text: str) -> uuid.UUID:
            return uuid.UUID(text)
        """,
    "payments/rails/card.py": """
        import os

        import httpx

        from paywarden.payments.intents import parse

        KEY = os.environ.get("CARD_KEY")
        """,
    "commerce/cart.py": "import nacl.signing\nimport rfc8785\n\n\nclass Cart: ...\n",
    "trust/scores.py": "import http_sf\nfrom joserfc import jws\n",
    "authorization/mandates.py": "from paywarden.payments import intents\n",
    "store/ledger.py": """
        import sqlalchemy

        from paywarden.adapters.clock import now
        from paywarden.kernel import money
        from paywarden.payments.intents import parse
        """,
    "adapters/clock.py": """
        from datetime import UTC, datetime


        def now() -> datetime:
            return datetime.now(UTC)
        """,
    "services/payments.py": """
        import logging

        from paywarden.adapters.clock import now
        from paywarden.authorization import mandates
        from paywarden.payments.rails import card
        from paywarden.store import ledger

        from . import refunds
        """,
    "services/refunds.py": "import secrets\n",
    "api/app.py": """
        import fastapi

        from paywarden.sdk import client
        from paywarden.services import payments
        """,
    "sdk/client.py": """
        import os

        import httpx
        import nacl.signing
        from cryptography.hazmat.primitives import hashes

        from paywarden.kernel.money import table
        from paywarden.trust import keys
        from paywarden.trust.signatures import sign_request

        from . import models
        """,
    "sdk/models.py": "",
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` under root/paywarden, with an __init__.py in every package directory."""
    package = root / "paywarden"
    for relative, source in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    for directory in [package, *package.rglob("*")]:
        init = directory / "__init__.py"
        if directory.is_dir() and not init.exists():
            init.write_text("", encoding="utf-8")
    return package


def run_layers(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_clean_tree_passes(tmp_path: Path) -> None:
    write_tree(tmp_path, CLEAN_TREE)
    result = run_layers("paywarden", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("layers: ok")


@pytest.mark.parametrize(
    ("relative", "source", "line", "expected"),
    [
        pytest.param(
            "payments/ledger_sql.py",
            "import sqlalchemy\n",
            1,
            "domains must not import sqlalchemy",
            id="domain-imports-sqlalchemy",
        ),
        pytest.param(
            "commerce/stamps.py",
            """
            from datetime import datetime


            def stamp() -> datetime:
                return datetime.now()
            """,
            5,
            "datetime.datetime.now",
            id="domain-calls-datetime-now",
        ),
        pytest.param(
            "kernel/config.py",
            """
            import os

            DEBUG = os.environ.get("PAYWARDEN_DEBUG")
            """,
            3,
            "os.environ",
            id="kernel-reads-environ",
        ),
        pytest.param(
            "kernel/ticks.py",
            "from time import time\n",
            1,
            "reads the clock",
            id="kernel-imports-time-time",
        ),
        pytest.param(
            "trust/clock.py",
            """
            import time


            def elapsed(start: float) -> float:
                return time.time() - start
            """,
            5,
            "time.time",
            id="domain-calls-time-time",
        ),
        pytest.param(
            "trust/ids.py",
            """
            import uuid


            def new_id() -> str:
                return str(uuid.uuid4())
            """,
            5,
            "uuid.uuid4",
            id="domain-calls-uuid4",
        ),
        pytest.param(
            "payments/fx.py",
            "import pydantic\n",
            1,
            "third-party libraries allowed here",
            id="domain-imports-unlisted-library",
        ),
        pytest.param(
            "commerce/checkout.py",
            "from paywarden.payments import rails\n",
            1,
            "paywarden.payments.rails (adapters)",
            id="domain-imports-rails-adapter",
        ),
        pytest.param(
            "trust/audit.py",
            """
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from paywarden.services import payments
            """,
            4,
            "paywarden.services.payments (services)",
            id="type-checking-import-still-checked",
        ),
        pytest.param(
            "services/orders.py",
            "from paywarden.api.app import router\n",
            1,
            "paywarden.api.app.router (entrypoints)",
            id="services-import-api",
        ),
        pytest.param(
            "store/outbox.py",
            "from paywarden.services import payments\n",
            1,
            "paywarden.services.payments (services)",
            id="store-imports-services",
        ),
        pytest.param(
            "sdk/cache.py",
            "import paywarden.store.ledger\n",
            1,
            "paywarden.store.ledger (adapters)",
            id="sdk-imports-store",
        ),
        pytest.param(
            "sdk/receipts.py",
            "from paywarden.trust import audit\n",
            1,
            "paywarden.trust.audit (domains)",
            id="sdk-imports-other-trust-module",
        ),
        pytest.param(
            "sdk/tokens.py",
            "import joserfc\n",
            1,
            "third-party libraries allowed here",
            id="sdk-imports-server-library",
        ),
        pytest.param(
            "services/billing/charge.py",
            "from ...api import app\n",
            1,
            "paywarden.api.app (entrypoints)",
            id="relative-import-climbs-into-entrypoint",
        ),
        pytest.param(
            "kernel/escape.py",
            "from ... import anything\n",
            1,
            "climbs above the paywarden package",
            id="relative-import-above-package",
        ),
        pytest.param(
            "helpers.py",
            "X = 1\n",
            1,
            "paywarden.helpers belongs to no layer",
            id="module-outside-every-layer",
        ),
    ],
)
def test_planted_violation_is_reported(
    tmp_path: Path, relative: str, source: str, line: int, expected: str
) -> None:
    write_tree(tmp_path, {**CLEAN_TREE, relative: source})
    result = run_layers("paywarden", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    reported = result.stdout.splitlines()
    location = f"paywarden/{relative}:{line}: "
    assert any(r.startswith(location) and expected in r for r in reported), reported
    # Only the planted file is blamed: the rest of the tree is the clean one.
    assert all(r.startswith(f"paywarden/{relative}:") for r in reported), reported


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = run_layers(str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 2


def test_real_tree_passes() -> None:
    result = run_layers(cwd=REPO)  # no argument: the script finds src/paywarden itself
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_root_may_name_the_sdk_lazily_and_only_so(tmp_path: Path) -> None:
    lazy = """
        def __getattr__(name: str) -> object:
            from paywarden import sdk

            return getattr(sdk, name)
        """
    write_tree(tmp_path, {**CLEAN_TREE, "__init__.py": lazy})
    assert run_layers("paywarden", cwd=tmp_path).returncode == 0
    eager = "from paywarden import sdk\n"
    write_tree(tmp_path, {**CLEAN_TREE, "__init__.py": eager})
    refused = run_layers("paywarden", cwd=tmp_path)
    assert refused.returncode == 1 and "paywarden.sdk" in refused.stdout
    services = """
        def __getattr__(name: str) -> object:
            from paywarden import services

            return getattr(services, name)
        """
    write_tree(tmp_path, {**CLEAN_TREE, "__init__.py": services})
    assert run_layers("paywarden", cwd=tmp_path).returncode == 1


def test_paywarden_client_is_the_sdk_client() -> None:
    import paywarden  # noqa: PLC0415
    from paywarden.sdk import AsyncClient, Client  # noqa: PLC0415

    assert paywarden.Client is Client and paywarden.AsyncClient is AsyncClient
    with pytest.raises(AttributeError):
        _ = paywarden.NoSuchThing  # type: ignore[attr-defined]
