"""Device simulators a person can try from a terminal, against a running server.

::

    paywarden device glasses enroll --user-key pw_test_… --phrase "pay it now"
    paywarden device glasses scan 'PWQR1.…'            # hears the request, asks for the phrase
    paywarden device glasses approvals                 # an agent's payments waiting
    paywarden device glasses confirm apr_…
    paywarden device phone enroll --user-key pw_test_…  # a phone with a tap token
    paywarden device terminal register --merchant-key pw_test_…
    paywarden device terminal tap 450                  # the phone taps the terminal

Each simulator keeps its private key in a state file (``--state``, by default under
``./paywarden-devices/``, readable by its owner only); the server only ever learns public
keys. ``--server`` defaults to ``PAYWARDEN_SERVER`` or http://127.0.0.1:8000.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

__all__ = ["register"]

console = Console()
device_app = typer.Typer(
    help="Device simulators: glasses, a phone, a terminal.", no_args_is_help=True
)
glasses_app = typer.Typer(help="AI glasses: scan a QR request, pay by voice.", no_args_is_help=True)
phone_app = typer.Typer(help="A phone (or watch, card) that taps.", no_args_is_help=True)
terminal_app = typer.Typer(help="A merchant's terminal or gate.", no_args_is_help=True)
device_app.add_typer(glasses_app, name="glasses")
device_app.add_typer(phone_app, name="phone")
device_app.add_typer(terminal_app, name="terminal")

STATE_DIR = Path("paywarden-devices")
ServerOption = Annotated[
    str | None, typer.Option("--server", help="the paywarden base URL (PAYWARDEN_SERVER)")
]
PhraseOption = Annotated[
    str | None, typer.Option("--say", help="what the wearer says (asked for when absent)")
]
PinOption = Annotated[
    bool, typer.Option("--pin", help="the wearer also entered their PIN (a step-up)")
]
TIMEOUT_S = 30.0


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``paywarden`` command line."""
    app.add_typer(device_app, name="device")


def _state_option(name: str) -> Any:
    return typer.Option("--state", help=f"state file (default {STATE_DIR / name})")


def _server(server: str | None, state: dict[str, Any] | None = None) -> str:
    if server:
        return server.rstrip("/")
    if state and state.get("server"):
        return str(state["server"])
    return os.environ.get("PAYWARDEN_SERVER", "http://127.0.0.1:8000").rstrip("/")


def _client(base_url: str) -> Any:
    import httpx  # noqa: PLC0415

    return httpx.Client(base_url=base_url, timeout=TIMEOUT_S)


def _load(path: Path) -> dict[str, Any]:
    from paywarden.devices.simulators import load_state  # noqa: PLC0415

    if not path.exists():
        console.print(f"[red]no state at {path}: enroll or register first[/]")
        raise typer.Exit(2)
    return load_state(path)


def _save(path: Path, state: dict[str, Any]) -> None:
    from paywarden.devices.simulators import save_state  # noqa: PLC0415

    save_state(path, state)
    console.print(f"state (with the private key) in {path}")


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]{error}[/]")
    return typer.Exit(1)


def _show(body: dict[str, Any]) -> None:
    console.print_json(json.dumps(body))


# --- glasses ------------------------------------------------------------------------------


@glasses_app.command("enroll")
def glasses_enroll(
    user_key: Annotated[str, typer.Option("--user-key", help="the wearer's secret key")],
    phrase: Annotated[str, typer.Option("--phrase", help="the phrase that confirms a payment")],
    server: ServerOption = None,
    name: Annotated[str, typer.Option(help="the device's name")] = "Glasses",
    currency: Annotated[str, typer.Option(help="the currency of the limits")] = "usd",
    tap_limit: Annotated[int, typer.Option(help="one payment without a step-up")] = 5_000,
    daily_limit: Annotated[int, typer.Option(help="a day's total before a step-up")] = 20_000,
    state: Annotated[Path, _state_option("glasses.json")] = STATE_DIR / "glasses.json",
) -> None:
    """Make a key on the glasses and bind them to the wearer."""
    from paywarden.devices import flows  # noqa: PLC0415

    base = _server(server)
    with _client(base) as http:
        try:
            glasses = flows.enroll_glasses(
                http, user_key, phrase, name=name, currency=currency, tap_limit=tap_limit,
                daily_limit=daily_limit,
            )  # fmt: skip
        except flows.FlowError as error:
            raise _fail(error) from None
    console.print(f"glasses {glasses.device_id} bound; say your phrase to confirm payments")
    _save(state, {**glasses.state(), "server": base})


def _glasses(state: Path) -> tuple[Any, dict[str, Any]]:
    from paywarden.devices.simulators import Glasses  # noqa: PLC0415

    saved = _load(state)
    return Glasses.from_state(saved), saved


def _heard(say: str | None) -> str:
    return say if say is not None else typer.prompt("say your phrase", hide_input=True)


@glasses_app.command("scan")
def glasses_scan(
    payload: Annotated[str, typer.Argument(help="the QR code's text (PWQR1.…)")],
    say: PhraseOption = None,
    amount: Annotated[int | None, typer.Option(help="a static request's amount")] = None,
    pin: PinOption = False,
    server: ServerOption = None,
    state: Annotated[Path, _state_option("glasses.json")] = STATE_DIR / "glasses.json",
) -> None:
    """Read a QR payment request aloud, and pay it when the wearer says their phrase."""
    from paywarden.devices import flows  # noqa: PLC0415

    glasses, saved = _glasses(state)
    try:
        console.print(f"[bold]glasses:[/] {glasses.read(payload)}")
        with _client(_server(server, saved)) as http:
            paid = flows.pay_qr(http, glasses, payload, _heard(say), amount=amount, pin=pin)
    except (ValueError, flows.FlowError) as error:
        raise _fail(error) from None
    word = "paid" if paid["status"] == "succeeded" else "declined: " + ", ".join(paid["reasons"])
    console.print(f"[bold]glasses:[/] {word}")
    _show(paid)


@glasses_app.command("approvals")
def glasses_approvals(
    server: ServerOption = None,
    state: Annotated[Path, _state_option("glasses.json")] = STATE_DIR / "glasses.json",
) -> None:
    """The wearer's payments waiting for approval (an agent's, above its mandate's level)."""
    from paywarden.devices import flows  # noqa: PLC0415
    from paywarden.kernel.money import format_amount  # noqa: PLC0415

    glasses, saved = _glasses(state)
    with _client(_server(server, saved)) as http:
        try:
            waiting = flows.pending_approvals(http, glasses)
        except flows.FlowError as error:
            raise _fail(error) from None
    for approval in waiting:
        amount = format_amount(approval["amount"], approval["currency"])
        console.print(f"{approval['id']}  {amount} to {approval['merchant']}")
    if not waiting:
        console.print("nothing is waiting")


@glasses_app.command("confirm")
def glasses_confirm(
    approval_id: Annotated[str, typer.Argument(help="the approval (apr_…)")],
    say: PhraseOption = None,
    pin: PinOption = False,
    server: ServerOption = None,
    state: Annotated[Path, _state_option("glasses.json")] = STATE_DIR / "glasses.json",
) -> None:
    """Approve a waiting payment from the glasses, by voice (and PIN above the level)."""
    from paywarden.devices import flows  # noqa: PLC0415

    glasses, saved = _glasses(state)
    with _client(_server(server, saved)) as http:
        try:
            waiting = {a["id"]: a for a in flows.pending_approvals(http, glasses)}
            if approval_id not in waiting:
                raise flows.FlowError(f"{approval_id} is not waiting for this wearer")
            done = flows.confirm_approval(http, glasses, waiting[approval_id], _heard(say), pin=pin)
        except (ValueError, flows.FlowError) as error:
            raise _fail(error) from None
    _show(done)


# --- phone ---------------------------------------------------------------------------------


@phone_app.command("enroll")
def phone_enroll(
    user_key: Annotated[str, typer.Option("--user-key", help="the owner's secret key")],
    server: ServerOption = None,
    kind: Annotated[str, typer.Option(help="phone, watch or card")] = "phone",
    tap_limit: Annotated[int, typer.Option(help="one tap without a step-up")] = 5_000,
    daily_limit: Annotated[int, typer.Option(help="a day's total before a step-up")] = 20_000,
    state: Annotated[Path, _state_option("phone.json")] = STATE_DIR / "phone.json",
) -> None:
    """Make a key on the phone, bind it, and get its tap token (in-person taps only)."""
    from paywarden.devices import flows  # noqa: PLC0415

    base = _server(server)
    with _client(base) as http:
        try:
            phone = flows.enroll_tap_device(
                http, user_key, kind=kind, name=kind.title(), tap_limit=tap_limit,
                daily_limit=daily_limit,
            )  # fmt: skip
        except flows.FlowError as error:
            raise _fail(error) from None
    console.print(f"{kind} {phone.device_id} holds tap token {phone.token}")
    _save(state, {**phone.state(), "server": base})


# --- terminal ------------------------------------------------------------------------------


@terminal_app.command("register")
def terminal_register(
    merchant_key: Annotated[str, typer.Option("--merchant-key", help="the merchant's key")],
    server: ServerOption = None,
    kind: Annotated[str, typer.Option(help="pos or gate")] = "pos",
    name: Annotated[str, typer.Option(help="the terminal's name")] = "Till 1",
    settings: Annotated[
        str | None, typer.Option(help='a gate\'s JSON: {"zone": 1, "fare": {...}}')
    ] = None,
    state: Annotated[Path, _state_option("terminal.json")] = STATE_DIR / "terminal.json",
) -> None:
    """Make the terminal's key and register it for the merchant."""
    from paywarden.devices import flows  # noqa: PLC0415

    base = _server(server)
    with _client(base) as http:
        try:
            made = flows.register_terminal(
                http, merchant_key, kind=kind, name=name,
                settings=json.loads(settings) if settings else None,
            )  # fmt: skip
        except (ValueError, flows.FlowError) as error:
            raise _fail(error) from None
    console.print(f"terminal {made['terminal_id']} for {made['merchant_id']}")
    _save(state, {**made, "server": base})


@terminal_app.command("tap")
def terminal_tap(
    amount: Annotated[int, typer.Argument(help="minor units (450 is 4.50)")],
    currency: Annotated[str, typer.Option(help="the currency")] = "usd",
    phone: Annotated[Path, typer.Option("--phone", help="the tapping device's state")] = (
        STATE_DIR / "phone.json"
    ),
    verify: Annotated[
        str, typer.Option(help="the phone's user check: none, pin or biometric")
    ] = "none",
    server: ServerOption = None,
    state: Annotated[Path, _state_option("terminal.json")] = STATE_DIR / "terminal.json",
) -> None:
    """The phone taps: the terminal draws a number, the phone signs its cryptogram, the
    terminal submits it (retrying a lost answer with the identical message)."""
    from paywarden.devices import flows  # noqa: PLC0415
    from paywarden.devices.simulators import TapDevice  # noqa: PLC0415

    saved = _load(state)
    device = TapDevice.from_state(_load(phone))
    device.user_verification = verify
    with _client(_server(server, saved)) as http:
        terminal = flows.terminal_from(http, saved)
        try:
            answer = terminal.charge(device, amount, currency)
        except (ValueError, RuntimeError) as error:
            raise _fail(error) from None
        finally:
            _save(phone, {**_load(phone), "counter": device.counter})
    word = (
        answer["status"]
        if answer["status"] == "approved"
        else "declined: " + ", ".join(answer["reasons"])
    )
    console.print(f"[bold]terminal:[/] {word}")
    _show(answer)
