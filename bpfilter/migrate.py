"""`bpfilter migrate` / `bpfilter rollback`: take over a live iptables ruleset, and give it back.

Why a command of its own: a running host's firewall is not in a file. Migration
reads it with the host's own ``iptables-save -c`` (whatever variant the host's
``iptables`` is: nft or legacy), shows where every rule would run, proves the
translation on throw-away twin namespaces (`bpfilter.verify.differential`), and
only with ``--apply`` swaps it in. The order never leaves a gap: first the BPF
programs are attached (the filter then runs twice, with the same verdicts), then
exactly the tables BPF now runs are emptied in netfilter; tables or chains that
stay in netfilter are re-applied as they were. The live text is kept so that
`rollback` can put netfilter back first and only then remove the BPF programs.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from bpfilter import pipeline
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_ruleset
from bpfilter.ir import Family, Ruleset
from bpfilter.plan import Plan, plan_ruleset
from bpfilter.state import StateStore, family_name


class MigrateError(Exception):
    """Migration refused or failed; says what, and that nothing was changed when so."""


@dataclass
class Migration:
    family: Family
    live_text: str  # iptables-save -c of the host, as read
    ruleset: Ruleset
    plan: Plan
    verified: str | None = None  # the verification report, None when skipped
    mismatches: int = 0


def backup_path(family: Family) -> Path:
    """Where the netfilter ruleset from before `--apply` is kept (per netns and family)."""
    store = StateStore(family)
    return store.state_file.with_name(f"{family_name(family)}.before-migrate.rules")


def read_live(family: Family) -> str:
    """The host's live ruleset with counters, from the iptables-save of its own variant."""
    cmd = pipeline.iptables_save_command(family) + ["-c"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MigrateError(f"read the live ruleset ({' '.join(cmd)}): {proc.stderr.strip()}")
    if "legacy tables present" in proc.stdout + proc.stderr:
        # iptables-nft-save's warning: rules live in both variants; taking one half over
        # would leave the other filtering behind bpfilter's back.
        raise MigrateError("the host has rules in both iptables-nft and iptables-legacy; "
                           "migrate one variant at a time (BPFILTER_IPTABLES_SAVE / "
                           "BPFILTER_IPTABLES_RESTORE name the variant); nothing changed")
    return proc.stdout


def prepare(family: Family, hook: str = "auto", verify: bool = True, frames: int = 500,
            text: str | None = None) -> Migration:
    """Read, parse, plan and (optionally) verify; changes nothing."""
    live = read_live(family) if text is None else text
    ruleset = parse_restore(live, family=family, filename="<live netfilter>", counters=True)
    plan = plan_ruleset(ruleset, hook)
    m = Migration(family, live, ruleset, plan)
    if verify:
        m.verified, m.mismatches = _verify(live, family, hook, frames)
    return m


def _verify(text: str, family: Family, hook: str, frames: int) -> tuple[str, int]:
    """The same packets through iptables-legacy and bpfilter in throw-away twin labs."""
    if family is not Family.IPV4:
        return "verification: skipped (the twin labs are IPv4 only)", 0
    from bpfilter.verify.differential import verify_with_bpfilter

    filter_only = print_ruleset(Ruleset(family, tuple(
        t for t in parse_restore(text, family=family).tables if t.name == "filter")))
    result = verify_with_bpfilter(filter_only, "nf" if hook == "auto" else hook, frames=frames)
    if not result.mismatches:
        return (f"verification: {result.frames} packets, same verdict in iptables-legacy and "
                f"bpfilter ({result.seconds:.1f}s)"), 0
    return "verification FAILED\n" + result.report(), len(result.mismatches)


def apply(m: Migration, ifaces: tuple[str, ...] = (), wait: float | None = None,
          force: bool = False) -> None:
    """Swap the live ruleset into bpfilter and remove from netfilter what BPF now runs."""
    if m.mismatches and not force:
        raise MigrateError(f"verification found {m.mismatches} mismatching packets; nothing "
                           "changed (use --force to migrate anyway)")
    backup = backup_path(m.family)
    if backup.exists():
        raise MigrateError(f"already migrated ({backup} exists); run `bpfilter rollback` first")
    backup.parent.mkdir(parents=True, exist_ok=True)
    tmp = backup.with_suffix(".tmp")
    tmp.write_text(m.live_text)
    tmp.replace(backup)
    try:
        pipeline.restore(pipeline.RestoreRequest(
            m.live_text, m.family, "<live netfilter>", hook=m.plan.flavor, ifaces=ifaces,
            counters=True, wait=wait))
    except BaseException:
        backup.unlink(missing_ok=True)  # nothing changed: nothing to roll back
        raise
    # BPF filters now; empty in netfilter the tables that run wholly in BPF.
    in_nf = {t.name for t in m.plan.netfilter_tables}
    emptied = [pipeline._empty_table(t.name) for t in m.plan.bpf_tables if t.name not in in_nf]
    if emptied:
        text = print_ruleset(Ruleset(m.family, tuple(emptied)))
        proc = subprocess.run(pipeline.iptables_restore_command(m.family), input=text,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise MigrateError(f"remove the migrated tables from netfilter: "
                               f"{proc.stderr.strip()} (BPF filters; netfilter still "
                               "holds them too; `bpfilter rollback` undoes the migration)")


def rollback(family: Family) -> str:
    """Put back the netfilter ruleset from before `migrate --apply`, then remove BPF."""
    backup = backup_path(family)
    if not backup.exists():
        raise MigrateError(f"nothing to roll back: no {backup}")
    text = backup.read_text()
    proc = subprocess.run(pipeline.iptables_restore_command(family) + ["-c"], input=text,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise MigrateError(f"restore the saved netfilter ruleset: {proc.stderr.strip()} "
                           "(nothing changed; bpfilter still filters)")
    removed = pipeline.flush(family, netfilter=False)
    backup.unlink()
    return f"netfilter ruleset restored from {backup.name}; removed {removed} BPF attachments"
