"""Where a host's identity lives by default, and whether a state dir can be trusted."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["default_state_dir", "state_folder", "untrusted_reason"]


def default_state_dir(app: str, env: Mapping[str, str]) -> str:
    """The per-user state directory of ``app``, by the platform's conventions.

    The same answer as ``platformdirs.user_state_dir(app)`` (a test holds the
    two together), computed here for Linux and macOS because importing
    platformdirs costs about 20 ms, twice the whole start-up budget (B2);
    other platforms ask platformdirs.

    Raises :class:`ValueError` when the user has no home directory to speak of
    (``HOME`` unset or relative and no password entry): a relative answer would
    put the state under whatever directory the CLI happens to run in.
    """
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        base = env.get("XDG_STATE_HOME", "")
        if not os.path.isabs(base):  # unset, empty or relative: the XDG default
            base = os.path.join(_home(env), ".local", "state")
        return os.path.join(base, app)
    if sys.platform == "darwin":
        return os.path.join(_home(env), "Library", "Application Support", app)
    import platformdirs  # pragma: no cover - not a platform CI runs on

    return platformdirs.user_state_dir(app)  # pragma: no cover


def _home(env: Mapping[str, str]) -> str:
    """``HOME`` when it is absolute, else the user's home from the password database."""
    home = env.get("HOME", "")
    if os.path.isabs(home):
        return home.rstrip("/") or "/"
    try:
        import pwd

        home = pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):  # no password database, or no entry for this uid
        home = ""
    if not os.path.isabs(home):
        raise ValueError(
            f"no home directory for uid {os.getuid()} (HOME is unset or relative and the "
            "password database names none)"
        )
    return home


def untrusted_reason(state_dir: str) -> str | None:
    """Why ``state_dir`` must not be used (owned by someone else, writable by others), if so."""
    try:
        st = os.stat(state_dir, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot inspect it: {exc.strerror or exc}"
    except ValueError:  # no system call takes such a path
        return "its path holds a NUL byte"
    import stat

    if stat.S_ISLNK(st.st_mode):
        return "it is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"it is owned by uid {st.st_uid}, not by this user"
    if st.st_mode & 0o002:
        return f"it is writable by others (mode {st.st_mode & 0o777:o})"
    return None


def state_folder(
    app: str | None, state_dir: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> tuple[str, str | None]:
    """The state dir to use, and why it must not be used (``None``: it may).

    Raises ``TypeError`` when neither ``app`` nor ``state_dir`` is given (a
    programming error of the host, not a fault of the machine).
    """
    from idstitch.events._voice import debug, warn

    if state_dir is None:
        if app is None:
            raise TypeError("IdentityStitch.open needs app= or state_dir=")
        try:
            state_dir = default_state_dir(app, env)
        except ValueError as exc:  # nowhere that lasts: never under the working dir
            debug("idstitch.service", "idstitch: no default state dir: %s", exc)
            return "", str(exc)
    folder = os.fspath(state_dir)
    problem = untrusted_reason(folder)
    if problem is not None:
        warn(
            "idstitch.service",
            "idstitch: not using the state dir %s: %s; this run keeps the identity in memory",
            folder,
            problem,
        )
    return folder, problem
