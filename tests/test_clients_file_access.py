"""Who may read the clients file: ``client add --group`` makes it readable by the container
image's group (0640), updates keep that, and a service that cannot read it says who needs
access. (The container run itself: tests/test_image.py.)"""

from __future__ import annotations

import contextlib
import grp
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import cli
from service.clients_file import ClientsError, add_client, load

IMAGE_GID = 10001
NOBODY = 65534


def _group_we_may_give() -> int:
    """Root may give any group; anyone else only one of their own."""
    return IMAGE_GID if os.geteuid() == 0 else os.getgid()


def _add(path: Path, *extra: str) -> int:
    args = ["client", "add", "--id", "gateway", "--permissions", "introspect", "--apps", "*"]
    return cli.main([*args, "--file", str(path), *extra])


def test_group_option_makes_the_file_group_readable(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    gid = _group_we_may_give()
    assert _add(path, "--group", str(gid)) == 0
    st = path.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, gid)
    assert [c.id for c in load(path)] == ["gateway"]


def test_an_update_keeps_the_group_and_its_read_access(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    gid = _group_we_may_give()
    add_client(path, "gateway", ["introspect"], ["*"], group=gid)
    add_client(path, "backoffice", ["admin"], ["*"])  # no --group: keep what the file has
    st = path.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, gid)
    assert [c.id for c in load(path)] == ["gateway", "backoffice"]


def test_without_a_group_a_new_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    add_client(path, "gateway", ["introspect"], ["*"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_group_name_is_resolved(tmp_path: Path) -> None:

    name = grp.getgrgid(os.getgid()).gr_name
    path = tmp_path / "clients.json"
    assert _add(path, "--group", name) == 0
    assert path.stat().st_gid == os.getgid()


def test_an_unknown_group_name_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _add(tmp_path / "clients.json", "--group", "no-such-group-here") == 2
    assert "no such group" in capsys.readouterr().err
    assert not (tmp_path / "clients.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may give a file any group")
def test_a_group_we_may_not_give_says_how(tmp_path: Path) -> None:
    with pytest.raises(ClientsError, match="only root or a member"):
        add_client(tmp_path / "c.json", "gateway", ["introspect"], ["*"], group=NOBODY)


@pytest.fixture
def world_searchable_dir() -> Iterator[Path]:
    """pytest's tmp_path sits in a 0700 directory: another user could not even reach it."""
    with tempfile.TemporaryDirectory() as name:
        os.chmod(name, 0o755)
        yield Path(name)


@contextlib.contextmanager
def acting_as_nobody_if_root() -> Iterator[tuple[int, int]]:
    """Root reads any file: drop to nobody's effective ids for the block (and back)."""
    if os.geteuid() != 0:
        yield os.geteuid(), os.getegid()
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield NOBODY, NOBODY
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_an_unreadable_file_says_which_ids_need_access(world_searchable_dir: Path) -> None:
    path = world_searchable_dir / "clients.json"
    add_client(path, "gateway", ["introspect"], ["*"])  # 0600, ours
    if os.geteuid() != 0:
        path.chmod(0)
    with acting_as_nobody_if_root() as (uid, gid), pytest.raises(ClientsError) as error:
        load(path)
    message = str(error.value)
    assert "Permission denied" in message
    assert f"runs as uid {uid}, gid {gid}" in message
    assert f"--group {gid}" in message and "fsGroup" in message
