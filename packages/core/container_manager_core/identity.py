"""Read a container user the way the engine does, as numbers: the one parser of ``UID`` and ``UID:GID``.

The engine resolves a name (``nobody``) inside the image, where the image's ``/etc/passwd`` decides
the id, so a name is never accepted. A ``UID`` without a group runs in group 0 unless the image says
otherwise, so the group the engine receives is always explicit: :meth:`UserId.engine_user`.
"""

from __future__ import annotations

import re

import attrs

MAX_ID = 2**32 - 2  # (uid_t)-1 means "no id" to the kernel
_USER = re.compile(r"([0-9]+)(?::([0-9]+))?")  # not \d: int() would accept other scripts' digits


class InvalidUser(ValueError):
    """The text is not a numeric ``UID`` or ``UID:GID``."""

    def __init__(self, text: object) -> None:
        self.text = text
        super().__init__(
            f"The user must be a numeric 'UID' or 'UID:GID' (names cannot be verified); got {text!r}."
        )


@attrs.frozen
class UserId:
    """A numeric user and group; ``gid`` is None when the text named no group."""

    uid: int
    gid: int | None = None

    @property
    def effective_gid(self) -> int:
        """Return the group the container runs in: the given one, else a group equal to the UID."""
        return self.uid if self.gid is None else self.gid

    def engine_user(self) -> str:
        """Return the ``UID:GID`` text the engine receives: canonical digits, never an implicit group."""
        return f"{self.uid}:{self.effective_gid}"


def parse_user(text: object) -> UserId:
    """Parse ``UID`` or ``UID:GID`` (ASCII digits, each at most ``MAX_ID``); raise :class:`InvalidUser`."""
    match = _USER.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidUser(text)
    uid, gid = (None if part is None else int(part) for part in match.groups())
    if uid is None or any(part is not None and part > MAX_ID for part in (uid, gid)):
        raise InvalidUser(text)
    return UserId(uid, gid)
