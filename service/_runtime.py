"""Is this run persistent (a developer's machine) or ephemeral (CI, a container, a one-shot runner)?

The answer decides whether an alias is sent and whether anything is
written (rule R2). Detection only reads: an environment mapping, a
filesystem root, ``sys.prefix`` and whether stdout is a terminal, all
injectable, so every branch is testable without touching the machine.

:func:`runtime_verdict` is the one place it is decided; its
:class:`RuntimeVerdict` carries why, as a stable token
(:data:`RUNTIME_REASONS`), who the token names (a CI vendor from
:data:`CI_PROVIDERS`, a development environment from
:data:`DEV_ENVIRONMENTS`, a one-shot launcher) and the same in words. The
open (:mod:`._stitch`), its report (:mod:`._opening`) and the event
properties (:mod:`._properties`) all take it from there.

A development environment (GitHub Codespaces, a VS Code dev container,
Gitpod) is a container a developer works in for weeks, its home dir kept
across commands and restarts: it counts as persistent, as their laptop
does, so a login there aliases once and the first-run notice shows.
"""

from __future__ import annotations

import os
import sys

from idstitch.events._frozen import Frozen, freeze
from idstitch.events._kinds import RUNTIMES, Runtime

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "CI_PROVIDERS",
    "CI_VARIABLES",
    "DEV_ENVIRONMENTS",
    "RUNTIME_REASONS",
    "SENDER_VARIABLE",
    "Runtime",
    "RuntimeVerdict",
    "detect_runtime",
    "in_container",
    "is_truthy",
    "opened_read_only_reason",
    "opening_runtime",
    "opt_out_variable",
    "opted_out_by",
    "runtime_override",
    "runtime_signal",
    "runtime_verdict",
    "stdout_is_tty",
]


#: The CI vendors, by the variable each one sets: the vendors known to npm's ``ci-info``
#: package, named as it names them. Several variables may name one vendor.
CI_PROVIDERS = {
    "AC_APPCIRCLE": "Appcircle",
    "AGOLA_GIT_REF": "Agola CI",
    "APPCENTER_BUILD_ID": "Visual Studio App Center",
    "APPVEYOR": "AppVeyor",
    "bamboo_planKey": "Bamboo",
    "BITBUCKET_COMMIT": "Bitbucket Pipelines",
    "BITRISE_IO": "Bitrise",
    "BUDDY_WORKSPACE_ID": "Buddy",
    "BUILDER_OUTPUT": "Google Cloud Build",
    "BUILDKITE": "Buildkite",
    "CF_BUILD_ID": "Codefresh",
    "CF_PAGES": "Cloudflare Pages",
    "CI_APP_ID": "Appflow",
    "CI_BUILD_ID": "Appflow",
    "CI_BUILD_NUMBER": "Appflow",
    "CI_XCODE_PROJECT": "Xcode Cloud",
    "CIRCLECI": "CircleCI",
    "CIRRUS_CI": "Cirrus CI",
    "CM_BUILD_ID": "Codemagic",
    "CODEBUILD_BUILD_ARN": "AWS CodeBuild",
    "DRONE": "Drone",
    "DSARI": "dsari",
    "EARTHLY_CI": "Earthly",
    "EAS_BUILD": "Expo Application Services",
    "GERRIT_PROJECT": "Gerrit",
    "GITEA_ACTIONS": "Gitea Actions",
    "GITHUB_ACTIONS": "GitHub Actions",
    "GITLAB_CI": "GitLab CI",
    "GO_PIPELINE_LABEL": "GoCD",
    "HARNESS_BUILD_ID": "Harness CI",
    "HUDSON_URL": "Hudson",
    "JENKINS_URL": "Jenkins",
    "LAYERCI": "LayerCI",
    "MAGNUM": "Magnum CI",
    "NETLIFY": "Netlify CI",
    "NEVERCODE": "Nevercode",
    "NOW_BUILDER": "Vercel",
    "PROW_JOB_ID": "Prow",
    "RELEASE_BUILD_ID": "ReleaseHub",
    "RENDER": "Render",
    "SAILCI": "Sail CI",
    "SCREWDRIVER": "Screwdriver",
    "SEMAPHORE": "Semaphore",
    "SHIPPABLE": "Shippable",
    "STRIDER": "Strider CD",
    "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI": "Azure Pipelines",
    "TASK_ID": "TaskCluster",
    "TDDIUM": "Solano CI",
    "TEAMCITY_VERSION": "TeamCity",
    "TF_BUILD": "Azure Pipelines",
    "TRAVIS": "Travis CI",
    "VELA": "Vela",
    "VERCEL": "Vercel",
    "WORKERS_CI": "Cloudflare Workers",
    "XCS": "Xcode Server",
}

#: Variables that mark a CI run: the generic names, then every vendor's of
#: :data:`CI_PROVIDERS`. Set to anything but ``""``, ``0`` or ``false``, any one of them
#: makes the run ephemeral.
CI_VARIABLES = (
    "CI",
    "BUILD_ID",
    "BUILD_NUMBER",
    "CONTINUOUS_INTEGRATION",
    "RUN_ID",
    "CI_NAME",
    *CI_PROVIDERS,
)

#: Long-lived development environments, by the variable each one sets: a container (or
#: a VM) a developer works in for weeks, with a home dir that survives every command and
#: restart. Set (as a CI variable is), one of them makes a container count as persistent;
#: a CI variable or ``IDSTITCH_RUNTIME`` still wins over it.
DEV_ENVIRONMENTS = {
    "CODESPACES": "GitHub Codespaces",
    "CODESPACE_NAME": "GitHub Codespaces",
    "REMOTE_CONTAINERS": "VS Code Dev Containers",
    "REMOTE_CONTAINERS_IPC": "VS Code Dev Containers",
    "GITPOD_WORKSPACE_ID": "Gitpod",
    "DEVCONTAINER": "Dev Container",
}

#: Why a run has its runtime: the stable tokens of :attr:`RuntimeVerdict.reason` (and of
#: the ``runtime_reason`` event property), in the order they are looked at.
RUNTIME_REASONS = (
    "argument",  # IdentityStitch.open(runtime=...)
    "override",  # IDSTITCH_RUNTIME
    "ci",  # a CI variable (provider: the vendor, when known)
    "dev_container",  # a long-lived development environment (provider: which), persistent
    "container",  # a container that is no development environment
    "one_shot",  # uvx, pipx run, npx (provider: the launcher)
    "first_run_no_tty",  # no state dir yet and stdout is no terminal
    "default",  # none of the above: a developer's machine
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


def _set(env: Mapping[str, str], name: str) -> bool:
    """Whether ``name`` is set to anything but ``""``, ``0`` or ``false`` (any case)."""
    return env.get(name, "").strip().lower() not in _FALSY_CI


def _ci(env: Mapping[str, str]) -> tuple[str, str | None] | None:
    """The CI signal in words and the vendor's name (``None``: a generic variable only);
    ``None`` outside CI. Vendors' variables are looked at first, so that GitHub Actions
    (which sets ``CI`` too) is named."""
    for name, provider in CI_PROVIDERS.items():
        if _set(env, name):
            return f"CI variable {name}", provider
    for name in CI_VARIABLES:
        if _set(env, name):
            return f"CI variable {name}", None
    # Heroku CI sets no variable of its own; ci-info knows it by the node it runs.
    return ("Heroku CI", "Heroku CI") if _HEROKU_NODE in env.get("NODE", "") else None


def _dev_environment(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The development environment's variable and name (:data:`DEV_ENVIRONMENTS`)."""
    for name, provider in DEV_ENVIRONMENTS.items():
        if _set(env, name):
            return name, provider
    return None


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


def _one_shot(env: Mapping[str, str], prefix: str) -> str | None:
    """The one-shot launcher this run's ``prefix`` or ``npm_command`` names, if any."""
    parts = prefix.replace("\\", "/").lower().split("/")
    if "archive-v0" in parts:  # uvx / uv tool run: an environment in uv's cache
        return "uvx"
    # pipx run: ~/.cache/pipx (Linux), ~/Library/Caches/pipx (macOS), ...\pipx\Cache (Windows)
    if {".cache", "cache", "caches"} & set(parts) and "pipx" in parts:
        return "pipx run"
    return "npx" if env.get("npm_command") == "exec" else None  # npx, npm exec


def stdout_is_tty() -> bool:
    """Whether this process's stdout is a terminal (``False`` when it is missing or closed)."""
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except ValueError:  # stdout closed
        return False


class RuntimeVerdict(Frozen):
    """The runtime a run has, and why.

    ``reason``: a stable token of :data:`RUNTIME_REASONS` (``"ci"``, ``"container"``,
    ...), for programs and the ``runtime_reason`` event property. ``provider``: who the
    reason names, when known: the CI vendor (``"GitHub Actions"``), the development
    environment (``"GitHub Codespaces"``) or the one-shot launcher (``"uvx"``); else
    ``None``. ``signal``: the same in words for people, naming the variable
    (``"CI variable GITHUB_ACTIONS"``, ``"a container"``, ``"no signal"``, ...).
    Never holds an environment variable's value, a path or a name of the machine.
    """

    __slots__ = ("provider", "reason", "runtime", "signal")
    runtime: Runtime
    reason: str
    provider: str | None
    signal: str

    def __init__(
        self, runtime: Runtime, reason: str, signal: str, provider: str | None = None
    ) -> None:
        freeze(self, locals())


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
    mount table naming docker, containerd, kubepods or podman) that is no
    long-lived development environment (see :data:`DEV_ENVIRONMENTS`); a
    one-shot runner (``prefix`` inside uv's ``archive-v0`` cache or a pipx
    cache, or ``npm_command=exec``); or a first run (``has_state`` false)
    whose stdout is not a terminal. ``env`` defaults to ``os.environ``,
    ``root`` is the filesystem root to look under, ``is_tty`` defaults to
    ``sys.stdout.isatty()`` and ``prefix`` to ``sys.prefix``.
    """
    return runtime_verdict(
        env=env, root=root, is_tty=is_tty, has_state=has_state, prefix=prefix
    ).runtime


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
    verdict = runtime_verdict(env=env, root=root, is_tty=is_tty, has_state=has_state, prefix=prefix)
    return verdict.runtime, verdict.signal


def runtime_verdict(
    *,
    env: Mapping[str, str] | None = None,
    root: str = "/",
    is_tty: bool | None = None,
    has_state: bool = True,
    prefix: str | None = None,
) -> RuntimeVerdict:
    """:func:`detect_runtime`'s answer with its reason, provider and signal: the one place
    the runtime is decided. In order: ``IDSTITCH_RUNTIME``; a CI variable; a development
    environment (persistent: it skips the container check); a container; a one-shot
    runner; a first run without a terminal; else persistent (``"default"``)."""
    env = os.environ if env is None else env
    override = runtime_override(env)
    if override is not None:
        return RuntimeVerdict(override, "override", "IDSTITCH_RUNTIME")
    ci = _ci(env)
    if ci is not None:
        return RuntimeVerdict(Runtime.EPHEMERAL, "ci", *ci)
    dev = _dev_environment(env)
    if dev is None and in_container(root):
        return RuntimeVerdict(Runtime.EPHEMERAL, "container", "a container")
    launcher = _one_shot(env, sys.prefix if prefix is None else prefix)
    if launcher is not None:
        return RuntimeVerdict(Runtime.EPHEMERAL, "one_shot", "a one-shot runner", launcher)
    if not has_state and not (stdout_is_tty() if is_tty is None else is_tty):
        return RuntimeVerdict(
            Runtime.EPHEMERAL, "first_run_no_tty", "a first run without a terminal"
        )
    if dev is not None:
        variable, provider = dev
        return RuntimeVerdict(
            Runtime.PERSISTENT,
            "dev_container",
            f"development environment variable {variable}",
            provider,
        )
    return RuntimeVerdict(Runtime.PERSISTENT, "default", "no signal")


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
) -> RuntimeVerdict:
    """The runtime :meth:`IdentityStitch.open` runs in, and why: ``runtime`` when given
    (reason ``"argument"``), else ``IDSTITCH_RUNTIME``, else detection (``has_state`` is
    asked only then: whether the state dir holds a log or a snapshot)."""
    if runtime is not None:
        return RuntimeVerdict(Runtime(runtime), "argument", "argument")
    override = runtime_override(env)
    if override is not None:
        return RuntimeVerdict(override, "override", "IDSTITCH_RUNTIME")
    return runtime_verdict(env=env, root=root, is_tty=is_tty, has_state=has_state())


def opened_read_only_reason(*, opted_out: bool, runtime: Runtime) -> str:
    """Why an open reads the state dir but writes nothing: ``"opted out"``, or the runtime
    (``"ephemeral runtime"``); the ``storage_reason`` of such a run."""
    return "opted out" if opted_out else f"{runtime} runtime"
