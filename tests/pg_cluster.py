"""A throwaway PostgreSQL cluster for the tests, the CI and a developer's shell.

Debian's ``postgresql`` package (installed with apt when missing), ``initdb`` run as the
``postgres`` user when we are root (initdb refuses root), listening only on a Unix
socket in a temporary folder, trust authentication: nothing outside this machine can
reach it, and nothing of it outlives ``stop``.

    python -m tests.pg_cluster start       # prints HEYGEN_TEST_PG_URL=... and its folder
    python -m tests.pg_cluster stop DIR
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: The variable the tests read a server's URL from (set by ``.ci/run`` and ``make pg``).
URL_VARIABLE = "HEYGEN_TEST_PG_URL"
#: Set (to 1) where a PostgreSQL test may not be skipped: CI.
REQUIRE_VARIABLE = "HEYGEN_REQUIRE_PG"
DATABASE = "heygen"


def _bin_dir() -> Path | None:
    """The newest installed server's binaries (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def _major(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


def install() -> Path:
    """The server's binary folder, installing Debian's ``postgresql`` first when missing."""
    found = _bin_dir()
    if found is not None:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
        check=True,
        env=env,
    )
    found = _bin_dir()
    if found is None:
        raise RuntimeError("postgresql was installed but no initdb was found")
    return found


def _as_owner(command: list[str]) -> list[str]:
    """``command`` run as ``postgres`` when we are root: the server refuses to run as root."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def start(folder: Path, *, durable: bool = False) -> str:
    """Make and start a cluster under ``folder``; the URL of its ``heygen`` database.

    Tests run without fsync (a throwaway cluster need not survive a power cut, and the
    tests kill workers, never the server); ``durable`` keeps PostgreSQL's defaults, as the
    benchmarks measure what a user's server does."""
    bin_dir = install()
    folder = folder.resolve()
    data, socket = folder / "data", folder / "socket"
    folder.mkdir(parents=True, exist_ok=True)
    socket.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        # The server runs as postgres: it must reach its folder (mkdtemp makes it 0700).
        folder.chmod(0o755)
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(socket, "postgres", "postgres")
    quiet = {"stdout": subprocess.DEVNULL, "check": True}
    subprocess.run(
        _as_owner(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ]
        ),
        **quiet,  # type: ignore[arg-type]
    )
    options = f"-c listen_addresses='' -c unix_socket_directories={socket} -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run(
        _as_owner(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(folder / "server.log"),
                "-o",
                options,
                "-w",
                "start",
            ]
        ),
        **quiet,  # type: ignore[arg-type]
    )
    subprocess.run(
        [str(bin_dir / "createdb"), "-h", str(socket), "-U", "postgres", DATABASE], check=True
    )
    return f"postgresql://postgres@/{DATABASE}?host={socket}"


def fresh_folder() -> Path:
    """A new folder in the system's temporary folder, which every user can reach."""
    return Path(tempfile.mkdtemp(prefix="heygen-pg-"))


def stop(folder: Path) -> None:
    """Stop the cluster under ``folder`` (fast shutdown) and remove it."""
    bin_dir = _bin_dir()
    data = folder.resolve() / "data"
    if bin_dir is not None and (data / "postmaster.pid").exists():
        subprocess.run(
            _as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            stdout=subprocess.DEVNULL,
            check=False,
        )
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    wanted = {"start": 1, "stop": 2}
    if not argv or wanted.get(argv[0]) != len(argv):
        print("usage: python -m tests.pg_cluster start | stop DIR", file=sys.stderr)
        return 2
    folder = Path(argv[1]) if len(argv) == 2 else fresh_folder()
    if argv[0] == "start":
        print(f"{URL_VARIABLE}={start(folder)}")
        print(f"HEYGEN_TEST_PG_DIR={folder}")
    else:
        stop(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
