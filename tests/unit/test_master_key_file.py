"""The master key file is created once, atomically, even by processes racing to create it."""

from __future__ import annotations

import threading
from pathlib import Path

from paywarden.config import Settings, create_master_key_file, load_master_key


def test_racing_creators_make_exactly_one_complete_key(tmp_path: Path) -> None:
    path = tmp_path / "data" / "master.key"
    barrier = threading.Barrier(16)
    created: list[bool] = []
    keys: list[bytes] = []
    lock = threading.Lock()

    def create_then_read() -> None:
        barrier.wait()
        made = create_master_key_file(path)
        key = load_master_key(Settings(master_key_file=path))  # never a half-written file
        with lock:
            created.append(made)
            keys.append(key)

    threads = [threading.Thread(target=create_then_read) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert created.count(True) == 1
    assert len(keys) == 16 and len(set(keys)) == 1
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temporary left
