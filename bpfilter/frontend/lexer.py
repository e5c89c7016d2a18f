"""Split one iptables-restore line into argv words, as iptables 1.8.9 does.

Rules (xshared.c ``add_param_to_argv``): blanks (space, tab, newline) separate
words; a double quote opens a quoted part in which blanks are kept and a
backslash makes the next character literal; the closing quote ends the word
(even an empty one: ``""`` is an empty argument). Outside quotes backslashes
and single quotes are ordinary characters.
"""

from __future__ import annotations

import re

_BLANKS = re.compile(r"[ \t\n]+")
# A word with quotes and no backslash: text, then a quoted part up to its closing
# quote (which ends the word) or the end of the line; or plain text.
_QUOTED_WORD = re.compile(r'([^ \t\n"]*)"([^"]*)("?)|([^ \t\n"]+)')


def _quoted_words(line: str) -> list[str]:
    """split_line for a line with quotes but no backslash (no escapes to honour)."""
    words: list[str] = []
    for m in _QUOTED_WORD.finditer(line):
        plain = m.group(4)
        if plain is not None:
            words.append(plain)
            continue
        word = m.group(1) + m.group(2)
        if m.group(3) or word:  # a closed quote always makes a word, even ""
            words.append(word)
    return words


def split_line(line: str) -> list[str]:
    """The argv words of ``line`` (without the trailing newline)."""
    if '"' not in line:
        return [w for w in _BLANKS.split(line) if w]
    if "\\" not in line:
        return _quoted_words(line)
    words: list[str] = []
    buf: list[str] = []
    quote_open = escaped = False
    for ch in line:
        if quote_open:
            if escaped:
                buf.append(ch)
                escaped = False
                continue
            if ch == "\\":
                escaped = True
                continue
            if ch != '"':
                buf.append(ch)
                continue
            quote_open = False
            words.append("".join(buf))
            buf.clear()
            continue
        if ch == '"':
            quote_open = True
            continue
        if ch in " \t\n":
            if buf:
                words.append("".join(buf))
                buf.clear()
            continue
        buf.append(ch)
    if buf:
        words.append("".join(buf))
    return words


_NO_QUOTE = frozenset("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def save_string(value: str) -> str:
    """xtables_save_string: bare when only [A-Za-z0-9_-], else quoted with \\ " ' escaped."""
    if value and all(c in _NO_QUOTE for c in value):
        return value
    out = "".join("\\" + c if c in "\"\\'" else c for c in value)
    return f'"{out}"'
