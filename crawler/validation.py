"""Typing a product's raw values with its site profile: pure, no Scrapy.

:func:`validate` turns the raw strings a profile extracted into typed,
JSON-ready fields.  A *required* field that is missing or does not parse
rejects the product (:class:`Rejected`); an *optional* field that does not
parse is stored as ``None`` and reported (:class:`FieldWarning`), so one odd
value never costs the whole product.  Both name the field and the problem
(``"pid: not an integer"``) so that reasons group, and carry the offending
value separately.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from crawler.coercion import CoercionError, coerce
from crawler.scriptdata import marker_problem
from crawler.siteprofile import FieldSpec, SiteProfile

MISSING = "missing"


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field: ``problem`` is e.g. ``"missing"`` or ``"not a date"``."""

    field: str
    problem: str
    value: Any = None
    message: str = ""

    @property
    def reason(self) -> str:
        """``"<field>: <problem>"``: the same for every product with this problem."""
        return f"{self.field}: {self.problem}"

    @property
    def stat_key(self) -> str:
        """The problem as a stats key part: ``pid/not_an_integer``."""
        return f"{self.field}/{self.problem.replace(' ', '_').replace('/', '_')}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FieldWarning(Problem):
    """An optional field whose value was found but does not parse: stored as null."""


class Rejected(ValueError):  # noqa: N818 - reads as "raise Rejected(problem)"
    """The product is not valid: a required field is missing or does not parse."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(problem.reason)


@dataclass
class Validated:
    """A valid product: its key, typed fields and the warnings of its optional fields."""

    key: str
    fields: dict[str, Any]
    warnings: list[FieldWarning] = field(default_factory=list)


def coerce_field(spec: FieldSpec, raw: Any) -> Any:
    """The typed value of one field (raises :class:`~crawler.coercion.CoercionError`).

    A ``source = "script"`` field whose JSON could not be read on the page (a
    problem marker of :mod:`crawler.scriptdata`) raises with that problem
    (``malformed JSON``), so it is a warning or a rejection like any bad value.
    """
    problem = marker_problem(raw)
    if problem is not None:
        raise CoercionError(problem.text, problem.problem, f" ({problem.detail})" if problem.detail else "")
    return coerce(raw, spec.type, item_type=spec.item_type, date_format=spec.date_format, int_base=spec.int_base)


def validate(profile: SiteProfile, raw: dict[str, Any]) -> Validated:
    """Type every field of ``raw``; raise :class:`Rejected` for an invalid product."""
    fields: dict[str, Any] = {}
    warnings: list[FieldWarning] = []
    for spec in profile.fields:
        value_raw = raw.get(spec.name)
        try:
            value = coerce_field(spec, value_raw)
        except CoercionError as exc:
            problem = (spec.name, exc.problem, exc.value, f"{spec.name}: {exc}")
            if spec.required or spec.name == profile.key:
                raise Rejected(Problem(*problem)) from None
            warnings.append(FieldWarning(*problem))
            value = None
        if value is None and (spec.required or spec.name == profile.key):
            raise Rejected(Problem(spec.name, MISSING, value_raw, f"{spec.name}: missing (required)"))
        fields[spec.name] = value
    return Validated(str(fields[profile.key]), fields, warnings)
