"""``-m conntrack`` (libxt_conntrack revision 3, as 1.8.9 uses it) and ``-m state``.

Values (what the BPF backend compiles; names are the kernel's):
- ``ctstate`` / ``state``: frozenset of state names from CT_STATES
  (INVALID, NEW, RELATED, ESTABLISHED, UNTRACKED; conntrack also SNAT, DNAT).
- ``ctstatus``: frozenset of IPS_* names from CT_STATUSES (empty = NONE, i.e.
  the status word has none of these bits).
- ``ctproto``: int, the original-direction layer-4 protocol (0 = any).
- ``ctorigsrc`` ... ``ctrepldst``: ``HostMask`` (address as written + prefix
  length; the kernel compares ``addr & mask``).
- ``ctorigsrcport`` ... ``ctrepldstport``: ``PortRange``; 1.8.9 keeps ``lo > hi``
  as given (such a range never matches).
- ``ctexpire``: ``NumRange`` of remaining seconds (``lo > hi`` kept, as 1.8.9).
- ``ctdir``: "ORIGINAL" or "REPLY".
Every option but ``ctdir`` may be negated.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.options import parse_keyword_list
from bpfilter.frontend.extensions.types import (
    UINT32_MAX,
    NumRange,
    PortRange,
    parse_mint,
    parse_mport,
)
from bpfilter.frontend.netparse import HostMask, format_hostmask, parse_hostmask, parse_protocol
from bpfilter.ir import Option

# Parse order (first abbreviation wins) and print order differ, as in libxt_conntrack.
CT_STATES_PARSE = ("INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED", "SNAT", "DNAT")
CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")
STATE_STATES = CT_STATES[:5]
CT_STATUSES = ("EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED")
_STATUS_PARSE = ("NONE", *CT_STATUSES)

ADDR_OPTS = ("ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst")
PORT_OPTS = ("ctorigsrcport", "ctorigdstport", "ctreplsrcport", "ctrepldstport")


def _states(args: Sequence[str], ctx: ParseContext) -> frozenset[str]:
    return parse_keyword_list(args[0], CT_STATES_PARSE, "ctstate")


def _statuses(args: Sequence[str], ctx: ParseContext) -> frozenset[str]:
    return parse_keyword_list(args[0], _STATUS_PARSE, "ctstatus") - {"NONE"}


def _proto(args: Sequence[str], ctx: ParseContext) -> int:
    return parse_protocol(args[0])


def _addr(args: Sequence[str], ctx: ParseContext) -> HostMask:
    addr, mask = parse_hostmask(args[0], ctx.family, "conntrack", "ctorigsrc")
    return HostMask(addr, bin(int(mask)).count("1"))


def _port(args: Sequence[str], ctx: ParseContext) -> PortRange:
    r = parse_mport(args[0], "conntrack", "ctorigsrcport")
    return PortRange(r.lo, r.hi)


def _expire(args: Sequence[str], ctx: ParseContext) -> NumRange:
    vals = parse_mint(args[0], UINT32_MAX, "conntrack", "ctexpire")
    return NumRange(vals[0], vals[-1])


def _dir(args: Sequence[str], ctx: ParseContext) -> str:
    up = args[0].upper()
    if up not in ("ORIGINAL", "REPLY"):
        raise ExtensionError(f'Bad value for "--ctdir" option: "{args[0]}"')
    return up


def _names(values: frozenset[str], order: Sequence[str]) -> str:
    return ",".join(n for n in order if n in values)


@register
class ConntrackMatch(Extension):
    """Connection tracking state, status, tuple and timeout of the packet's flow."""

    name = "conntrack"
    kind = "match"
    options = (
        OptionSpec("ctstate", _states, invert=True),
        OptionSpec("ctproto", _proto, invert=True),
        *(OptionSpec(n, _addr, invert=True) for n in ADDR_OPTS),
        *(OptionSpec(n, _port, invert=True) for n in PORT_OPTS),
        OptionSpec("ctstatus", _statuses, invert=True),
        OptionSpec("ctexpire", _expire, invert=True),
        OptionSpec("ctdir", _dir),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError("conntrack: At least one option is required")
        inverted_status = False
        for o in options:  # 1.8.9 tests XT_INV_PROTO (0x40 = ctstatus) at --ctproto time
            if o.name == "ctstatus" and o.negated:
                inverted_status = True
            if o.name == "ctproto" and o.value == 0 and inverted_status:
                raise ExtensionError("conntrack: rule would never match protocol")
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        v = opt.value
        if opt.name == "ctstate":
            return _names(v, CT_STATES)
        if opt.name == "ctstatus":
            return _names(v, CT_STATUSES) or "NONE"
        if opt.name in ADDR_OPTS:
            return format_hostmask(v.addr, v.prefixlen)
        if opt.name in PORT_OPTS:
            return str(v.lo) if v.hi == 0 or v.lo == v.hi else f"{v.lo}:{v.hi}"
        if opt.name == "ctexpire":
            return str(v.lo) if v.lo == v.hi else f"{v.lo}:{v.hi}"
        return str(v)


def _state_states(args: Sequence[str], ctx: ParseContext) -> frozenset[str]:
    text = args[0]
    if text == "" or text.endswith(","):
        raise ExtensionError(
            '"--state" requires a list of states with no spaces, e.g. ESTABLISHED,RELATED'
        )
    return parse_keyword_list(text, ("INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED"),
                              "state")


@register
class StateMatch(Extension):
    """The older ``-m state``: conntrack states only (kernel xt_state)."""

    name = "state"
    kind = "match"
    options = (OptionSpec("state", _state_states, invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError('state: option "--state" must be specified')
        return super().finalize(options, ctx)

    def format_value(self, opt: Option) -> str:
        return _names(opt.value, STATE_STATES)
