"""The one error the frontend raises: a refused line, located like iptables-restore does."""

from __future__ import annotations


class RestoreError(Exception):
    """Input refused; ``line`` is 1-based (0 when not tied to a line).

    ``str()`` reads like iptables-restore: ``<file>: line N failed: <message>``
    (the CLI prints ``iptables-restore: line N failed`` plus the reason).
    """

    def __init__(self, message: str, *, file: str = "<stdin>", line: int = 0, text: str = "",
                 kind: str = "param"):
        super().__init__(message)
        # "param": refused while parsing (iptables: "v1.8.9: why / Error occurred at line");
        # "failed": the table refused the command or the COMMIT ("line N failed");
        # "commit": input ended inside a table ("COMMIT expected at line N").
        self.kind = kind
        # The ruleset as of the last successful COMMIT before the error (set by
        # parse_restore): iptables-restore keeps earlier tables committed.
        self.committed: object | None = None
        self.message = message
        self.file = file
        self.line = line
        self.text = text

    def __str__(self) -> str:
        where = f"{self.file}: line {self.line} failed" if self.line else self.file
        return f"{where}: {self.message}"
