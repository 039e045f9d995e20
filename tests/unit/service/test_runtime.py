"""Runtime classification: CI, containers, one-shot runners, first runs, the override (R2, R14).

Every branch of ``detect_runtime`` runs against an injected environment
mapping, a fake filesystem root under ``tmp_path``, an injected terminal
flag, state flag and ``sys.prefix``; nothing reads the real machine (the
test machine itself is a container, so the real ``/`` would say ephemeral).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from idstitch.adapters.runtime import (
    CI_PROVIDERS,
    CI_VARIABLES,
    DEV_ENVIRONMENTS,
    RUNTIME_REASONS,
    Runtime,
    RuntimeVerdict,
    detect_runtime,
    is_truthy,
    runtime_override,
    runtime_verdict,
)
from idstitch.service._runtime import opening_runtime, runtime_signal

#: A ``sys.prefix`` that is no one-shot runner's: a project virtualenv.
PLAIN_PREFIX = "/home/alice/project/.venv"

#: The two runtimes, as the spec names them.
RUNTIMES = ("persistent", "ephemeral")

#: Rule R14's truthy spellings, restated from the spec (not imported).
TRUTHY_WORDS = ("1", "true", "yes", "on")

#: The values that do not by themselves make a CI variable count.
CI_FALSY = ("", "0", "false", "FALSE")

#: The generic names the spec requires, and the vendors every list should know.
REQUIRED_CI_NAMES = frozenset(
    {
        "CI",
        "BUILD_ID",
        "BUILD_NUMBER",
        "CONTINUOUS_INTEGRATION",
        "RUN_ID",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "CIRCLECI",
        "TRAVIS",
        "BUILDKITE",
        "JENKINS_URL",
        "TEAMCITY_VERSION",
        "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
        "CODEBUILD_BUILD_ARN",
        "BITBUCKET_COMMIT",
        "APPVEYOR",
        "DRONE",
        "SEMAPHORE",
        "NETLIFY",
        "NOW_BUILDER",
        "TASK_ID",
    }
)

#: Every variable name the current npm ``ci-info`` (v4) looks at: its generic
#: ``isCI`` names, then one name per vendor (Heroku is matched on the value of
#: ``NODE``, not on a name, so it is not here).
CI_INFO_NAMES = (
    *("BUILD_ID", "BUILD_NUMBER", "CI", "CI_NAME", "CONTINUOUS_INTEGRATION", "RUN_ID"),
    "CI_APP_ID",
    "CI_BUILD_ID",
    "CI_BUILD_NUMBER",
    *("AGOLA_GIT_REF", "AC_APPCIRCLE", "APPVEYOR", "CODEBUILD_BUILD_ARN"),
    "TF_BUILD",
    *("bamboo_planKey", "BITBUCKET_COMMIT", "BITRISE_IO", "BUDDY_WORKSPACE_ID", "BUILDKITE"),
    *("CIRCLECI", "CIRRUS_CI", "CF_PAGES", "WORKERS_CI", "CF_BUILD_ID", "CM_BUILD_ID"),
    *("DRONE", "DSARI", "EARTHLY_CI", "EAS_BUILD", "GERRIT_PROJECT", "GITEA_ACTIONS"),
    *("GITHUB_ACTIONS", "GITLAB_CI", "GO_PIPELINE_LABEL", "BUILDER_OUTPUT", "HARNESS_BUILD_ID"),
    *("HUDSON_URL", "JENKINS_URL", "LAYERCI", "MAGNUM", "NETLIFY", "NEVERCODE", "PROW_JOB_ID"),
    *("RELEASE_BUILD_ID", "RENDER", "SAILCI", "SCREWDRIVER", "SEMAPHORE", "STRIDER", "TASK_ID"),
    *("TEAMCITY_VERSION", "TRAVIS", "VELA", "NOW_BUILDER", "VERCEL", "APPCENTER_BUILD_ID"),
    *("CI_XCODE_PROJECT", "XCS"),
)

CONTAINER_WORDS = ("docker", "containerd", "kubepods", "podman", "libpod")


def any_case(words: Sequence[str]) -> st.SearchStrategy[str]:
    """One of ``words`` with each letter upper- or lower-cased at random."""
    return st.sampled_from(words).flatmap(
        lambda word: st.tuples(*(st.sampled_from((c.lower(), c.upper())) for c in word)).map(
            "".join
        )
    )


def cgroup_line(word: str) -> str:
    """A ``/proc/self/cgroup`` line of a process inside a container that names ``word``."""
    return f"0::/system.slice/{word}-4f1c2a9e0b7d.scope\n"


def mountinfo_line(word: str) -> str:
    """The root-mount line of ``/proc/self/mountinfo`` inside a container that names ``word``."""
    return (
        "1201 1187 0:312 / / rw,relatime master:1 - overlay overlay "
        f"rw,lowerdir=/var/lib/{word}/overlay2/l/QX5Z:/var/lib/{word}/overlay2/l/RT2M\n"
    )


HOST_CGROUP = "0::/user.slice/user-1000.slice/session-2.scope\n"
HOST_MOUNTINFO = (
    "29 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro\n"
    "30 29 0:26 / /home rw,relatime shared:2 - ext4 /dev/nvme0n1p3 rw\n"
)


@dataclass(frozen=True)
class Scene:
    """One run's surroundings: environment, files under the root, ``sys.prefix``, state, TTY."""

    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    prefix: str = PLAIN_PREFIX
    has_state: bool = True
    is_tty: bool = True


QUIET = Scene()

#: Each detection signal on its own, in an otherwise quiet scene.
SIGNALS: dict[str, Scene] = {
    "CI variable": Scene(env={"CI": "true"}),
    "/.dockerenv": Scene(files={".dockerenv": ""}),
    "/run/.containerenv": Scene(files={"run/.containerenv": 'engine="podman-5.0.0"\n'}),
    "cgroup names docker": Scene(files={"proc/self/cgroup": cgroup_line("docker")}),
    "mountinfo names kubepods": Scene(files={"proc/self/mountinfo": mountinfo_line("kubepods")}),
    "uvx": Scene(prefix="/home/alice/.cache/uv/archive-v0/Xy12AbCd34"),
    "pipx run": Scene(prefix="/home/alice/.cache/pipx/0f1e2d3c4b5a6978"),
    "npx": Scene(env={"npm_command": "exec"}),
    "first run without a TTY": Scene(has_state=False, is_tty=False),
}

#: Every signal at once.
LOUD = Scene(
    env={**dict.fromkeys(CI_VARIABLES, "1"), "npm_command": "exec"},
    files={
        ".dockerenv": "",
        "run/.containerenv": "",
        "proc/self/cgroup": "".join(map(cgroup_line, CONTAINER_WORDS)),
        "proc/self/mountinfo": "".join(map(mountinfo_line, CONTAINER_WORDS)),
    },
    prefix="/home/alice/.cache/uv/archive-v0/Xy12AbCd34",
    has_state=False,
    is_tty=False,
)


def build_root(base: Path, files: Mapping[str, str]) -> str:
    """Create ``files`` (path relative to the root → text) under ``base``; return the root."""
    for relative, text in files.items():
        path = base / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(base)


def classify(scene: Scene, base: Path, env: Mapping[str, str] | None = None) -> Runtime:
    """``detect_runtime`` on ``scene`` (files laid out under ``base``), plus ``env`` on top."""
    return detect_runtime(
        env={**scene.env, **(env or {})},
        root=build_root(base, scene.files),
        is_tty=scene.is_tty,
        has_state=scene.has_state,
        prefix=scene.prefix,
    )


@pytest.fixture(scope="module")
def quiet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty filesystem root, shared by the hypothesis tests."""
    return tmp_path_factory.mktemp("quiet-root")


@pytest.fixture(scope="module")
def loud_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A filesystem root with every container marker, shared by the hypothesis tests."""
    base = tmp_path_factory.mktemp("loud-root")
    build_root(base, LOUD.files)
    return base


# --- the Runtime vocabulary --------------------------------------------------------------


def test_runtime_values_are_the_spec_names() -> None:
    """The two runtimes are spelled as the spec (and IDSTITCH_RUNTIME) spells them."""
    assert sorted(RUNTIMES) == sorted(runtime.value for runtime in Runtime)


# --- quiet baseline and each signal ------------------------------------------------------


def test_quiet_scene_is_persistent(tmp_path: Path) -> None:
    """No CI variable, no container file, a plain prefix, existing state: persistent."""
    assert classify(QUIET, tmp_path) == Runtime.PERSISTENT


@pytest.mark.parametrize("signal", list(SIGNALS))
def test_each_signal_alone_is_ephemeral(signal: str, tmp_path: Path) -> None:
    """Any single detection signal makes the run ephemeral."""
    assert classify(SIGNALS[signal], tmp_path) == Runtime.EPHEMERAL


# --- CI variables ------------------------------------------------------------------------


@pytest.mark.parametrize("name", CI_VARIABLES)
def test_ci_variable_set_to_1_is_ephemeral(name: str, tmp_path: Path) -> None:
    """Each name of CI_VARIABLES set to ``1`` makes the run ephemeral."""
    assert classify(Scene(env={name: "1"}), tmp_path) == Runtime.EPHEMERAL


@pytest.mark.parametrize("name", CI_VARIABLES)
def test_ci_variable_set_to_a_false_spelling_is_not_ephemeral(name: str, tmp_path: Path) -> None:
    """Each name of CI_VARIABLES set to ``""``, ``0``, ``false`` or ``FALSE`` is no signal."""
    got = {value: classify(Scene(env={name: value}), tmp_path) for value in CI_FALSY}
    assert got == dict.fromkeys(CI_FALSY, Runtime.PERSISTENT)


def test_ci_variable_with_any_other_value_is_ephemeral(tmp_path: Path) -> None:
    """A CI variable counts whatever its value, unless it is empty, 0 or false."""
    values = ("true", "True", "yes", "woodpecker", "2", "https://ci.example.com/")
    got = {value: classify(Scene(env={"CI": value}), tmp_path) for value in values}
    assert got == dict.fromkeys(values, Runtime.EPHEMERAL)


def test_ci_false_does_not_mask_a_vendor_variable(tmp_path: Path) -> None:
    """``CI=false`` next to ``GITHUB_ACTIONS=true`` is still CI: any one variable counts."""
    scene = Scene(env={"CI": "false", "GITHUB_ACTIONS": "true"})
    assert classify(scene, tmp_path) == Runtime.EPHEMERAL


def test_ci_list_holds_the_required_names() -> None:
    """CI_VARIABLES holds the spec's generic names and the well-known vendors, once each."""
    assert (REQUIRED_CI_NAMES - set(CI_VARIABLES), len(CI_VARIABLES)) == (
        frozenset(),
        len(set(CI_VARIABLES)),
    )


@pytest.mark.parametrize("name", CI_INFO_NAMES)
def test_ci_info_name_alone_is_ephemeral(name: str, tmp_path: Path) -> None:
    """Every variable npm's ci-info looks at marks a CI run here too (the spec's floor)."""
    assert classify(Scene(env={name: "1"}), tmp_path) == Runtime.EPHEMERAL


# --- containers --------------------------------------------------------------------------


@pytest.mark.parametrize("word", CONTAINER_WORDS)
@pytest.mark.parametrize("table", ["proc/self/cgroup", "proc/self/mountinfo"])
def test_cgroup_or_mount_table_naming_a_runtime_is_ephemeral(
    table: str, word: str, tmp_path: Path
) -> None:
    """A cgroup or mount table that names docker, containerd, kubepods or podman is a container."""
    line = cgroup_line(word) if table.endswith("cgroup") else mountinfo_line(word)
    assert classify(Scene(files={table: line}), tmp_path) == Runtime.EPHEMERAL


def test_unrelated_cgroup_and_mount_tables_are_persistent(tmp_path: Path) -> None:
    """A host's cgroup and mount tables, naming no container runtime, are no signal."""
    scene = Scene(files={"proc/self/cgroup": HOST_CGROUP, "proc/self/mountinfo": HOST_MOUNTINFO})
    assert classify(scene, tmp_path) == Runtime.PERSISTENT


def test_unreadable_cgroup_table_is_skipped_not_fatal(tmp_path: Path) -> None:
    """An unreadable cgroup file is skipped: the mount table is still read, nothing raises."""
    mount_tables = {"quiet": HOST_MOUNTINFO, "names docker": mountinfo_line("docker")}
    got = {}
    for name, mountinfo in mount_tables.items():
        base = tmp_path / name
        (base / "proc/self/cgroup").mkdir(parents=True)  # reading a directory is an OSError
        got[name] = classify(Scene(files={"proc/self/mountinfo": mountinfo}), base)
    assert got == {"quiet": Runtime.PERSISTENT, "names docker": Runtime.EPHEMERAL}


def test_docker_host_mount_table_is_not_a_container(tmp_path: Path) -> None:
    """A developer machine that runs a container is not itself inside one."""
    host_running_a_container = HOST_MOUNTINFO + (
        "1021 29 0:120 / /var/lib/docker/overlay2/5d1c0f9a/merged rw,relatime shared:530"
        " - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/ABC,"
        "upperdir=/var/lib/docker/overlay2/5d1c0f9a/diff,"
        "workdir=/var/lib/docker/overlay2/5d1c0f9a/work\n"
        "1105 35 0:4 net:[4026532701] /run/docker/netns/1a2b3c4d5e6f rw shared:541"
        " - nsfs nsfs rw\n"
    )
    scene = Scene(
        files={"proc/self/cgroup": HOST_CGROUP, "proc/self/mountinfo": host_running_a_container}
    )
    assert classify(scene, tmp_path) == Runtime.PERSISTENT


# --- one-shot runners --------------------------------------------------------------------

ONE_SHOT_PREFIXES = (
    "/home/alice/.cache/uv/archive-v0/Xy12AbCd34",  # uvx on Linux and macOS
    r"C:\Users\alice\AppData\Local\uv\cache\archive-v0\Xy12AbCd34",  # uvx on Windows
    "/home/alice/.cache/pipx/0f1e2d3c4b5a6978",  # pipx run, pipx >= 1.3 on Linux
    "/home/alice/.local/pipx/.cache/0f1e2d3c4b5a6978",  # pipx run, older layout
)

INSTALLED_PREFIXES = (
    PLAIN_PREFIX,
    "/usr",
    "/home/alice/.local/share/uv/tools/hostcli",  # uv tool install
    "/home/alice/.local/pipx/venvs/hostcli",  # pipx install
    "/home/alice/.local/share/pipx/venvs/hostcli",  # pipx install, pipx >= 1.3
    "/home/alice/.cache/pypoetry/virtualenvs/hostcli-Ab12Cd34-py3.11",  # a cache, not pipx
    "/home/alice/.cache/pypoetry/virtualenvs/pipx-tools-Ab12Cd34-py3.11",  # named pipx-*
    "/home/alice/archive-v0-notes/.venv",  # archive-v0 must be a whole path part
)


@pytest.mark.parametrize("prefix", ONE_SHOT_PREFIXES)
def test_one_shot_runner_prefix_is_ephemeral(prefix: str, tmp_path: Path) -> None:
    """A ``sys.prefix`` inside uv's archive-v0 cache or pipx's run cache is ephemeral."""
    assert classify(Scene(prefix=prefix), tmp_path) == Runtime.EPHEMERAL


@pytest.mark.parametrize("prefix", INSTALLED_PREFIXES)
def test_installed_prefix_is_persistent(prefix: str, tmp_path: Path) -> None:
    """Installed tools, virtualenvs and unrelated caches are no one-shot runner."""
    assert classify(Scene(prefix=prefix), tmp_path) == Runtime.PERSISTENT


@pytest.mark.parametrize(
    "prefix",
    [
        "/Users/alice/Library/Caches/pipx/0f1e2d3c4b5a6978",
        r"C:\Users\alice\AppData\Local\pipx\pipx\Cache\0f1e2d3c4b5a6978",
    ],
    ids=["macos", "windows"],
)
def test_pipx_run_cache_on_macos_and_windows_is_one_shot(prefix: str, tmp_path: Path) -> None:
    """``pipx run`` is a one-shot runner on every platform, not only where the cache is .cache."""
    assert classify(Scene(prefix=prefix), tmp_path) == Runtime.EPHEMERAL


def test_npm_command_exec_only_is_one_shot(tmp_path: Path) -> None:
    """``npm_command=exec`` (npx, npm exec) is one-shot; other npm commands are not."""
    commands = ("exec", "run-script", "install", "start")
    got = {c: classify(Scene(env={"npm_command": c}), tmp_path) for c in commands}
    assert got == {
        "exec": Runtime.EPHEMERAL,
        "run-script": Runtime.PERSISTENT,
        "install": Runtime.PERSISTENT,
        "start": Runtime.PERSISTENT,
    }


def test_prefix_defaults_to_sys_prefix(tmp_path: Path) -> None:
    """Leaving ``prefix`` out classifies ``sys.prefix``."""
    root = str(tmp_path)
    assert detect_runtime(env={}, root=root, is_tty=True) == detect_runtime(
        env={}, root=root, is_tty=True, prefix=sys.prefix
    )


# --- first run and the terminal ----------------------------------------------------------


@pytest.mark.parametrize(
    ("has_state", "is_tty", "expected"),
    [
        (False, False, Runtime.EPHEMERAL),
        (False, True, Runtime.PERSISTENT),
        (True, False, Runtime.PERSISTENT),
        (True, True, Runtime.PERSISTENT),
    ],
)
def test_first_run_without_a_tty_is_ephemeral(
    has_state: bool, is_tty: bool, expected: Runtime, tmp_path: Path
) -> None:
    """Only a first run (no state yet) whose stdout is not a terminal is ephemeral."""
    assert classify(Scene(has_state=has_state, is_tty=is_tty), tmp_path) == expected


@pytest.mark.usefixtures("capsys")
def test_tty_defaults_to_stdout(tmp_path: Path) -> None:
    """Without ``is_tty`` stdout is asked; captured, it is no terminal: a first run is ephemeral."""
    got = detect_runtime(env={}, root=str(tmp_path), has_state=False, prefix=PLAIN_PREFIX)
    assert got == Runtime.EPHEMERAL


@pytest.mark.parametrize("stdout", ["missing", "closed"])
def test_missing_or_closed_stdout_is_no_tty(
    stdout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first run with ``sys.stdout`` None or closed is ephemeral, and nothing raises."""
    replacement = None
    if stdout == "closed":
        replacement = io.StringIO()
        replacement.close()
    monkeypatch.setattr(sys, "stdout", replacement)
    got = detect_runtime(env={}, root=str(tmp_path), has_state=False, prefix=PLAIN_PREFIX)
    assert got == Runtime.EPHEMERAL


# --- the IDSTITCH_RUNTIME override -------------------------------------------------------


@pytest.mark.parametrize("signal", list(SIGNALS))
def test_persistent_override_beats_each_signal(signal: str, tmp_path: Path) -> None:
    """``IDSTITCH_RUNTIME=persistent`` wins over every single detection signal."""
    got = classify(SIGNALS[signal], tmp_path, {"IDSTITCH_RUNTIME": "persistent"})
    assert got == Runtime.PERSISTENT


@given(word=any_case(RUNTIMES))
def test_override_in_any_case_wins_over_detection(
    word: str, quiet_root: Path, loud_root: Path
) -> None:
    """``IDSTITCH_RUNTIME`` in any case decides, whether every signal fires or none does."""
    override = {"IDSTITCH_RUNTIME": word}
    got = {
        "quiet": detect_runtime(
            env=override, root=str(quiet_root), is_tty=True, has_state=True, prefix=PLAIN_PREFIX
        ),
        "loud": detect_runtime(
            env={**LOUD.env, **override},
            root=str(loud_root),
            is_tty=LOUD.is_tty,
            has_state=LOUD.has_state,
            prefix=LOUD.prefix,
        ),
    }
    expected = Runtime(word.lower())
    assert got == {"quiet": expected, "loud": expected}


UNKNOWN_OVERRIDES = ("", "sometimes", "persist", "ephemeral-ish", "1", "true", "ci")


def test_unknown_override_is_ignored(tmp_path: Path) -> None:
    """An ``IDSTITCH_RUNTIME`` that names no runtime is ignored: detection decides."""
    got = {
        value: (
            runtime_override({"IDSTITCH_RUNTIME": value}),
            classify(QUIET, tmp_path, {"IDSTITCH_RUNTIME": value}),
            classify(SIGNALS["CI variable"], tmp_path, {"IDSTITCH_RUNTIME": value}),
        )
        for value in UNKNOWN_OVERRIDES
    }
    assert got == dict.fromkeys(UNKNOWN_OVERRIDES, (None, Runtime.PERSISTENT, Runtime.EPHEMERAL))


@given(value=st.text().filter(lambda s: s.strip().lower() not in RUNTIMES))
def test_random_override_names_no_runtime(value: str) -> None:
    """Any ``IDSTITCH_RUNTIME`` value other than the two names, in any case, is no override."""
    assert runtime_override({"IDSTITCH_RUNTIME": value}) is None


def test_override_absent_is_none() -> None:
    """Without ``IDSTITCH_RUNTIME`` there is no override."""
    assert runtime_override({}) is None


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaving ``env`` out reads ``os.environ`` (here: its ``IDSTITCH_RUNTIME``)."""
    got = {}
    for value in ("Ephemeral", "persistent"):
        monkeypatch.setenv("IDSTITCH_RUNTIME", value)
        got[value] = detect_runtime(root=str(tmp_path), is_tty=True, prefix=PLAIN_PREFIX)
    assert got == {"Ephemeral": Runtime.EPHEMERAL, "persistent": Runtime.PERSISTENT}


# --- is_truthy (R14's spellings) ---------------------------------------------------------

_PADDING = st.text(alphabet=" \t\r\n", max_size=3)


@given(
    word=any_case(TRUTHY_WORDS),
    before=_PADDING,
    after=_PADDING,
)
def test_truthy_spellings_in_any_case_with_spaces_are_accepted(
    word: str, before: str, after: str
) -> None:
    """``1``, ``true``, ``yes``, ``on`` in any case, with surrounding spaces, are truthy."""
    assert is_truthy(f"{before}{word}{after}") is True


@given(value=st.text().filter(lambda s: s.strip().lower() not in TRUTHY_WORDS))
def test_anything_else_is_refused(value: str) -> None:
    """Every other string is not truthy."""
    assert is_truthy(value) is False


def test_near_misses_and_none_are_refused() -> None:
    """Falsy words, abbreviations, inner spaces and ``None`` are not truthy."""
    values = ("", "0", "false", "no", "off", "2", "y", "t", "enable", "1.0", "o n", "yess")
    got = {value: is_truthy(value) for value in values}
    assert (got, is_truthy(None)) == (dict.fromkeys(values, False), False)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ("/app/.heroku/node/bin/node", Runtime.EPHEMERAL),
        ("/usr/local/bin/node", Runtime.PERSISTENT),
        ("", Runtime.PERSISTENT),
    ],
    ids=["heroku-ci", "other-node", "empty"],
)
def test_heroku_ci_is_known_by_its_node(node: str, expected: Runtime, tmp_path: Path) -> None:
    """ci-info's one entry that is no variable of its own: Heroku CI's NODE path."""
    assert expected == classify(Scene(env={"NODE": node}), tmp_path)


# --- why: the verdict's reason, provider and words ----------------------------------------

#: Each scene's verdict: runtime, reason token, provider, words.
VERDICTS: dict[str, tuple[Scene, RuntimeVerdict]] = {
    "quiet": (QUIET, RuntimeVerdict(Runtime.PERSISTENT, "default", "no signal")),
    "CI variable": (
        SIGNALS["CI variable"],
        RuntimeVerdict(Runtime.EPHEMERAL, "ci", "CI variable CI"),
    ),
    "/.dockerenv": (
        SIGNALS["/.dockerenv"],
        RuntimeVerdict(Runtime.EPHEMERAL, "container", "a container"),
    ),
    "uvx": (
        SIGNALS["uvx"],
        RuntimeVerdict(Runtime.EPHEMERAL, "one_shot", "a one-shot runner", "uvx"),
    ),
    "pipx run": (
        SIGNALS["pipx run"],
        RuntimeVerdict(Runtime.EPHEMERAL, "one_shot", "a one-shot runner", "pipx run"),
    ),
    "npx": (
        SIGNALS["npx"],
        RuntimeVerdict(Runtime.EPHEMERAL, "one_shot", "a one-shot runner", "npx"),
    ),
    "first run without a TTY": (
        SIGNALS["first run without a TTY"],
        RuntimeVerdict(Runtime.EPHEMERAL, "first_run_no_tty", "a first run without a terminal"),
    ),
    "override": (
        Scene(env={"IDSTITCH_RUNTIME": "ephemeral"}),
        RuntimeVerdict(Runtime.EPHEMERAL, "override", "IDSTITCH_RUNTIME"),
    ),
    "every signal, overridden": (
        Scene(
            env={**LOUD.env, "IDSTITCH_RUNTIME": "Persistent"},
            files=LOUD.files,
            prefix=LOUD.prefix,
            has_state=False,
            is_tty=False,
        ),
        RuntimeVerdict(Runtime.PERSISTENT, "override", "IDSTITCH_RUNTIME"),
    ),
}

#: Vendors as their own docs name them, restated (not imported) for the best-known ones.
KNOWN_VENDORS = {
    "GITHUB_ACTIONS": "GitHub Actions",
    "GITLAB_CI": "GitLab CI",
    "CIRCLECI": "CircleCI",
    "TRAVIS": "Travis CI",
    "BUILDKITE": "Buildkite",
    "JENKINS_URL": "Jenkins",
    "TEAMCITY_VERSION": "TeamCity",
    "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI": "Azure Pipelines",
    "CODEBUILD_BUILD_ARN": "AWS CodeBuild",
    "BITBUCKET_COMMIT": "Bitbucket Pipelines",
    "VERCEL": "Vercel",
    "NETLIFY": "Netlify CI",
}

#: The development environments and the variables they set (their docs), restated.
DEV_VARIABLES = {
    "CODESPACES": "GitHub Codespaces",
    "CODESPACE_NAME": "GitHub Codespaces",
    "REMOTE_CONTAINERS": "VS Code Dev Containers",
    "REMOTE_CONTAINERS_IPC": "VS Code Dev Containers",
    "GITPOD_WORKSPACE_ID": "Gitpod",
    "DEVCONTAINER": "Dev Container",
}

#: A container as a development environment runs in (``/.dockerenv``), otherwise quiet.
CONTAINER = {".dockerenv": ""}


def verdict_of(scene: Scene, base: Path) -> RuntimeVerdict:
    """``runtime_verdict`` on ``scene`` (files laid out under ``base``)."""
    return runtime_verdict(
        env=scene.env,
        root=build_root(base, scene.files),
        is_tty=scene.is_tty,
        has_state=scene.has_state,
        prefix=scene.prefix,
    )


@pytest.mark.parametrize("name", list(VERDICTS))
def test_each_scene_has_its_reason_and_provider(name: str, tmp_path: Path) -> None:
    """Each signal's verdict: the runtime, the stable reason token, who it names, the words."""
    scene, expected = VERDICTS[name]
    assert expected == verdict_of(scene, tmp_path)


@pytest.mark.parametrize("name", list(VERDICTS))
def test_runtime_signal_and_detect_runtime_say_what_the_verdict_says(
    name: str, tmp_path: Path
) -> None:
    """runtime_signal's pair and detect_runtime's answer are the verdict's, not a second look."""
    scene, expected = VERDICTS[name]
    args: dict[str, Any] = {
        "env": scene.env,
        "root": build_root(tmp_path, scene.files),
        "is_tty": scene.is_tty,
        "has_state": scene.has_state,
        "prefix": scene.prefix,
    }
    got = (runtime_signal(**args), detect_runtime(**args))
    assert ((expected.runtime, expected.signal), expected.runtime) == got


def test_reasons_are_the_documented_tokens() -> None:
    """The reason vocabulary, in the order detection looks (docs/identity-model.md)."""
    expected = (
        "argument",
        "override",
        *("ci", "dev_container", "container", "one_shot", "first_run_no_tty", "default"),
    )
    assert expected == RUNTIME_REASONS


@pytest.mark.parametrize(("name", "provider"), sorted(CI_PROVIDERS.items()))
def test_a_vendor_is_named_even_beside_the_generic_ci_variable(
    name: str, provider: str, tmp_path: Path
) -> None:
    """A vendor's variable names its provider, also when CI=true is set too (they all set it)."""
    scene = Scene(env={"CI": "true", name: "1"})
    expected = RuntimeVerdict(Runtime.EPHEMERAL, "ci", f"CI variable {name}", provider)
    assert expected == verdict_of(scene, tmp_path)


def test_the_best_known_vendors_have_their_own_names() -> None:
    """GitHub Actions, GitLab CI, CircleCI, ... are spelled as their vendors spell them."""
    assert KNOWN_VENDORS == {name: CI_PROVIDERS[name] for name in KNOWN_VENDORS}


def test_every_ci_info_vendor_variable_names_a_provider() -> None:
    """Each of ci-info's vendor variables has a provider; its generic names have none."""
    generic = {"BUILD_ID", "BUILD_NUMBER", "CI", "CI_NAME", "CONTINUOUS_INTEGRATION", "RUN_ID"}
    expected: tuple[set[str], set[str]] = (set(CI_INFO_NAMES) - generic, set())
    assert expected == (
        set(CI_PROVIDERS) & set(CI_INFO_NAMES),
        set(CI_PROVIDERS) - set(CI_VARIABLES),
    )


def test_heroku_ci_is_named(tmp_path: Path) -> None:
    """Heroku CI, known by its node's path, is its own provider."""
    scene = Scene(env={"NODE": "/app/.heroku/node/bin/node"})
    expected = RuntimeVerdict(Runtime.EPHEMERAL, "ci", "Heroku CI", "Heroku CI")
    assert expected == verdict_of(scene, tmp_path)


@pytest.mark.parametrize(("name", "provider"), sorted(DEV_VARIABLES.items()))
def test_a_development_environment_in_a_container_is_persistent(
    name: str, provider: str, tmp_path: Path
) -> None:
    """Codespaces, VS Code dev containers, Gitpod: a container that lives for weeks with its
    home dir counts as persistent, and says which environment it is."""
    scene = Scene(env={name: "true"}, files=CONTAINER)
    expected = RuntimeVerdict(
        Runtime.PERSISTENT, "dev_container", f"development environment variable {name}", provider
    )
    assert expected == verdict_of(scene, tmp_path)


def test_the_development_environments_are_the_documented_ones() -> None:
    """DEV_ENVIRONMENTS holds the variables those environments' docs list, and no other."""
    assert DEV_VARIABLES == DEV_ENVIRONMENTS


@pytest.mark.parametrize("value", CI_FALSY)
@pytest.mark.parametrize("name", sorted(DEV_VARIABLES))
def test_a_development_variable_set_false_leaves_the_container_ephemeral(
    name: str, value: str, tmp_path: Path
) -> None:
    """A development variable set to "", 0 or false is no signal: the container decides."""
    scene = Scene(env={name: value}, files=CONTAINER)
    assert RuntimeVerdict(Runtime.EPHEMERAL, "container", "a container") == verdict_of(
        scene, tmp_path
    )


#: What wins over a development environment (in a container), and the verdict it gives.
OVER_DEV: dict[str, tuple[Scene, RuntimeVerdict]] = {
    "a CI job in a Codespace": (
        Scene(env={"CODESPACES": "true", "GITHUB_ACTIONS": "true"}, files=CONTAINER),
        RuntimeVerdict(Runtime.EPHEMERAL, "ci", "CI variable GITHUB_ACTIONS", "GitHub Actions"),
    ),
    "IDSTITCH_RUNTIME=ephemeral": (
        Scene(env={"REMOTE_CONTAINERS": "true", "IDSTITCH_RUNTIME": "ephemeral"}, files=CONTAINER),
        RuntimeVerdict(Runtime.EPHEMERAL, "override", "IDSTITCH_RUNTIME"),
    ),
    "uvx in a Gitpod workspace": (
        Scene(
            env={"GITPOD_WORKSPACE_ID": "w-1"},
            files=CONTAINER,
            prefix="/home/gitpod/.cache/uv/archive-v0/Xy12AbCd34",
        ),
        RuntimeVerdict(Runtime.EPHEMERAL, "one_shot", "a one-shot runner", "uvx"),
    ),
    "a first run without a terminal (postCreateCommand)": (
        Scene(env={"CODESPACES": "true"}, files=CONTAINER, has_state=False, is_tty=False),
        RuntimeVerdict(Runtime.EPHEMERAL, "first_run_no_tty", "a first run without a terminal"),
    ),
}


@pytest.mark.parametrize("name", list(OVER_DEV))
def test_what_wins_over_a_development_environment(name: str, tmp_path: Path) -> None:
    """CI, IDSTITCH_RUNTIME, a one-shot launcher and a first run without a terminal still
    decide inside a development environment: it only stops the container check."""
    scene, expected = OVER_DEV[name]
    assert expected == verdict_of(scene, tmp_path)


def test_a_development_environment_outside_a_container_is_still_named(tmp_path: Path) -> None:
    """A development variable on a machine with no container marker: persistent, named."""
    scene = Scene(env={"CODESPACES": "true"})
    expected = RuntimeVerdict(
        Runtime.PERSISTENT,
        "dev_container",
        "development environment variable CODESPACES",
        "GitHub Codespaces",
    )
    assert expected == verdict_of(scene, tmp_path)


def test_the_open_runtime_argument_wins_and_is_the_argument_reason(tmp_path: Path) -> None:
    """open(runtime=...): reason "argument", whatever the environment says; the state dir
    is not looked at."""

    def has_state() -> bool:
        raise AssertionError("has_state asked although the runtime was given")

    got = opening_runtime(
        "persistent", env={"CI": "true", "IDSTITCH_RUNTIME": "ephemeral"}, has_state=has_state
    )
    assert RuntimeVerdict(Runtime.PERSISTENT, "argument", "argument") == got


def test_the_open_override_is_decided_before_the_state_dir_is_looked_at(tmp_path: Path) -> None:
    """IDSTITCH_RUNTIME at open: reason "override", and has_state is never asked."""

    def has_state() -> bool:
        raise AssertionError("has_state asked although IDSTITCH_RUNTIME decides")

    got = opening_runtime(None, env={"IDSTITCH_RUNTIME": "ephemeral"}, has_state=has_state)
    assert RuntimeVerdict(Runtime.EPHEMERAL, "override", "IDSTITCH_RUNTIME") == got


def test_a_verdict_holds_no_value_of_the_environment(tmp_path: Path) -> None:
    """Variables' values (a codespace's name, a CI name, a workspace id) never reach the
    verdict: only variable names and names from the tables do."""
    marker = "mark3r-7f2c"
    scenes = [
        Scene(env={"CI_NAME": marker}),
        Scene(env={"CODESPACE_NAME": marker}, files=CONTAINER),
        Scene(env={"GITPOD_WORKSPACE_ID": marker}),
        Scene(env={"GITHUB_ACTIONS": marker, "CI": marker}),
    ]
    shown = [repr(verdict_of(scene, tmp_path / str(i))) for i, scene in enumerate(scenes)]
    assert [] == [text for text in shown if marker in text]
