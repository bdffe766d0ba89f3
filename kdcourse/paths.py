"""Where the course repository is: the one place that knows how to find it.

A kdcourse repository holds ``grading/`` (the nbgrader course) and ``notebooks/assignments/`` (the
assignment sources). Commands run from anywhere inside a checkout; an editable install also finds the
checkout it was installed from.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["RepositoryNotFound", "find_repo_root", "is_repo_root"]


class RepositoryNotFound(RuntimeError):
    """No kdcourse repository above the starting folder, nor beside the installed package."""


def is_repo_root(folder: Path) -> bool:
    """True when ``folder`` holds ``grading/`` and ``notebooks/assignments/``."""
    return (folder / "grading").is_dir() and (folder / "notebooks" / "assignments").is_dir()


def find_repo_root(start: Path | str | None = None) -> Path:
    """The kdcourse repository that contains ``start`` (default: the working directory).

    Parameters
    ----------
    start : path, optional
        Folder to search upwards from. Without it the working directory is used, then the folder
        above the installed ``kdcourse`` package (an editable install).

    Returns
    -------
    Path
        The absolute path of the repository.

    Raises
    ------
    RepositoryNotFound
        Neither ``start`` nor any folder above it, nor the package's parent, is a repository.
    """
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if is_repo_root(candidate):
            return candidate
    package_parent = Path(__file__).resolve().parents[1]
    if is_repo_root(package_parent):
        return package_parent
    raise RepositoryNotFound(
        f"no kdcourse repository found above {here} (looked for grading/ and notebooks/assignments/); "
        "run the command inside a checkout, or pass --root, --sources and --specs explicitly"
    )
