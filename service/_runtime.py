"""Is this run persistent (a developer's machine) or ephemeral (CI, a container, a one-shot runner)?

The answer decides whether an alias is sent and whether anything is
written (rule R2). Detection only reads: an environment mapping, a
filesystem root, ``sys.prefix`` and whether stdout is a terminal, all
injectable, so every branch is testable without touching the machine.
"""

from __future__ import annotations

import os
import sys

from idstitch.events._kinds import RUNTIMES, Runtime

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "CI_VARIABLES",
    "SENDER_VARIABLE",
    "Runtime",
    "detect_runtime",
    "in_container",
    "is_truthy",
    "opened_read_only_reason",
    "opening_runtime",
    "opt_out_variable",
    "opted_out_by",
    "runtime_override",
    "runtime_signal",
]


#: Variables that mark a CI run: the vendors known to npm's ``ci-info``
#: package, plus the generic names. Set to anything but ``""``, ``0`` or
#: ``false``, any one of them makes the run ephemeral.
CI_VARIABLES = (
    # generic
    "CI",
    "BUILD_ID",
    "BUILD_NUMBER",
    "CONTINUOUS_INTEGRATION",
    "RUN_ID",
    # vendors (ci-info)
    "AC_APPCIRCLE",
    "AGOLA_GIT_REF",
    "APPCENTER_BUILD_ID",
    "APPVEYOR",
    "bamboo_planKey",
    "BITBUCKET_COMMIT",
    "BITRISE_IO",
    "BUDDY_WORKSPACE_ID",
    "BUILDER_OUTPUT",
    "BUILDKITE",
    "CF_BUILD_ID",
    "CF_PAGES",
    "CI_APP_ID",
    "CI_BUILD_ID",
    "CI_BUILD_NUMBER",
    "CI_NAME",
    "CI_XCODE_PROJECT",
    "CIRCLECI",
    "CIRRUS_CI",
    "CM_BUILD_ID",
    "CODEBUILD_BUILD_ARN",
    "DRONE",
    "DSARI",
    "EARTHLY_CI",
    "EAS_BUILD",
    "GERRIT_PROJECT",
    "GITEA_ACTIONS",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "GO_PIPELINE_LABEL",
    "HARNESS_BUILD_ID",
    "HUDSON_URL",
    "JENKINS_URL",
    "LAYERCI",
    "MAGNUM",
    "NETLIFY",
    "NEVERCODE",
    "NOW_BUILDER",
    "PROW_JOB_ID",
    "RELEASE_BUILD_ID",
    "RENDER",
    "SAILCI",
    "SCREWDRIVER",
    "SEMAPHORE",
    "SHIPPABLE",
    "STRIDER",
    "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
    "TASK_ID",
    "TDDIUM",
    "TEAMCITY_VERSION",
    "TF_BUILD",
    "TRAVIS",
    "VELA",
    "VERCEL",
    "WORKERS_CI",
    "XCS",
)

#: Set in the detached sender's environment: a process that has it never spools events
#: or starts senders (``idstitch.delivery``).
SENDER_VARIABLE = "IDSTITCH_SENDER"

_HEROKU_NODE = "/app/.heroku/node/bin/node"
_CONTAINER_MARKERS = (".dockerenv", "run/.containerenv")
_CONTAINER_WORDS = (b"docker", b"containerd", b"kubepods", b"podman", b"libpod")
_CGROUP_FILE = "proc/self/cgroup"
_MOUNTINFO_FILE = "proc/self/mountinfo"
_TRUTHY = frozenset({"1", "true", "yes", "on"})
_FALSY_CI = frozenset({"", "0", "false"})


def is_truthy(value: str | None) -> bool:
    """``1``, ``true``, ``yes`` or ``on`` in any case (rule R14's spellings)."""
    return value is not None and value.strip().lower() in _TRUTHY


def runtime_override(env: Mapping[str, str]) -> Runtime | None:
    """The runtime ``IDSTITCH_RUNTIME`` asks for, if it names one."""
    value = env.get("IDSTITCH_RUNTIME", "").strip().lower()
    return Runtime(value) if value in RUNTIMES else None


def _ci_signal(env: Mapping[str, str]) -> str | None:
    """The CI variable that is set, in words; ``None`` outside CI."""
    for name in CI_VARIABLES:
        if env.get(name, "").strip().lower() not in _FALSY_CI:
            return f"CI variable {name}"
    # Heroku CI sets no variable of its own; ci-info knows it by the node it runs.
    return "Heroku CI" if _HEROKU_NODE in env.get("NODE", "") else None


def _read(root: str, name: str) -> bytes:
    try:
        with open(os.path.join(root, name), "rb") as f:
            return f.read(256 * 1024)
    except OSError:
        return b""


def in_container(root: str = "/") -> bool:
    """Whether this process runs in a container, as seen from the filesystem ``root``."""
    if any(os.path.exists(os.path.join(root, marker)) for marker in _CONTAINER_MARKERS):
        return True
    # Only this process's own cgroup path and its root mount count: a host that
    # runs Docker lists /var/lib/docker/... mounts too, and is no container.
    cgroup_paths = [line.split(b":", 2)[-1] for line in _read(root, _CGROUP_FILE).splitlines()]
    root_mounts = [
        line
        for line in _read(root, _MOUNTINFO_FILE).splitlines()
        if len(line.split()) > 4 and line.split()[4] == b"/"
    ]
    return any(word in text for text in (*cgroup_paths, *root_mounts) for word in _CONTAINER_WORDS)


def _one_shot(env: Mapping[str, str], prefix: str) -> bool:
    parts = prefix.replace("\\", "/").lower().split("/")
    if "archive-v0" in parts:  # uvx / uv tool run: an environment in uv's cache
        return True
    # pipx run: ~/.cache/pipx (Linux), ~/Library/Caches/pipx (macOS), ...\pipx\Cache (Windows)
    if {".cache", "cache", "caches"} & set(parts) and "pipx" in parts:
        return True
    return env.get("npm_command") == "exec"  # npx, npm exec


def detect_runtime(
    *,
    env: Mapping[str, str] | None = None,
    root: str = "/",
    is_tty: bool | None = None,
    has_state: bool = True,
    prefix: str | None = None,
) -> Runtime:
    """Classify this run; ``IDSTITCH_RUNTIME=persistent|ephemeral`` wins over detection.

    Ephemeral when any of: a CI variable is set (see :data:`CI_VARIABLES`);
    a container (``/.dockerenv``, ``/run/.containerenv``, or a cgroup or
    mount table naming docker, containerd, kubepods or podman); a one-shot
    runner (``prefix`` inside uv's ``archive-v0`` cache or a pipx cache, or
    ``npm_command=exec``); or a first run (``has_state`` false) whose stdout
    is not a terminal. ``env`` defaults to ``os.environ``, ``root`` is the
    filesystem root to look under, ``is_tty`` defaults to
    ``sys.stdout.isatty()`` and ``prefix`` to ``sys.prefix``.
    """
    return runtime_signal(env=env, root=root, is_tty=is_tty, has_state=has_state, prefix=prefix)[0]


def runtime_signal(
    *,
    env: Mapping[str, str] | None = None,
    root: str = "/",
    is_tty: bool | None = None,
    has_state: bool = True,
    prefix: str | None = None,
) -> tuple[Runtime, str]:
    """:func:`detect_runtime`'s answer and the signal that made it so, in words
    (``"IDSTITCH_RUNTIME"``, ``"CI variable GITHUB_ACTIONS"``, ``"a container"``, ...;
    ``"no signal"`` for the persistent default)."""
    env = os.environ if env is None else env
    override = runtime_override(env)
    if override is not None:
        return override, "IDSTITCH_RUNTIME"
    ci = _ci_signal(env)
    if ci is not None:
        return Runtime.EPHEMERAL, ci
    if in_container(root):
        return Runtime.EPHEMERAL, "a container"
    if _one_shot(env, sys.prefix if prefix is None else prefix):
        return Runtime.EPHEMERAL, "a one-shot runner"
    if not has_state:
        if is_tty is None:
            try:
                is_tty = sys.stdout is not None and sys.stdout.isatty()
            except ValueError:  # stdout closed
                is_tty = False
        if not is_tty:
            return Runtime.EPHEMERAL, "a first run without a terminal"
    return Runtime.PERSISTENT, "no signal"


def opted_out_by(env: Mapping[str, str], opt_out_vars: Iterable[str] = ()) -> bool:
    """Whether ``DO_NOT_TRACK`` or one of the host's ``opt_out_vars`` is set truthy (R14)."""
    return opt_out_variable(env, opt_out_vars) is not None


def opt_out_variable(env: Mapping[str, str], opt_out_vars: Iterable[str] = ()) -> str | None:
    """The first of ``DO_NOT_TRACK`` and the host's ``opt_out_vars`` set truthy, or ``None``."""
    names = ("DO_NOT_TRACK", *opt_out_vars)
    return next((name for name in names if is_truthy(env.get(name))), None)


def opening_runtime(
    runtime: Runtime | str | None,
    *,
    env: Mapping[str, str],
    has_state: Callable[[], bool],
    root: str = "/",
    is_tty: bool | None = None,
) -> tuple[Runtime, str]:
    """The runtime :meth:`IdentityStitch.open` runs in, and the signal that made it so:
    ``runtime`` when given (``"argument"``), else ``IDSTITCH_RUNTIME``, else detection
    (``has_state`` is asked only then: whether the state dir holds a log or a snapshot)."""
    if runtime is not None:
        return Runtime(runtime), "argument"
    override = runtime_override(env)
    if override is not None:
        return override, "IDSTITCH_RUNTIME"
    return runtime_signal(env=env, root=root, is_tty=is_tty, has_state=has_state())


def opened_read_only_reason(*, opted_out: bool, runtime: Runtime) -> str:
    """Why an open reads the state dir but writes nothing: ``"opted out"``, or the runtime
    (``"ephemeral runtime"``); the ``storage_reason`` of such a run."""
    return "opted out" if opted_out else f"{runtime} runtime"
