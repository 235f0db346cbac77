"""The kernel and its edges: ids, errors, invariants, the clock, events, the sandbox rail and
settings."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from paywarden.adapters.ids import new_id
from paywarden.config import Settings, load_settings
from paywarden.kernel import errors
from paywarden.kernel.clock import FakeClock, ensure_utc, rfc3339
from paywarden.kernel.errors import InvalidRequest, InvariantViolation, PaywardenError
from paywarden.kernel.events import EVENT_TYPES
from paywarden.kernel.ids import PREFIXES, format_id, id_prefix, is_id
from paywarden.kernel.invariant import invariant
from paywarden.payments.rails.sandbox import CardResult, authorize_card, luhn_valid

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
PROPERTY = settings(max_examples=200, deadline=None, database=None)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TOKEN_KEY = b"k" * 32

# --- ids --------------------------------------------------------------------------------


def decode_id(value: str) -> tuple[str, int, bytes]:
    """The test's own reading of ``prefix_ULID``: (prefix, timestamp_ms, randomness)."""
    prefix, _, body = value.partition("_")
    number = 0
    for char in body:
        number = number * 32 + CROCKFORD.index(char)
    return prefix, number >> 80, (number & (2**80 - 1)).to_bytes(10, "big")


@PROPERTY
@given(
    st.sampled_from(sorted(PREFIXES)),
    st.integers(0, 2**48 - 1),
    st.binary(min_size=10, max_size=10),
)
def test_an_id_decodes_back_to_its_prefix_time_and_randomness(
    prefix: str, timestamp_ms: int, randomness: bytes
) -> None:
    value = format_id(prefix, timestamp_ms, randomness)
    assert decode_id(value) == (prefix, timestamp_ms, randomness)
    assert len(value) == len(prefix) + 1 + 26
    assert id_prefix(value) == prefix
    assert is_id(value, prefix)


@PROPERTY
@given(
    st.integers(0, 2**48 - 2),
    st.integers(1, 2**20),
    st.binary(min_size=10, max_size=10),
    st.binary(min_size=10, max_size=10),
)
def test_ids_sort_by_time_whatever_their_randomness(
    earlier_ms: int, gap_ms: int, early_random: bytes, late_random: bytes
) -> None:
    later_ms = min(earlier_ms + gap_ms, 2**48 - 1)
    assert format_id("pay", earlier_ms, early_random) < format_id("pay", later_ms, late_random)


def test_a_known_id_has_a_known_spelling() -> None:
    assert format_id("acct", 0, bytes(10)) == "acct_" + "0" * 26
    assert format_id("acct", 2**48 - 1, b"\xff" * 10) == "acct_7" + "Z" * 25
    assert format_id("evt", 1, bytes(10)) == "evt_" + "0" * 9 + "1" + "0" * 16


@pytest.mark.parametrize(
    ("prefix", "timestamp_ms", "randomness", "message"),
    [
        ("nope", 0, bytes(10), "unknown id prefix"),
        ("", 0, bytes(10), "unknown id prefix"),
        ("ACCT", 0, bytes(10), "unknown id prefix"),
        ("acct", -1, bytes(10), "48-bit"),
        ("acct", 2**48, bytes(10), "48-bit"),
        ("acct", 0, bytes(9), "10 bytes"),
        ("acct", 0, bytes(11), "10 bytes"),
    ],
)
def test_format_id_refuses_bad_input(
    prefix: str, timestamp_ms: int, randomness: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        format_id(prefix, timestamp_ms, randomness)


GOOD_BODY = "01JD6Z5R3K8M9N0P1Q2R3S4T5V"


@pytest.mark.parametrize(
    "value",
    [
        "acct" + GOOD_BODY,  # no separator
        "acct_" + GOOD_BODY[:-1],  # 25 characters
        "acct_" + GOOD_BODY + "0",  # 27 characters
        "acct_" + GOOD_BODY.lower(),  # lowercase
        "acct_8" + GOOD_BODY[1:],  # more than 128 bits
        "acct_" + GOOD_BODY[:-1] + "U",  # U is not Crockford base32
        "acct_" + GOOD_BODY[:-1] + "I",
        "acct_" + GOOD_BODY[:-1] + "L",
        "acct_" + GOOD_BODY[:-1] + "O",
        "xyz_" + GOOD_BODY,  # unknown prefix
        "_" + GOOD_BODY,
        "",
    ],
)
def test_malformed_ids_have_no_prefix(value: str) -> None:
    assert id_prefix(value) is None
    assert not is_id(value, "acct")


def test_is_id_checks_the_prefix_and_the_type() -> None:
    value = "acct_" + GOOD_BODY
    assert id_prefix(value) == "acct"
    assert is_id(value, "acct")
    assert not is_id(value, "usr")
    assert not is_id(None, "acct")
    assert not is_id(12345, "acct")
    assert id_prefix("cs_" + GOOD_BODY) == "cs"


def test_new_ids_are_strictly_increasing_within_a_process() -> None:
    ids = [new_id("evt") for _ in range(10_000)]
    assert all(earlier < later for earlier, later in pairwise(ids))
    assert all(is_id(value, "evt") for value in ids)


def test_new_id_carries_the_current_time() -> None:
    before_ms = int(datetime.now(UTC).timestamp() * 1000)
    _, timestamp_ms, _ = decode_id(new_id("pay"))
    after_ms = int(datetime.now(UTC).timestamp() * 1000)
    assert before_ms - 1 <= timestamp_ms <= after_ms + 1


def test_new_id_refuses_an_unknown_prefix() -> None:
    with pytest.raises(ValueError, match="unknown id prefix"):
        new_id("bogus")


# --- errors -----------------------------------------------------------------------------

ERROR_TABLE = {
    errors.PaywardenError: (500, "api_error", "api_error"),
    errors.InvalidRequest: (400, "invalid_request_error", "invalid_request"),
    errors.IdempotencyKeyRequired: (400, "invalid_request_error", "idempotency_key_required"),
    errors.IdempotencyConflict: (422, "invalid_request_error", "idempotency_conflict"),
    errors.IdempotencyInFlight: (409, "invalid_request_error", "idempotency_in_flight"),
    errors.AuthenticationFailed: (401, "authentication_error", "authentication_required"),
    errors.PermissionDenied: (403, "permission_error", "permission_denied"),
    errors.NotFound: (404, "invalid_request_error", "resource_missing"),
    errors.Conflict: (409, "invalid_request_error", "state_conflict"),
    errors.Unprocessable: (422, "invalid_request_error", "unprocessable"),
    errors.PaymentDeclined: (402, "card_error", "card_declined"),
    errors.PayloadTooLarge: (413, "invalid_request_error", "request_too_large"),
    errors.RateLimited: (429, "rate_limit_error", "rate_limited"),
    errors.Unavailable: (503, "api_error", "service_unavailable"),
    errors.InvariantViolation: (500, "api_error", "invariant_violation"),
}


def test_the_error_table_covers_every_exported_error() -> None:
    exported = {getattr(errors, name) for name in errors.__all__}
    assert exported == set(ERROR_TABLE)
    assert all(issubclass(cls, PaywardenError) for cls in exported)


@pytest.mark.parametrize(
    ("cls", "expected"), list(ERROR_TABLE.items()), ids=lambda value: getattr(value, "__name__", "")
)
def test_each_error_has_its_status_type_and_code(
    cls: type[PaywardenError], expected: tuple[int, str, str]
) -> None:
    error = cls("something went wrong")
    assert (error.status, error.type, error.code) == expected
    assert error.to_wire() == {
        "type": expected[1],
        "code": expected[2],
        "message": "something went wrong",
        "param": None,
    }


def test_the_idempotency_errors_are_invalid_requests() -> None:
    for cls in (
        errors.IdempotencyKeyRequired,
        errors.IdempotencyConflict,
        errors.IdempotencyInFlight,
    ):
        assert issubclass(cls, InvalidRequest)


def test_an_error_carries_a_specific_code_param_and_retry_after() -> None:
    error = InvalidRequest("bad currency", code="unknown_currency", param="$.currency")
    assert error.to_wire() == {
        "type": "invalid_request_error",
        "code": "unknown_currency",
        "message": "bad currency",
        "param": "$.currency",
    }
    assert str(error) == "bad currency"
    assert "unknown_currency" in repr(error)
    assert errors.RateLimited("slow down", retry_after_s=3).retry_after_s == 3
    assert InvalidRequest("x").retry_after_s is None


# --- invariant --------------------------------------------------------------------------


def test_invariant_passes_when_true_and_raises_when_false() -> None:
    invariant(True, "never raised")
    with pytest.raises(InvariantViolation, match="money vanished") as caught:
        invariant(False, "money vanished")
    assert caught.value.code == "invariant_violation"


def test_invariant_still_raises_under_python_optimisation() -> None:
    program = textwrap.dedent(
        """
        import sys
        from paywarden.kernel.errors import InvariantViolation
        from paywarden.kernel.invariant import invariant
        from paywarden.payments.ledger import Posting, check_balanced

        assert sys.flags.optimize == 1, "not optimised"
        assert False, "asserts must be stripped under -O"
        for check in (
            lambda: invariant(False, "still here"),
            lambda: check_balanced([Posting("acct_a", -1, "usd"), Posting("acct_b", 2, "usd")]),
        ):
            try:
                check()
            except InvariantViolation:
                continue
            sys.exit("invariant did not raise under -O")
        print("raised under -O")
        """
    )
    result = subprocess.run(
        [sys.executable, "-O", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "raised under -O"


# --- clock ------------------------------------------------------------------------------


def test_a_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(NOW)
    assert clock.now() == NOW
    assert clock.now() == NOW
    clock.advance(timedelta(seconds=90))
    assert clock.now() == NOW + timedelta(seconds=90)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert clock.now() == datetime(2027, 1, 1, tzinfo=UTC)


def test_a_fake_clock_refuses_naive_instants_and_keeps_utc() -> None:
    with pytest.raises(ValueError, match="naive"):
        FakeClock(datetime(2026, 11, 29, 9, 0))
    clock = FakeClock(NOW)
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2026, 11, 29, 9, 0))
    clock.set(datetime(2026, 11, 29, 10, 0, tzinfo=timezone(timedelta(hours=1))))
    assert clock.now() == NOW
    assert clock.now().tzinfo is UTC


def test_ensure_utc_converts_aware_instants_and_refuses_naive_ones() -> None:
    paris = datetime(2026, 11, 29, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert ensure_utc(paris) == NOW
    assert ensure_utc(paris).tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        ensure_utc(datetime(2026, 11, 29, 9, 0))


@pytest.mark.parametrize(
    ("instant", "text"),
    [
        (datetime(2026, 11, 29, 2, 4, 57, 123_456, tzinfo=UTC), "2026-11-29T02:04:57.123Z"),
        (datetime(2026, 11, 29, 2, 4, 57, tzinfo=UTC), "2026-11-29T02:04:57.000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC), "2026-01-02T03:04:05.999Z"),
        (
            datetime(2026, 11, 29, 3, 4, 57, 1_000, tzinfo=timezone(timedelta(hours=1))),
            "2026-11-29T02:04:57.001Z",
        ),
    ],
)
def test_rfc3339_writes_milliseconds_in_utc(instant: datetime, text: str) -> None:
    assert rfc3339(instant) == text


def test_rfc3339_refuses_naive_instants() -> None:
    with pytest.raises(ValueError, match="naive"):
        rfc3339(datetime(2026, 11, 29))


# --- events -----------------------------------------------------------------------------

EVENT_NAME = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")


def test_every_event_is_named_resource_dot_action_and_described() -> None:
    for name, description in EVENT_TYPES.items():
        assert EVENT_NAME.match(name), name
        assert description.strip(), name


def test_the_event_list_matches_docs_events_md() -> None:
    path = REPO / "docs" / "events.md"
    if not path.is_file():
        pytest.skip("docs/events.md does not exist yet: nothing to compare EVENT_TYPES with")
    # The list is the table whose rows start with a backticked name: | `user.created` | … |.
    # Prose mentions (`resource.action`, `data.object`) are not events.
    documented = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", path.read_text("utf-8"), re.MULTILINE))
    assert documented, "docs/events.md has no table of events"
    assert sorted(documented - set(EVENT_TYPES)) == [], "documented but not emitted"
    assert sorted(set(EVENT_TYPES) - documented) == [], "emitted but not documented"


# --- the sandbox rail -------------------------------------------------------------------


def charge(
    number: str, exp_month: int = 12, exp_year: int = 2099, key: bytes = TOKEN_KEY
) -> CardResult:
    return authorize_card(number, exp_month, exp_year, NOW, key)


@pytest.mark.parametrize(
    ("number", "decline_code"),
    [
        ("4242424242424242", None),
        ("4000000000000002", "card_declined"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
        ("4000000000000119", "processing_error"),
    ],
)
def test_each_magic_card_has_its_outcome(number: str, decline_code: str | None) -> None:
    result = charge(number)
    assert result.approved is (decline_code is None)
    assert result.decline_code == decline_code
    assert result.last4 == number[-4:]
    assert result.brand == "visa"


def test_any_other_luhn_valid_number_succeeds() -> None:
    assert charge("4111111111111111").approved
    assert charge("5555555555554444").approved


def test_spaces_and_dashes_in_a_card_number_are_ignored() -> None:
    plain = charge("4000000000000002")
    for spelled in ("4000 0000 0000 0002", "4000-0000-0000-0002"):
        assert charge(spelled) == plain


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4242424242424242", True),
        ("79927398713", True),
        ("0", True),
        ("4242424242424241", False),
        ("79927398710", False),
        ("1", False),
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    "number",
    [
        "4242424242424241",  # fails its check digit
        "42424242424",  # 11 digits
        "42424242424242424242",  # 20 digits
        "4242x24242424242",
        "",
        "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢",  # Arabic-Indic digits are digits, but not ASCII
    ],
)
def test_a_malformed_card_number_is_an_invalid_request(number: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        charge(number)
    assert caught.value.code == "invalid_card_number"
    assert caught.value.param == "$.card.number"


@pytest.mark.parametrize(
    ("exp_month", "exp_year", "code"),
    [
        (0, 2099, "invalid_expiry_month"),
        (13, 2099, "invalid_expiry_month"),
        (12, 99, "invalid_expiry_year"),
        (12, 2201, "invalid_expiry_year"),
    ],
)
def test_a_malformed_expiry_is_an_invalid_request(exp_month: int, exp_year: int, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        charge("4242424242424242", exp_month, exp_year)
    assert caught.value.code == code


def test_a_card_that_expired_last_month_is_declined_as_expired() -> None:
    last_month = charge("4242424242424242", exp_month=10, exp_year=2026)
    assert (last_month.approved, last_month.decline_code) == (False, "expired_card")
    last_year = charge("4242424242424242", exp_month=12, exp_year=2025)
    assert last_year.decline_code == "expired_card"


def test_a_card_expiring_this_month_still_works() -> None:
    assert charge("4242424242424242", exp_month=11, exp_year=2026).approved


def test_a_magic_decline_wins_over_an_expired_date() -> None:
    assert charge("4000000000009995", exp_month=1, exp_year=2020).decline_code == (
        "insufficient_funds"
    )


def test_the_card_token_is_stable_per_key_and_reveals_nothing() -> None:
    number = "4242424242424242"
    first, again = charge(number), charge(number)
    assert first.token == again.token
    assert re.fullmatch(r"tok_[0-9a-f]{24}", first.token)
    assert charge(number, key=b"another key").token != first.token
    assert charge("4111111111111111").token != first.token
    assert charge("4242 4242 4242 4242").token == first.token
    for result in (first, charge("4000000000000002")):
        assert number not in result.token
        assert "4000000000000002" not in result.token
        assert number not in repr(result)
        assert "4000000000000002" not in repr(result)


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", "visa"),
        ("5555555555554444", "mastercard"),
        ("5105105105105100", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("371449635398431", "amex"),
        ("6200000000000005", "unionpay"),
        ("6011111111111117", "discover"),
        ("3056930009020004", "unknown"),
    ],
)
def test_the_brand_comes_from_the_leading_digits(number: str, brand: str) -> None:
    assert luhn_valid(number), "test data must pass Luhn"
    assert charge(number).brand == brand


# --- settings ---------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No PAYWARDEN_* setting leaks in from the environment that runs the tests."""
    for name in [*Settings.model_fields, "config"]:
        monkeypatch.delenv(f"PAYWARDEN_{name.upper()}", raising=False)
    return monkeypatch


def test_settings_have_safe_defaults(clean_env: pytest.MonkeyPatch) -> None:
    loaded = Settings()
    assert loaded.database_url == "sqlite:///paywarden-data/paywarden.db"
    assert (loaded.host, loaded.port) == ("127.0.0.1", 8000)
    assert loaded.idempotency_retention_h == 24
    assert loaded.sqlite_synchronous == "FULL"
    assert loaded.config_file is None


def test_environment_variables_override_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PAYWARDEN_PORT", "9100")
    clean_env.setenv("PAYWARDEN_DATABASE_URL", "postgresql://pw@db:5432/pw")
    clean_env.setenv("PAYWARDEN_IDEMPOTENCY_RETENTION_H", "48")
    loaded = Settings()
    assert loaded.port == 9100
    assert loaded.database_url == "postgresql://pw@db:5432/pw"
    assert loaded.idempotency_retention_h == 48


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "paywarden.toml"
    path.write_text(textwrap.dedent(text), "utf-8")
    return path


def test_a_toml_file_named_by_paywarden_config_is_read(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_toml(
        tmp_path,
        """
        database_url = "sqlite:///data/from-toml.db"
        port = 8100
        log_level = "debug"
        """,
    )
    clean_env.setenv("PAYWARDEN_CONFIG", str(path))
    loaded = Settings()
    assert loaded.database_url == "sqlite:///data/from-toml.db"
    assert loaded.port == 8100
    assert loaded.log_level == "debug"


def test_the_environment_wins_over_the_toml_file(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_toml(tmp_path, 'port = 8100\nhost = "0.0.0.0"\n')
    clean_env.setenv("PAYWARDEN_CONFIG", str(path))
    clean_env.setenv("PAYWARDEN_PORT", "8200")
    loaded = Settings()
    assert loaded.port == 8200
    assert loaded.host == "0.0.0.0"


def test_load_settings_reads_the_file_it_is_given_and_records_it(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_toml(tmp_path, "port = 8300\n")
    # load_settings exports PAYWARDEN_CONFIG; set it through monkeypatch so it is undone.
    clean_env.setenv("PAYWARDEN_CONFIG", "")
    loaded = load_settings(path, host="10.0.0.1", port=None)
    assert loaded.port == 8300
    assert loaded.host == "10.0.0.1"
    assert loaded.config_file == path
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.toml")


def test_a_retention_shorter_than_a_day_is_refused(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="idempotency_retention_h"):
        Settings(idempotency_retention_h=23)
    clean_env.setenv("PAYWARDEN_IDEMPOTENCY_RETENTION_H", "23")
    with pytest.raises(ValidationError, match="idempotency_retention_h"):
        Settings()
    clean_env.delenv("PAYWARDEN_IDEMPOTENCY_RETENTION_H")
    clean_env.setenv("PAYWARDEN_CONFIG", str(write_toml(tmp_path, "idempotency_retention_h = 1\n")))
    with pytest.raises(ValidationError, match="idempotency_retention_h"):
        Settings()


def test_an_unknown_key_in_the_toml_file_is_refused(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("PAYWARDEN_CONFIG", str(write_toml(tmp_path, "databse_url = 'typo'\n")))
    with pytest.raises(ValidationError, match="databse_url"):
        Settings()
