"""Property: whatever text bpfilter-restore is fed, the parser answers with a Ruleset or a
RestoreError (a clean, line-numbered refusal), never another exception.

Why: a traceback from `bpfilter-restore` in a boot script is an outage without a
reason. Two generators: token soup built from iptables' own vocabulary (so the
parser gets deep, not just refused at the first word) and random mutations of
real rulesets (rules/ here, plus ../shared/corpus/real when present).
Bounded examples, no deadline: fast and deterministic enough for every run.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family, Ruleset

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "../shared/corpus/real"
MAX_SEED_BYTES = 16_000  # keep each example fast


def _seeds() -> list[tuple[str, Family]]:
    paths = sorted((REPO / "rules").glob("*"))
    if CORPUS.is_dir():
        paths += sorted(p for p in CORPUS.iterdir() if p.stat().st_size <= MAX_SEED_BYTES)
    out = []
    for p in paths:
        if p.is_file():
            fam = Family.IPV6 if "6" in p.suffix or p.name.endswith("6.rules") else Family.IPV4
            out.append((p.read_text(errors="surrogateescape"), fam))
    return out


SEEDS = _seeds()

VOCAB = """
*filter *nat *mangle *raw *security *bogus COMMIT :INPUT :FORWARD :OUTPUT :PREROUTING
:POSTROUTING :c1 :c2 ACCEPT DROP RETURN - [0:0] [1:2] [ ] -A -I -D -R -N -X -F -Z -P -E
-C -L -S INPUT FORWARD OUTPUT c1 c2 -s -d ! -p tcp udp icmp all -i -o eth0 eth+ -j -g -m
--dport --sport --dports 22 1:65535 65536 -1 0x10 10.0.0.0/8 1.2.3.4 ::1 fe80::/10
256.1.1.1 /33 multiport comment --comment conntrack --ctstate NEW,ESTABLISHED state
--state limit --limit 5/sec --limit-burst tcp --tcp-flags SYN,ACK SYN --syn icmp
--icmp-type 8 echo-request LOG --log-prefix REJECT --reject-with tcp-reset MARK
--set-mark 0x1/0xff mark --mark set --match-set s src DNAT --to-destination 1.2.3.4:80
MASQUERADE -f -4 -6 -c --set-counters -w -t -h -V -- -m recent hashlimit
--hashlimit-name string --algo bm
""".split() + ['"a b"', "'x'", '#', '\\', '"', '\t', '\x00', 'ÿ', 'é']


@st.composite
def token_soup(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.lists(st.sampled_from(VOCAB) | st.text(max_size=6), max_size=12),
                          max_size=25))
    text = "\n".join(" ".join(words) for words in lines)
    return text + draw(st.sampled_from(["", "\n", "\nCOMMIT\n"]))


@st.composite
def mutated_ruleset(draw: st.DrawFn) -> tuple[str, Family]:
    text, fam = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "dup-line", "drop-line", "truncate",
                                     "swap-words", "replace-word"]))
        n = len(text)
        i = draw(st.integers(0, max(n - 1, 0)))
        lines = text.split("\n")
        k = draw(st.integers(0, max(len(lines) - 1, 0)))
        if kind == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 40)):]
        elif kind == "insert":
            text = text[:i] + draw(st.sampled_from(VOCAB) | st.text(max_size=8)) + text[i:]
        elif kind == "dup-line":
            lines.insert(k, lines[k])
            text = "\n".join(lines)
        elif kind == "drop-line":
            del lines[k]
            text = "\n".join(lines)
        elif kind == "truncate":
            text = text[:i]
        else:
            words = lines[k].split(" ")
            a = draw(st.integers(0, len(words) - 1))
            if kind == "swap-words":
                b = draw(st.integers(0, len(words) - 1))
                words[a], words[b] = words[b], words[a]
            else:
                words[a] = draw(st.sampled_from(VOCAB))
            lines[k] = " ".join(words)
            text = "\n".join(lines)
    return text, fam


def _parse(text: str, family: Family, **kw: object) -> None:
    try:
        result = parse_restore(text, family=family, filename="<fuzz>", **kw)
    except RestoreError as e:
        assert e.line is None or e.line >= 0
        assert str(e)
        return
    assert isinstance(result, Ruleset)


FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(text=token_soup(), family=st.sampled_from([Family.IPV4, Family.IPV6]),
       noflush=st.booleans(), counters=st.booleans())
def test_token_soup_only_clean_errors(text: str, family: Family, noflush: bool,
                                      counters: bool) -> None:
    _parse(text, family, noflush=noflush, counters=counters)


@FUZZ
@given(seed=mutated_ruleset(), noflush=st.booleans(), counters=st.booleans())
def test_mutated_real_rulesets_only_clean_errors(seed: tuple[str, Family], noflush: bool,
                                                 counters: bool) -> None:
    text, family = seed
    _parse(text, family, noflush=noflush, counters=counters)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.binary(max_size=2000))
def test_binary_garbage_only_clean_errors(data: bytes) -> None:
    _parse(data.decode("utf-8", "surrogateescape"), Family.IPV4)


@FUZZ
@given(seed=mutated_ruleset(), base=st.sampled_from(range(len(SEEDS))))
def test_noflush_onto_a_loaded_ruleset_only_clean_errors(seed: tuple[str, Family],
                                                         base: int) -> None:
    """The pipeline parses --noflush input on top of the loaded ruleset: fuzz that too."""
    text, family = seed
    base_text, base_family = SEEDS[base]
    if base_family is not family:
        return
    try:
        loaded = parse_restore(base_text, family=family)
    except RestoreError:
        return
    _parse(text, family, noflush=True, base=loaded)
