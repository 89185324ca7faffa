"""Where `*_file` secrets are read from: a relative path names a systemd credential.

Under systemd, `LoadCredential=automate:/etc/alertd/credentials/automate`
puts the secret in `$CREDENTIALS_DIRECTORY/automate`, so `password_file:
automate` in alertd.yaml finds it there; outside systemd a relative path
is taken as written (relative to the working directory). One settings file
thereby serves alertd.service, alertd-import.service and the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def credential_path(path: Path, environ: Mapping[str, str]) -> Path:
    """``path``, looked up in `$CREDENTIALS_DIRECTORY` when relative and that is set."""
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and directory:
        return Path(directory) / path
    return path
