"""``vgkit remote status`` shows the host doctor's verdict: read over a real OpenSSH server on
127.0.0.1 (tests/sshd.py) from ``<remote dir>/doctor.txt``, as ``vgkit remote setup`` and the
Vast on-start waiter leave it (test_remote.py runs the real setup + doctor on that host)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import LoopbackSshd, sshd_unavailable
from vgkit.remote.host import doctor_verdict
from vgkit.remote.vast import DOCTOR_FILE

pytestmark = pytest.mark.skipif(sshd_unavailable() is not None, reason=str(sshd_unavailable()))


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    server = LoopbackSshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


def test_status_shows_the_verdict_and_problem_lines_of_the_hosts_doctor(sshd: LoopbackSshd, tmp_path: Path) -> None:
    target = sshd.target(tmp_path)
    assert doctor_verdict(target) == ["doctor: has not run on this host yet; fix: `vgkit remote setup`"]
    (tmp_path / DOCTOR_FILE).write_text(
        "vgkit doctor\n"
        "  GPU: NVIDIA driver 550.54.15 (supports CUDA 12.4); nvidia-smi shows NVIDIA GeForce RTX 4090, 24564 MiB\n"
        "  torch: 2.13.0 (CUDA 13.0)\n"
        "problem: torch: nvidia-smi shows a GPU, but torch 2.13.0 is built for CUDA 13.0, ...; fix: bash setup.sh\n"
        "  ffmpeg: ffmpeg\n"
        "doctor: 1 problem(s): a run would fail; fix the lines marked 'problem' first\n"
    )
    assert doctor_verdict(target) == [
        "problem: torch: nvidia-smi shows a GPU, but torch 2.13.0 is built for CUDA 13.0, ...; fix: bash setup.sh",
        "doctor: 1 problem(s): a run would fail; fix the lines marked 'problem' first",
    ]
