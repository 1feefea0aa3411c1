r"""Final-answer extraction from free-form model output.

Small models rarely follow the requested format exactly, so extraction tries, in order
of how explicit the answer is:

1. the last ``\boxed{...}`` (braces balanced; ``\fbox`` too) holding a number, an
   "= N", or exactly one number;
2. the last "answer is N" / "answer: N" / "answer is actually N" / "N is the answer";
3. the last "= N", "equals N", "is equal to N" or "<a op b> is N";
4. a response that is nothing but a number (e.g. "170").

In rules 2 and 3 N must not be followed by an operator, so "the answer is 7 * 8 = 56"
gives 56, not 7. There is deliberately no "last number anywhere" fallback: in rambling
text some number eventually matches the reference by chance, and with n = 16 samples
that chance inflates pass@16 (opt in with ``last_number=True``).

Numbers may carry thousands separators (``1,234``), a sign, a decimal part, a ``$``,
LaTeX braces or a trailing period; :func:`normalize_number` maps them to one canonical
string so that answers compare as strings.

>>> extract_number(r"so 7 \times 8 = \boxed{56}.")
('56', 'boxed')
>>> extract_number("The answer is 1,234.")
('1234', 'answer_phrase')
>>> extract_number("7*8 = 56. Done")
('56', 'equals')
>>> extract_number("I have 12 apples and 3 pears")
(None, 'none')
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# a number: thousands-grouped or plain, optional sign and decimals
NUMBER = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER_RE = re.compile(rf"(?<![\w.]){NUMBER}(?![\w])")
# the whole number was matched (no backtracking to a prefix of it) and no operator follows
_NUMBER_END = r"(?![\d])(?![.,]\d)(?!\s*(?:[*×x/÷^+\-−]\s*\d|\\times|\\cdot|\\div))"
_OPEN = r"(?:\*\*|\$|\\\(|\\\[)?"
_ANSWER_RE = re.compile(
    rf"answer\s*(?:is|:|=)\s*[:=]?\s*(?:actually\s+|indeed\s+|simply\s+|just\s+)?{_OPEN}\s*"
    rf"({NUMBER}){_NUMBER_END}"
    rf"|(?<![\w.])({NUMBER}){_NUMBER_END}\s*(?:\*\*|\$)?\s*is\s+the\s+(?:final\s+)?answer",
    re.IGNORECASE,
)
# "= N", "equals N", "is equal to N", and "<a op b ...> is N" ("7 * 2 is 14")
_EQUALS_RE = re.compile(
    rf"(?:=|\bequals\b|\bis\s+equal\s+to\b|\d\s*[*×x+\-−/]\s*\d+\s+is\b)\s*{_OPEN}\s*"
    rf"({NUMBER}){_NUMBER_END}",
    re.IGNORECASE,
)
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


def _from_boxed(content: str) -> str | None:
    value = normalize_number(content)
    if value is not None:
        return value
    eq = _EQUALS_RE.findall(content)
    if eq:
        return normalize_number(eq[-1])
    found = _NUMBER_RE.findall(content)
    return normalize_number(found[0]) if len(found) == 1 else None


def _last_match(regex: re.Pattern[str], text: str) -> str | None:
    for groups in reversed(regex.findall(text)):
        for g in groups if isinstance(groups, tuple) else (groups,):
            if g and (value := normalize_number(g)) is not None:
                return value
    return None


def extract_number(text: str, *, last_number: bool = False) -> tuple[str | None, str]:
    """The final numeric answer (normalised) and the rule that found it.

    The rule is one of ``boxed``, ``answer_phrase``, ``equals``, ``bare``,
    ``last_number`` (only with ``last_number=True``) or ``none``.
    """
    boxed = last_boxed(text)
    if boxed is not None and (value := _from_boxed(boxed)) is not None:
        return value, "boxed"
    for rule, regex in (("answer_phrase", _ANSWER_RE), ("equals", _EQUALS_RE)):
        if (value := _last_match(regex, text)) is not None:
            return value, rule
    if (value := normalize_number(text)) is not None:
        return value, "bare"
    if last_number and (value := _last_number(text)) is not None:
        return value, "last_number"
    return None, "none"


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
