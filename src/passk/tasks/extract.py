r"""Final-answer extraction from free-form model output.

Small models rarely follow the requested format exactly, so extraction tries, in order
of how explicit the answer is:

1. the last ``\boxed{...}`` (braces balanced; ``\fbox`` too);
2. the last "answer is X" / "answer: X" / "Answer = X" (X a number not followed by an
   operator, so "the answer is 7 * 8 = 56" is not read as 7);
3. the number after the last "=" sign;
4. the last number anywhere in the text.

Numbers may carry thousands separators (``1,234``), a sign, a decimal part, a ``$``,
LaTeX braces or a trailing period; :func:`normalize_number` maps them to one canonical
string so that answers compare as strings.

>>> extract_number(r"so 7 \times 8 = \boxed{56}.")
('56', 'boxed')
>>> extract_number("The answer is 1,234.")
('1234', 'answer_phrase')
>>> extract_number("7*8 = 56. Done")
('56', 'equals')
>>> extract_number("no digits here")
(None, 'none')
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# a number: thousands-grouped or plain, optional sign and decimals
NUMBER = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER_RE = re.compile(rf"(?<![\w.]){NUMBER}(?![\w])")
_OPERATOR_AHEAD = r"(?!\s*(?:[*×x/÷^+\-−]\s*\d|\\times|\\cdot|\\div))"
_ANSWER_RE = re.compile(
    rf"answer\s*(?:is|:|=)\s*[:=]?\s*(?:\*\*|\$|\\\(|\\\[)?\s*({NUMBER}){_OPERATOR_AHEAD}",
    re.IGNORECASE,
)
_EQUALS_RE = re.compile(rf"=\s*(?:\*\*|\$|\\\(|\\\[)?\s*({NUMBER}){_OPERATOR_AHEAD}")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def normalize_number(text: str) -> str | None:
    """Canonical form of a number written by a model, or None if it is not one.

    >>> [normalize_number(s) for s in ["1,234", "+56.", "56.0", "$-3$", "{42}", "0.50", "x"]]
    ['1234', '56', '56', '-3', '42', '0.5', None]
    """
    s = text.strip().strip("$").strip()
    while s.startswith("{") and s.endswith("}"):
        s = s[1:-1].strip()
    s = s.replace("−", "-").replace(",", "").replace(" ", "").rstrip(".")
    s = s.removeprefix("+")
    if not re.fullmatch(r"-?\d+(?:\.\d+)?", s):
        return None
    try:
        value = Decimal(s)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}``, with nested braces balanced.

    >>> last_boxed(r"\boxed{1} then \boxed{\frac{1}{2}}")
    '\\frac{1}{2}'
    >>> last_boxed(r"\boxed{unclosed") is None
    True
    """
    starts = [m.end() for m in _BOXED_RE.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i]
    return None


def _last_number(text: str) -> str | None:
    found = _NUMBER_RE.findall(text)
    for candidate in reversed(found):
        value = normalize_number(candidate)
        if value is not None:
            return value
    return None


def extract_number(text: str) -> tuple[str | None, str]:
    """The final numeric answer (normalised) and the rule that found it.

    The rule is one of ``boxed``, ``answer_phrase``, ``equals``, ``last_number``, ``none``.
    """
    boxed = last_boxed(text)
    if boxed is not None:
        value = normalize_number(boxed)
        if value is None:  # e.g. \boxed{7 \times 8 = 56}
            eq = _EQUALS_RE.findall(boxed)
            value = normalize_number(eq[-1]) if eq else _last_number(boxed)
        if value is not None:
            return value, "boxed"
    for rule, regex in (("answer_phrase", _ANSWER_RE), ("equals", _EQUALS_RE)):
        matches = regex.findall(text)
        if matches:
            value = normalize_number(matches[-1])
            if value is not None:
                return value, rule
    value = _last_number(text)
    return (value, "last_number") if value is not None else (None, "none")


def numbers_equal(a: str | None, b: str | None) -> bool:
    """Numeric equality of two answers (after normalisation); None never equals anything.

    >>> numbers_equal("1,000", "1000.0"), numbers_equal("3", None)
    (True, False)
    """
    if a is None or b is None:
        return False
    na, nb = normalize_number(a), normalize_number(b)
    return na is not None and na == nb


_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_ANSWER_LINE_RE = re.compile(r"(?:final\s+)?answer\s*(?:is\s*:?|:)\s*(.+)", re.IGNORECASE)


def extract_free_answer(text: str) -> str | None:
    r"""A free-form final answer: last ``<answer>..</answer>``, else ``\boxed{}``, else the
    text after the last "answer is"/"answer:", else the last non-empty line.

    >>> extract_free_answer("think... <answer> cat </answer>")
    'cat'
    >>> extract_free_answer("So the final answer is: blue.")
    'blue'
    """
    tags = _ANSWER_TAG_RE.findall(text)
    if tags:
        return tags[-1].strip()
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    lines = _ANSWER_LINE_RE.findall(text)
    if lines:
        return lines[-1].strip().rstrip(".").strip() or None
    rest = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return rest[-1] if rest else None
