"""One error hierarchy. Tasks catch `BundleError` once (tasks.py) and print its message and
hint instead of a traceback; each class has its own exit code so scripts can tell them apart."""
from __future__ import annotations


class BundleError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class MatrixError(BundleError):
    """matrix.yaml is malformed or inconsistent."""
    exit_code = 2


class UsageError(BundleError):
    """A command was given an argument that does not name anything in the matrix."""
    exit_code = 3


class HostError(BundleError):
    """The host lacks something: Docker daemon, a tool, binfmt, disk space."""
    exit_code = 4


class InputError(BundleError):
    """A build input is missing, stale or cannot be downloaded."""
    exit_code = 5


class HashMismatchError(InputError):
    """A file's sha256 differs from the one pinned in a lock file."""
    exit_code = 6


class BuildError(BundleError):
    """An image build failed."""
    exit_code = 7


class RunError(BundleError):
    """A container could not be started or the training inside it failed."""
    exit_code = 8


class PublishError(BundleError):
    """Publishing stopped or left cells unpublished: the registry failed, or the gate held a cell back."""
    exit_code = 9


class RegistryAuthError(PublishError):
    """The registry wants credentials that were not given, or refused the ones that were."""
    exit_code = 10


class TagConflictError(PublishError):
    """An immutable tag in the registry already names a different image (overwrite with --force)."""
    exit_code = 11


class ReproError(BundleError):
    """Two builds of the same inputs gave different images (or the check could not run)."""
    exit_code = 12
