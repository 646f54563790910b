"""Names and labels: how a job id becomes a Cloud Run job name, and how an execution id is read back.

The execution id this plugin returns is the execution's full resource name
(``projects/P/locations/R/jobs/J/executions/E``): it is what Cloud Run itself calls the execution,
so no lookup table is needed to find it again.
"""

from __future__ import annotations

import hashlib
import re

import attrs

# Cloud Run job names: lowercase letters, digits and '-', starting with a letter, not ending with '-'.
# Executions are named "<job>-<5 characters>" and that name must still fit a 63-character label
# value (run.googleapis.com/execution_name), so job names are kept well under that.
MAX_JOB_NAME_LENGTH = 49
_HASH_LENGTH = 8

MANAGED_BY_LABEL = "managed-by"
MANAGED_BY_VALUE = "container-manager"
# Which manager deployment (database of jobs) owns the job: see HostSpec.owner.
OWNER_LABEL = "cm-owner"
JOB_ID_LABEL = "cm-job-id"
# Labels are lowercased and cut to 63 characters, so the exact job id travels in an annotation.
JOB_ID_ANNOTATION = "container-manager/job-id"

# Cloud Run label rules: keys start with a lowercase letter; keys and values are at most 63
# characters of lowercase letters, digits, '_' and '-'.
MAX_LABEL_LENGTH = 63
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_NOT_LABEL_CHAR = re.compile(r"[^a-z0-9_-]+")
# Cloud Run API v2 rejects labels in its own namespaces.
RESERVED_LABEL_PREFIXES = (
    "run.googleapis.com",
    "cloud.googleapis.com",
    "serving.knative.dev",
    "autoscaling.knative.dev",
)

_EXECUTION_NAME = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/jobs/(?P<job>[^/]+)/executions/(?P<execution>[^/]+)$"
)


def job_name(prefix: str, job_id: str) -> str:
    """Return the Cloud Run job name for ``job_id``: readable, deterministic and collision-proof."""
    # The hash of the exact id keeps two ids apart even when lowercasing and cutting make their
    # readable parts equal.
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:_HASH_LENGTH]
    room = MAX_JOB_NAME_LENGTH - len(prefix) - len(digest) - 2
    slug = re.sub(r"[^a-z0-9]+", "-", job_id.lower()).strip("-")[:room].strip("-")
    return "-".join(part for part in (prefix, slug, digest) if part)


def job_path(location: str, name: str) -> str:
    """Return the full resource name of job ``name`` under ``projects/P/locations/R``."""
    return f"{location}/jobs/{name}"


def label_value(text: str) -> str:
    """Return ``text`` as a valid label value: lowercase, only allowed characters, at most 63 long."""
    return _NOT_LABEL_CHAR.sub("_", text.lower())[:MAX_LABEL_LENGTH]


def is_label_key(key: str) -> bool:
    """Say whether ``key`` is a valid Cloud Run label key outside Google's reserved namespaces."""
    return bool(_LABEL_KEY.match(key)) and not key.startswith(RESERVED_LABEL_PREFIXES)


def is_label_value(value: str) -> bool:
    """Say whether ``value`` is a valid Cloud Run label value."""
    return bool(_LABEL_VALUE.match(value))


def managed_labels(job_id: str, owner: str) -> dict[str, str]:
    """Return the labels that mark a job as this manager deployment's and name its job id."""
    return {
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        OWNER_LABEL: label_value(owner),
        JOB_ID_LABEL: label_value(job_id),
    }


@attrs.frozen
class ExecutionName:
    """The parts of an execution's full resource name."""

    project: str
    region: str
    job: str
    execution: str

    @classmethod
    def parse(cls, name: str) -> ExecutionName | None:
        """Return the parts of ``name``, or None when it is not an execution resource name."""
        match = _EXECUTION_NAME.match(name)
        if match is None:
            return None
        return cls(match["project"], match["region"], match["job"], match["execution"])

    @property
    def job_path(self) -> str:
        """Return the full resource name of the execution's job."""
        return f"projects/{self.project}/locations/{self.region}/jobs/{self.job}"

    def belongs_to(self, region: str, prefix: str) -> bool:
        """Say whether this execution could be this host's: same region and one of our job names."""
        # The project part is not compared: Cloud Run may answer with the project number where the
        # configuration holds the project id.
        return self.region == region and self.job.startswith(prefix + "-")
