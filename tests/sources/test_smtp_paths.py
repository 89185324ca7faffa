"""The SMTP listener reads MAIL FROM and RCPT TO paths exactly as aiosmtpd does.

alertd reads the plain `<local@domain>` form with one regular expression
instead of the stdlib's header parser; everything else goes to aiosmtpd. The
address and the rest of the command (the ESMTP parameters) must come out the
same either way, for every shape of path.
"""

from __future__ import annotations

import random

from aiosmtpd.smtp import SMTP

from alertd.sources.smtp import _SmtpSession

SHAPES = [
    "<a@b.c>", "<a@b.c> SIZE=100", " <a@b>", "<a@b>  BODY=8BITMIME", "<a@b.c>\t",
    "<alerts+disk.full@example.net> SIZE=2048 BODY=8BITMIME", "<A.B@EX-1.com>",
    '<"john doe"@example.net>', "<a@[192.0.2.1]>", "<a@b> (comment) SIZE=1", "<a.@b>",
    "<a..b@c>", "<a@b.>", "<>", "", "a@b.c", "<a@b", "<jörg@example.net>", "<a@b> x",
    "<" + "x" * 65 + "@example.net>",
]


def _paths(count: int) -> list[str]:
    """Random paths around the plain form: atom characters, dots, hyphens, and tails
    with parameters, quotes, brackets, comments and whitespace."""
    rng = random.Random(7)
    atom = "aZ09!#$%&'*+/=?^_`{|}~-."
    tail = " \t=SIZEBODY8BITMIME()<>@\"\\[];:,.é"
    out = []
    for _ in range(count):
        local = "".join(rng.choice(atom) for _ in range(rng.randint(1, 8)))
        domain = "".join(rng.choice("ab09-.") for _ in range(rng.randint(1, 8)))
        rest = "".join(rng.choice(tail) for _ in range(rng.randint(0, 10)))
        out.append(rng.choice(["", " ", "\t"]) + f"<{local}@{domain}>" + rest)
    return out


def test_paths_are_read_as_aiosmtpd_reads_them() -> None:
    """Address and parameters agree with aiosmtpd's own reading for every shape, plain or not,
    including the local-part limit (64)."""
    session = _SmtpSession.__new__(_SmtpSession)
    session.local_part_limit = 64
    for path in SHAPES + _paths(20_000):
        assert session._getaddr(path) == SMTP._getaddr(session, path), path
