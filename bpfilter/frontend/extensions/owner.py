"""``-m owner`` (xt_owner rev. 1): the local socket's owner.

Values: ``uid-owner``/``gid-owner`` are ``NumRange`` of ids (names resolved
through the passwd/group databases, as iptables does; ``a-b`` or ``a:b``
ranges; at most 2**32-2); ``socket-exists`` and ``suppl-groups`` flags.
``!`` inverts all but ``suppl-groups``, which needs ``--gid-owner`` first.
The kernel allows the match in OUTPUT and POSTROUTING only (it needs the
sending socket), and refuses reversed id ranges.
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import OUTPUT, POSTROUTING, KernelPlaced
from bpfilter.frontend.extensions.types import UINT32_MAX, NumRange, strtoui_prefix
from bpfilter.ir import Option


def _range(s: str, opt: str) -> NumRange:
    """libxt_owner owner_parse_range: ``a``, ``a-b`` or ``a:b`` (ids up to 2**32-2)."""
    bad = ExtensionError(f'owner: Bad value for "--{opt}" option: "{s}"')
    try:
        lo, rest = strtoui_prefix(s, 0, UINT32_MAX - 1)
        hi = lo
        if rest[:1] in ("-", ":"):
            hi, rest = strtoui_prefix(rest[1:], 0, UINT32_MAX - 1)
    except ValueError:
        raise bad from None
    if rest:
        raise bad
    return NumRange(lo, hi)


def _uid(args: Sequence[str], ctx: ParseContext) -> NumRange:
    try:
        uid = pwd.getpwnam(args[0]).pw_uid
        return NumRange(uid, uid)
    except KeyError:
        return _range(args[0], "uid-owner")


def _gid(args: Sequence[str], ctx: ParseContext) -> NumRange:
    try:
        gid = grp.getgrnam(args[0]).gr_gid
        return NumRange(gid, gid)
    except KeyError:
        return _range(args[0], "gid-owner")


@register
class OwnerMatch(KernelPlaced):
    """Socket owner match."""

    name = "owner"
    kind = "match"
    valid_hooks = frozenset({OUTPUT, POSTROUTING})
    options = (
        OptionSpec("socket-exists", invert=True),
        OptionSpec("uid-owner", _uid, invert=True),
        OptionSpec("gid-owner", _gid, invert=True),
        OptionSpec("suppl-groups", invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        seen: set[str] = set()
        for o in options:
            if o.name == "suppl-groups":
                if o.negated:
                    raise ExtensionError('owner: option "--suppl-groups" cannot be inverted.')
                if "gid-owner" not in seen:
                    raise ExtensionError(
                        'owner: Bad value for "--suppl-groups" option: '
                        '"you need to use --gid-owner first"'
                    )
            seen.add(o.name)
        if not seen & {"uid-owner", "gid-owner", "socket-exists"}:
            raise ExtensionError(
                "owner: At least one of --uid-owner, --gid-owner or --socket-exists is required"
            )
        for o in options:
            if isinstance(o.value, NumRange) and o.value.lo > o.value.hi:
                raise ExtensionError(f"owner: --{o.name} range {o.value.lo}-{o.value.hi} is "
                                     "reversed (kernel: Invalid argument)")
        self.check_placement(ctx)
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        r = opt.value
        return str(r.lo) if r.lo == r.hi else f"{r.lo}-{r.hi}"
