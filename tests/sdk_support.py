"""What the SDK, MCP and chat tests share: SDK clients bound to the in-process app (through the
TestClient's transport, the SDK's one I/O seam) or to a live server, and a world of a funded
user, a merchant, an agent and an active mandate made through the API."""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi.testclient import TestClient

from conftest import Api
from paywarden.kernel.clock import FakeClock
from paywarden.sdk import AgentKey, Client, generate_agent_key


class ThroughTestClient(httpx.BaseTransport):
    """An ``httpx`` transport that hands each request to Starlette's TestClient (which speaks
    ``httpx2``), so the SDK's own transport seam reaches the real ASGI app in-process."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.client.request(
            request.method,
            str(request.url),
            content=request.read(),
            headers=[(k.decode(), v.decode()) for k, v in request.headers.raw],
        )
        return httpx.Response(
            answer.status_code, headers=list(answer.headers.multi_items()), content=answer.content
        )


def in_process(api: Api, clock: FakeClock, **options: Any) -> Client:
    """A client of the in-process app (signing with the fake clock the app reads)."""
    transport = ThroughTestClient(api.client)
    return Client("http://testserver", transport=transport, clock=clock.now, **options)


@dataclass
class AgentWorld:
    user: dict[str, Any]
    user_key: str
    merchant: dict[str, Any]
    merchant_key: str
    other_merchant: dict[str, Any]
    agent_id: str
    agent_key: AgentKey
    agent_jwk: dict[str, str]
    platform_key: str


def agent_world(
    post: Any, admin_key: str, *, funded: int = 100_000, currency: str = "usd"
) -> AgentWorld:
    """A funded user, two merchants and an Ed25519 agent, made with ``post(path, key, body)``
    (an httpx-like answer)."""
    tag = secrets.token_hex(4)
    user = post(
        "/v1/users",
        admin_key,
        {"email": f"sdk-{tag}@example.com", "name": "Payer", "currency": currency},
    ).json()
    if funded:
        card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099}
        top = post(
            "/v1/top_ups",
            user["secret_key"],
            {"amount": funded, "currency": currency, "card": card},
        )
        assert top.status_code == 201, top.text
    merchants = [
        post(
            "/v1/merchants",
            admin_key,
            {"name": name, "category": "coffee", "currency": currency, "fee_bps": 0},
        ).json()
        for name in ("Harbour Coffee", "Elsewhere")
    ]
    made = post(
        "/v1/agent_platforms",
        admin_key,
        {"name": "Agents", "origin": f"https://agents-{tag}.example"},
    )
    assert made.status_code == 201, made.text
    key, jwk = generate_agent_key()
    agent = post(
        "/v1/agents", made.json()["secret_key"], {"name": "Shopper", "keys": [key.public_jwk()]}
    )
    assert agent.status_code == 201, agent.text
    return AgentWorld(
        user,
        user["secret_key"],
        merchants[0],
        merchants[0]["secret_key"],
        merchants[1],
        agent.json()["id"],
        key,
        jwk,
        made.json()["secret_key"],
    )


def budget(max_amount: int, currency: str = "usd") -> dict[str, Any]:
    return {"type": "payment.budget", "currency": currency, "max": max_amount}


def payees(*merchant_ids: str) -> dict[str, Any]:
    return {"type": "payment.allowed_payees", "allowed": list(merchant_ids)}


def confirm_above(amount: int, currency: str = "usd") -> dict[str, Any]:
    return {"type": "paywarden.confirmation_threshold", "currency": currency, "above": amount}


def active_mandate(
    agent: Client,
    user: Client,
    user_id: str,
    constraints: list[dict[str, Any]],
    currency: str = "usd",
) -> str:
    """A mandate the agent asked for and the user consented to; its id."""
    asked = agent.mandates.request(
        user=user_id,
        currency=currency,
        constraints=constraints,
        conversation_excerpt="buy me coffee",
    )
    assert asked["status"] == "pending_consent", asked
    assert user.mandates.consent(asked["id"])["status"] == "active"
    return str(asked["id"])


# --- a fake OpenAI-compatible model on loopback --------------------------------------------

Step = Any  # (messages: list[dict]) -> the assistant message (dict)


class FakeModel:
    """An OpenAI-compatible ``/chat/completions`` server on 127.0.0.1 that answers from a
    queue of scripted steps; each step sees the request's messages (tool results included)
    and returns the assistant message: ``{"content": …}`` or ``{"tool_calls": […]}``."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.requests: list[dict[str, Any]] = []
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                model.requests.append(body)
                if self.path.rstrip("/").endswith("/chat/completions") and model.steps:
                    message = {
                        "role": "assistant",
                        "content": None,
                        **model.steps.pop(0)(body["messages"]),
                    }
                    reply = {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "model": body.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": message,
                                "finish_reason": "tool_calls"
                                if message.get("tool_calls")
                                else "stop",
                            }
                        ],
                    }
                    status = 200
                else:
                    reply, status = {"error": {"message": "no scripted step left"}}, 500
                raw = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def __enter__(self) -> FakeModel:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def script(self, *steps: Step) -> None:
        self.steps.extend(steps)


def call(name: str, arguments: Any) -> Step:
    """A step calling one tool; ``arguments`` is a dict or a function of the tool results so
    far (each a parsed JSON object, oldest first)."""

    def step(messages: list[dict[str, Any]]) -> dict[str, Any]:
        results = [json.loads(m["content"]) for m in messages if m.get("role") == "tool"]
        args = arguments(results) if callable(arguments) else arguments
        tool_call = {
            "id": f"call_{secrets.token_hex(4)}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        return {"tool_calls": [tool_call]}

    return step


def say(text: Any) -> Step:
    """A step answering in text (or a function of the tool results so far)."""

    def step(messages: list[dict[str, Any]]) -> dict[str, Any]:
        results = [json.loads(m["content"]) for m in messages if m.get("role") == "tool"]
        return {"content": text(results) if callable(text) else text}

    return step


# --- a coffee shop in yuan, for the chat and MCP tests ----------------------------------------

ZONE = ZoneInfo("Asia/Shanghai")
# Risk rules that never fire, so that each refusal names the rule it broke.
LENIENT_RISK = {
    "agent_step_up_min": 1_000_000,
    "agent_deny_min": 1_000_000,
    "mandate_step_up_min": 1_000_000,
    "mandate_deny_min": 1_000_000,
    "failure_step_up_min": 1_000_000,
    "failure_deny_min": 1_000_000,
    "new_merchant_step_up": False,
}
BASE = {"latte": 1500, "cappuccino": 1400, "mocha": 1600, "americano": 1200, "flat white": 1500}
SIZE = {"small": -200, "medium": 0, "large": 300}
MILK = {"whole": 0, "oat": 300, "soy": 200}


@dataclass
class Shop:
    agent: Client
    user: Client
    merchant: str
    mandate: str
    products: dict[str, str]  # item -> prd_
    merchant_key: str = ""


def open_shop(api: Api, clock: FakeClock) -> Shop:
    world = agent_world(api.post, api.admin_key, funded=10_000_000, currency="cny")
    agent = in_process(api, clock, agent_key=world.agent_key)
    merchant, key = world.merchant["id"], world.merchant_key
    products = stock_shop(api.post, merchant, key)
    user = in_process(api, clock, api_key=world.user_key)
    mandate = active_mandate(agent, user, world.user["id"], [budget(5_000_000, "cny")], "cny")
    return Shop(agent, user, merchant, mandate, products, key)


def stock_shop(post: Any, merchant: str, key: str) -> dict[str, str]:
    """A store in Shanghai open 06:00-22:00, pickup at no charge, no tax, and the drinks of
    BASE with size, milk, sugar and temperature options; item -> product id."""
    hours = {day: [["06:00", "22:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    store = post(
        f"/v1/merchants/{merchant}/stores",
        key,
        {"name": "Bund", "address": "1 Zhongshan Rd", "timezone": "Asia/Shanghai", "hours": hours},
    )
    assert store.status_code == 201, store.text
    profile = post(
        f"/v1/merchants/{merchant}/profile",
        key,
        {
            "tax_bps": 0,
            "fulfillment": [{"type": "pickup", "amount": 0, "stores": [store.json()["id"]]}],
        },
    )
    assert profile.status_code == 200, profile.text
    groups = [
        {
            "name": "size",
            "values": [
                {"name": n, "amount_delta": d, "default": n == "medium"} for n, d in SIZE.items()
            ],
        },
        {
            "name": "milk",
            "values": [
                {"name": n, "amount_delta": d, "default": n == "whole"} for n, d in MILK.items()
            ],
        },
        {
            "name": "sugar",
            "values": [{"name": "none", "default": True}, {"name": "one"}, {"name": "two"}],
        },
        {
            "name": "temperature",
            "required": True,
            "values": [{"name": "hot", "default": True}, {"name": "iced", "amount_delta": 100}],
        },
    ]
    products = {}
    for index, (item, amount) in enumerate(BASE.items()):
        made = post(
            "/v1/products",
            key,
            {
                "sku": f"drink-{index}",
                "title": item.title(),
                "amount": amount,
                "category": "coffee",
                "option_groups": groups,
            },
        )
        assert made.status_code == 201, made.text
        products[item] = made.json()["id"]
    return products
