"""schemathesis hooks of `.ci/contract`: generated data that also follows the API's data rules.

Some rules of the API are about data, not shapes, and OpenAPI cannot state them: a referenced row must exist
(and, at pickup and return, belong to the order), a rental period ends after it starts, lasts at most 366 days
and (for a booking) does not start in the past, an availability window gives both bounds or neither. A schema-valid request that breaks one is rightly refused
(400/422), so `positive_data_acceptance` would call the refusal a failure. schemathesis' documented answer is to
extend the generators: the hooks below rewrite POSITIVE cases (schema-valid by construction) so that they also
follow those rules, and keep them schema-valid (an id stays a UUID, a date-time a date-time).

NEGATIVE cases are never touched: `negative_data_rejection` must still see the server refuse bad input as
generated. Cases without metadata are left alone too (no check can tell what they were meant to be).

Whole cases are rewritten rather than bodies or queries (`map_body`, `map_query`) because only a case knows its
generation mode. schemathesis 4.32 applies `map_case` to the Coverage phase's cases (`CoverageGenerator`, which
does not apply body values from the config's `parameters`) and to the strategies of the Fuzzing and Stateful
phases (`APIOperation.as_strategy`); the Examples phase builds its cases without it, and hands them to
`before_add_examples` instead. Both hooks below apply the same rules.

The ids come from the data `.ci/contract` creates before the run (the CONTRACT_* variables it exports), or, for
the lines and units of an order, from reading that order on the server under test; future periods start a day
from now or later. `.ci/schemathesis.toml` loads this file through its `hooks` setting.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import schemathesis


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run schemathesis through .ci/contract, which seeds it")
    return value


CATEGORY_ID = _required("CONTRACT_CATEGORY_ID")
CUSTOMER_ID = _required("CONTRACT_CUSTOMER_ID")
PRODUCT_ID = _required("CONTRACT_PRODUCT_ID")
LOCATION_ID = _required("CONTRACT_LOCATION_ID")
# The server under test and the administrator's token, to read an order that a case is about.
BASE_URL = _required("CONTRACT_BASE_URL")
TOKEN = _required("CONTRACT_TOKEN")

# The webhook secret the server under test checks `Stripe-Signature` with, and the Stripe API version its events
# must be rendered in (rental_payments::API_VERSION).
WEBHOOK_SECRET = _required("CONTRACT_WEBHOOK_SECRET")
STRIPE_API_VERSION = _required("CONTRACT_STRIPE_API_VERSION")

# The longest period the API takes (`MAX_RENTAL_DAYS`, `AVAILABILITY_WINDOW_MAX_DAYS`).
MAX_PERIOD = timedelta(days=366)
# The length given to a period whose generated length is empty or inverted (too long becomes MAX_PERIOD).
DEFAULT_LENGTH = timedelta(days=1)
# The first and last instants an RFC 3339 date-time (four-digit year) can name.
FIRST_INSTANT = datetime(1, 1, 1, tzinfo=timezone.utc)
LAST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def _parse(value: Any) -> datetime | None:
    """An RFC 3339 date-time in UTC (to the microsecond); None for anything else, such as a leap second or an
    instant before year 1, which Python cannot hold: such a value is left as generated."""
    if not isinstance(value, str):
        return None
    m = _RFC3339.match(value)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = m.groups()
    if zulu:
        tz = timezone.utc
    else:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if offset >= timedelta(days=1):
            return None
        tz = timezone(-offset if sign == "-" else offset)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        at = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
        return at.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


def _format(at: datetime) -> str:
    """RFC 3339 in UTC, with microseconds when there are any (`at` is in UTC)."""
    text = f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:{at.second:02d}"
    if at.microsecond:
        text += f".{at.microsecond:06d}"
    return f"{text}Z"


def _length(start: datetime, end: datetime) -> timedelta:
    """The generated length when the rules allow it, else the nearest allowed one."""
    length = end - start
    if length <= timedelta(0):
        return DEFAULT_LENGTH
    return min(length, MAX_PERIOD)


def _window(start_text: Any, end_text: Any) -> tuple[str, str] | None:
    """A window `[start, end)` in order and at most 366 days long, moving only what must move: `start` is kept
    (a window may lie in the past), `end` is put at the nearest allowed length. None when a bound is not an
    RFC 3339 date-time Python can read, or when nothing needs to change."""
    start, end = _parse(start_text), _parse(end_text)
    if start is None or end is None or _length(start, end) == end - start:
        return None
    length = _length(start, end)
    if start > LAST_INSTANT - length:
        # The end would need a five-digit year: keep the end, move the start back instead.
        return _format(LAST_INSTANT - length), _format(LAST_INSTANT)
    return start_text, _format(start + length)


def _future_period(start_text: Any, end_text: Any, anchor: datetime) -> tuple[str, str] | None:
    """A booking period: in order, at most 366 days long, starting no earlier than `anchor` (an earlier start is
    moved after it, keeping the generated length where allowed). None when a bound is not readable or nothing
    needs to change."""
    start, end = _parse(start_text), _parse(end_text)
    if start is None or end is None:
        return None
    length = _length(start, end)
    if start >= anchor and length == end - start:
        return None
    if start < anchor:
        start = _moved_start(start, anchor)
    start = min(start, LAST_INSTANT - length)
    return _format(start), _format(start + length)


def _anchor() -> datetime:
    """The earliest start given to a booking: a day from now, so that the period is still ahead of the server's
    clock (it allows a minute of skew) when the request arrives."""
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1)


# A start in the past is moved to `_anchor()` plus its own position in a cycle of this length, so that different
# generated periods stay different bookings instead of all competing for the same day.
SPREAD = timedelta(days=300)


def _moved_start(start: datetime, anchor: datetime) -> datetime:
    return anchor + timedelta(seconds=int(start.timestamp()) % int(SPREAD.total_seconds()))


def _get(path: str) -> Any:
    """The JSON answer of `GET /api/v1{path}` on the server under test, as the administrator; None on any error
    status (such as 404 for a generated id) or failure."""
    request = urllib.request.Request(f"{BASE_URL}/api/v1{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _order_lines(order_id: Any) -> list[dict[str, Any]] | None:
    """The lines of the order `order_id` as the server shows them (ids, quantities, units handed out); None when
    there is no such order (a generated id): the case is then left as generated and answered 404."""
    if not isinstance(order_id, str):
        return None
    order = _get(f"/rentals/{urllib.parse.quote(order_id, safe='')}")
    lines = order.get("lines") if isinstance(order, dict) else None
    return lines if isinstance(lines, list) and lines else None


def _is_active(path: str) -> bool:
    found = _get(path)
    return isinstance(found, dict) and found.get("is_active") is True


def _bookable_product() -> str | None:
    """The seeded product while it is active; else another active product. Other operations of the run may
    deactivate the seeded one (PATCH /products/{id} with `is_active: false` is a valid request too)."""
    if _is_active(f"/products/{PRODUCT_ID}"):
        return PRODUCT_ID
    page = _get("/products?is_active=true&limit=1")
    items = page.get("items") if isinstance(page, dict) else None
    return items[0].get("id") if isinstance(items, list) and items and isinstance(items[0], dict) else None


# The rule of each operation, applied to its positive cases by the two hooks at the end: a function that
# rewrites the case in place.
RULES: dict[str, Callable[[schemathesis.Case], None]] = {}


def rule(label: str) -> Callable[[Callable[[schemathesis.Case], None]], Callable[[schemathesis.Case], None]]:
    def register(fix: Callable[[schemathesis.Case], None]) -> Callable[[schemathesis.Case], None]:
        RULES[label] = fix
        return fix

    return register


@rule("POST /api/v1/products")
@rule("PATCH /api/v1/products/{id}")
def existing_category(case: schemathesis.Case) -> None:
    """A product belongs to a category that exists (else 422 `no such category`); PATCH may leave it out (null
    or absent), which stays as generated."""
    if isinstance(case.body, dict) and case.body.get("category_id") is not None:
        case.body["category_id"] = CATEGORY_ID


@rule("POST /api/v1/products/{id}/units")
def existing_location(case: schemathesis.Case) -> None:
    """A unit is kept at a location that exists (else 422 `no such location`)."""
    if isinstance(case.body, dict):
        for unit in case.body.get("units") or []:
            if isinstance(unit, dict) and unit.get("location_id") is not None:
                unit["location_id"] = LOCATION_ID


@rule("POST /api/v1/rentals")
def bookable_rental(case: schemathesis.Case) -> None:
    """A rental is for an active customer; each line names an active product, over a future period in order and
    at most 366 days long (else 422). A `customer_id` of null (the caller rents for themselves) stays
    null. The quantity is kept: more than the stock is a 409 `unavailable`, which is an accepted answer."""
    if not isinstance(case.body, dict):
        return
    if case.body.get("customer_id") is not None:
        # Another operation of the run may have deactivated the seeded customer; the caller then rents for
        # themselves (null), which is what the field being optional means.
        case.body["customer_id"] = CUSTOMER_ID if _is_active(f"/users/{CUSTOMER_ID}") else None
    anchor = _anchor()
    product_id = _bookable_product()
    for line in case.body.get("lines") or []:
        if not isinstance(line, dict):
            continue
        if "product_id" in line and product_id is not None:
            line["product_id"] = product_id
        period = _future_period(line.get("start"), line.get("end"), anchor)
        if period is not None:
            line["start"], line["end"] = period


@rule("POST /api/v1/rentals/{id}/pickup")
def lines_of_the_order(case: schemathesis.Case) -> None:
    """Units are handed out for lines of this order (else 422 `names a line that is not in this order`), and the
    units named must be free units of the line's product over its period (else 422). The generator cannot know
    which units are free, so each named line becomes a line of the order, with no unit named: the server then
    picks free units itself, as the schema describes. Reached when the Stateful phase follows a created order."""
    if not (isinstance(case.body, dict) and isinstance(case.body.get("units"), list) and case.body["units"]):
        return
    lines = _order_lines((case.path_parameters or {}).get("id"))
    if lines is None:
        return
    for index, entry in enumerate(case.body["units"]):
        if isinstance(entry, dict):
            entry["line_id"] = lines[index % len(lines)]["id"]
            entry["unit_ids"] = []


@rule("POST /api/v1/rentals/{id}/return")
def units_of_the_order(case: schemathesis.Case) -> None:
    """The units returned are units handed out with this order (else 422 `was not handed out with this order`):
    each named unit becomes one of them in turn, and none is named when the order handed out none (bulk stock
    only). Reached when the Stateful phase follows a created order."""
    if not (isinstance(case.body, dict) and isinstance(case.body.get("units"), list) and case.body["units"]):
        return
    lines = _order_lines((case.path_parameters or {}).get("id"))
    if lines is None:
        return
    handed_out = [unit["unit_id"] for line in lines for unit in line.get("units") or []]
    if not handed_out:
        case.body["units"] = []
        return
    for index, entry in enumerate(case.body["units"]):
        if isinstance(entry, dict):
            entry["unit_id"] = handed_out[index % len(handed_out)]


@rule("POST /api/v1/units/{id}/maintenance")
def future_maintenance(case: schemathesis.Case) -> None:
    """A maintenance block is a booking of the unit: a future period in order, at most 366 days long (else 422).
    The unit's id comes from `.ci/schemathesis.toml` (path parameters are applied in every phase)."""
    if isinstance(case.body, dict):
        period = _future_period(case.body.get("start"), case.body.get("end"), _anchor())
        if period is not None:
            case.body["start"], case.body["end"] = period


@rule("GET /api/v1/products/{id}/availability")
def ordered_availability_period(case: schemathesis.Case) -> None:
    """The period asked about is a prospective rental's: `to` after `from`, at most 366 days later (else 422;
    a past period is allowed)."""
    if isinstance(case.query, dict):
        window = _window(case.query.get("from"), case.query.get("to"))
        if window is not None:
            case.query["from"], case.query["to"] = window


@rule("GET /api/v1/products")
def complete_availability_window(case: schemathesis.Case) -> None:
    """`available_from` and `available_to` go together, the second after the first and at most 366 days later
    (else 400 naming the parameter). A bound given alone gets its partner a day away, so that the case still
    exercises the availability filter rather than dropping it."""
    if not isinstance(case.query, dict):
        return
    query = case.query
    start, end = query.get("available_from"), query.get("available_to")
    if start is not None and end is None and (at := _parse(start)) is not None:
        if at > LAST_INSTANT - DEFAULT_LENGTH:
            query["available_from"] = _format(LAST_INSTANT - DEFAULT_LENGTH)
            query["available_to"] = _format(LAST_INSTANT)
        else:
            query["available_to"] = _format(at + DEFAULT_LENGTH)
    elif end is not None and start is None and (at := _parse(end)) is not None:
        if at < FIRST_INSTANT + DEFAULT_LENGTH:
            query["available_from"] = _format(FIRST_INSTANT)
            query["available_to"] = _format(FIRST_INSTANT + DEFAULT_LENGTH)
        else:
            query["available_from"] = _format(at - DEFAULT_LENGTH)
    else:
        window = _window(start, end)
        if window is not None:
            query["available_from"], query["available_to"] = window


@rule("POST /api/v1/payments/webhook")
def signed_event(case: schemathesis.Case) -> None:
    """A delivery is valid only when Stripe signed it: `Stripe-Signature` carries an HMAC-SHA256 of the exact body
    under the endpoint's secret, which no generator can produce (without it: 400). A positive case becomes an
    event of a type the server records and ignores, with an id of its own, in the API version the server reads,
    signed here as Stripe signs (`t=<unix seconds>,v1=<hex HMAC of "t.body">`) over the bytes schemathesis sends
    (its JSON serialisation is `json.dumps` with the default separators)."""
    event = {
        "id": f"evt_contract_{uuid.uuid4().hex}",
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "contract.ping",
        "data": {"object": {"id": "contract", "object": "contract"}},
    }
    case.body = event
    at = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{at}.{json.dumps(event)}".encode(), hashlib.sha256).hexdigest()
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "stripe-signature"}
    headers["Stripe-Signature"] = f"t={at},v1={digest}"
    case.headers = headers


def _fresh_idempotency_key(case: schemathesis.Case) -> None:
    """An `Idempotency-Key` names one request: the same key with another body is a 422 `idempotency_mismatch`,
    which the generator, reusing short strings across cases, would run into. A positive case that sends the
    header gets a key of its own (a UUID: printable ASCII, within the schema's pattern and length)."""
    headers = case.headers
    if not headers:
        return
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = str(uuid.uuid4())


def _follow_rules(ctx: schemathesis.HookContext, case: schemathesis.Case) -> None:
    """Applies the operation's rule to a positive case; a negative one is left as generated."""
    fix = RULES.get(ctx.operation.label) if ctx.operation is not None else None
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive:
        _fresh_idempotency_key(case)
        if fix is not None:
            fix(case)


@schemathesis.hook
def map_case(ctx: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """Coverage, Fuzzing and Stateful phases."""
    _follow_rules(ctx, case)
    return case


@schemathesis.hook
def before_add_examples(ctx: schemathesis.HookContext, examples: list[schemathesis.Case]) -> None:
    """Examples phase: the schema's examples, completed by generated values (such as a random `category_id`)."""
    for case in examples:
        _follow_rules(ctx, case)
