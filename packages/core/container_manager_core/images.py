"""Parse container image references the way Docker does, so policy checks see the real registry."""

from __future__ import annotations

import re
from typing import Any

import attrs

DEFAULT_REGISTRY = "docker.io"
OFFICIAL_PREFIX = "library/"
# Other spellings of Docker Hub that name the same registry.
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_NAME_MAX = 255
_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")
# What the engine may read as an image ID, or a prefix of one, before any repository name: it runs
# whatever local image has that ID, from any registry.
_ID_LIKE = re.compile(r"(?:sha256:)?[a-f0-9]+", re.IGNORECASE)


class InvalidImageReference(ValueError):
    """The text is not a valid image reference; ``reason`` says which part is wrong."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"Invalid image reference {text!r}: {reason}")


def _check_registry(_instance: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if not _DOMAIN.fullmatch(value):
        raise ValueError(f"{value!r} is not a registry host.")


def _check_repository(instance: ImageReference, _attribute: attrs.Attribute[Any], value: str) -> None:
    if not _PATH.fullmatch(value):
        raise ValueError(f"{value!r} is not a repository path.")
    # Docker Hub names without a namespace live under library/; anything else would not round-trip.
    if instance.registry == DEFAULT_REGISTRY and "/" not in value:
        raise ValueError(
            f"Docker Hub repository {value!r} needs a namespace, e.g. {OFFICIAL_PREFIX + value!r}."
        )


def _check_tag(_instance: object, _attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not _TAG.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid tag.")


def _check_digest(_instance: object, _attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not _DIGEST.fullmatch(value):
        raise ValueError(f"{value!r} is not a sha256 digest.")


def _canonical_registry(value: str) -> str:
    return DEFAULT_REGISTRY if value.lower() in _HUB_ALIASES else value


@attrs.frozen
class ImageReference:
    """A parsed, canonical image reference: registry, repository, optional tag and digest."""

    registry: str = attrs.field(converter=_canonical_registry, validator=_check_registry)
    repository: str = attrs.field(validator=_check_repository)
    tag: str | None = attrs.field(default=None, validator=_check_tag)
    digest: str | None = attrs.field(default=None, validator=_check_digest)

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse ``text`` with Docker's reference grammar, filling in Docker Hub defaults."""
        if not text:
            raise InvalidImageReference(text, "the reference is empty.")
        if text != text.strip():
            raise InvalidImageReference(text, "the reference has surrounding whitespace.")
        if _IMAGE_ID.fullmatch(text):
            raise InvalidImageReference(text, "a 64-character hex string is an image ID, not a reference.")
        name, _, digest = text.partition("@")
        if "@" in text and not _DIGEST.fullmatch(digest):
            raise InvalidImageReference(
                text, f"the digest {digest!r} must be 'sha256:' followed by 64 lowercase hex digits."
            )
        tag: str | None = None
        last_slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > last_slash:
            name, tag = name[:colon], name[colon + 1 :]
            if not _TAG.fullmatch(tag):
                raise InvalidImageReference(
                    text,
                    f"the tag {tag!r} must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'.",
                )
        if len(name) > _NAME_MAX:
            raise InvalidImageReference(text, f"the name is longer than {_NAME_MAX} characters.")
        registry, repository = _split_domain(text, name)
        return cls(registry, repository, tag, digest or None)

    @property
    def name(self) -> str:
        """Return ``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar(self) -> str:
        """Return the short form a user would write (``python:3.11`` for Docker Hub official images)."""
        name = self.name
        # Drop docker.io/ only when the rest would not be read as a registry host (docker.io/my.org/app).
        if self.registry == DEFAULT_REGISTRY and not _looks_like_domain(self.repository.partition("/")[0]):
            name = self.repository
            rest = name.removeprefix(OFFICIAL_PREFIX)
            if rest != name and "/" not in rest:
                name = rest
        return name + self._suffix()

    def matches_registry(self, allowed_entry: str) -> bool:
        """Say whether this image comes from ``allowed_entry`` (a registry host, optionally with a path prefix).

        A path prefix matches whole path segments only: ``gcr.io/team`` matches ``gcr.io/team/app``,
        never ``gcr.io/teamx/app``. A malformed entry matches nothing, so a typo fails closed.
        """
        host, _, prefix = allowed_entry.strip().rstrip("/").partition("/")
        if not _DOMAIN.fullmatch(host) or (prefix and not _PATH.fullmatch(prefix)):
            return False
        if _canonical_registry(host).lower() != self.registry.lower():
            return False
        return not prefix or self.repository == prefix or self.repository.startswith(prefix + "/")

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return tag + digest

    def __str__(self) -> str:
        return self.name + self._suffix()


def _split_domain(text: str, name: str) -> tuple[str, str]:
    """Split ``name`` into registry and repository with Docker's rule for spotting a registry host."""
    first, slash, rest = name.partition("/")
    if slash and _looks_like_domain(first):
        if not _DOMAIN.fullmatch(first):
            raise InvalidImageReference(text, f"the registry {first!r} is not a valid host[:port].")
        registry, repository = _canonical_registry(first), rest
    else:
        registry, repository = DEFAULT_REGISTRY, name
    if not _PATH.fullmatch(repository):
        raise InvalidImageReference(
            text,
            f"the repository {repository!r} must be lowercase letters and digits in '/'-separated "
            "components joined by '.', '_', '__' or '-'.",
        )
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = OFFICIAL_PREFIX + repository
    return registry, repository


def _looks_like_domain(component: str) -> bool:
    """Say whether Docker reads a first path component as a registry host (its splitDockerDomain rule)."""
    return any(c in component for c in ".:") or component == "localhost" or component != component.lower()


def could_be_image_id(text: str) -> bool:
    """Say whether the engine may read ``text`` as a local image ID (or ID prefix) rather than a name.

    ``abc123`` and ``sha256:<hex>`` parse as Docker Hub names, but the engine falls back to its image
    IDs when no such name is there, so no registry allow-list can vouch for them.
    """
    return _ID_LIKE.fullmatch(text) is not None
