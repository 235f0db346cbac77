"""PostgreSQL's own limit on this machine: ``pgbench`` TPC-B (``-c 8 -j 2 -M prepared``).

The scratch database is initialised once (``pgbench -i -s SCALE``) and every run is a timed
``pgbench -T`` against it, logging each transaction (``-l``) so that p50/p99 come from the
same samples as everywhere else. A run is verified: pgbench reports no failed transaction,
and ``pgbench_history`` (which pgbench empties before a run) holds exactly the transactions
it reports (TPC-B appends one row each).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path

import psycopg

from paywarden.bench.databases import scratch_postgres
from paywarden.bench.model import Outcome, Run, check

__all__ = ["CLIENTS", "THREADS", "Pgbench", "find_pgbench"]

CLIENTS = 8
THREADS = 2
_CANDIDATES = ("/usr/lib/postgresql/{v}/bin/pgbench",)
_VERSIONS = range(18, 11, -1)


def find_pgbench() -> str | None:
    """The ``pgbench`` binary: on PATH, or where Debian puts it (not on PATH)."""
    found = shutil.which("pgbench")
    if found:
        return found
    for version in _VERSIONS:
        path = Path(_CANDIDATES[0].format(v=version))
        if path.is_file():
            return str(path)
    return None


class Pgbench:
    """One scratch database initialised on first use, for all rounds; :meth:`close` drops it."""

    def __init__(self, binary: str, server_url: str, scale: int, scratch: Path) -> None:
        self.binary = binary
        self.server_url = server_url
        self.scale = scale
        self.scratch = scratch
        self._stack = ExitStack()
        self._url: str | None = None
        self._runs = 0

    def _database(self) -> str:
        if self._url is None:
            url = self._stack.enter_context(scratch_postgres(self.server_url))
            self._pgbench(["-i", "-q", "-s", str(self.scale), url])
            self._url = url
        return self._url

    def _pgbench(self, args: list[str]) -> str:
        done = subprocess.run(  # noqa: S603 -- the pgbench binary and our own arguments
            [self.binary, *args],
            capture_output=True,
            text=True,
            cwd=self.scratch,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr[-1000:]}")
        return done.stdout + done.stderr

    def _history(self, url: str) -> int:
        with psycopg.connect(url) as connection:
            row = connection.execute("SELECT count(*) FROM pgbench_history").fetchone()
        return 0 if row is None else int(row[0])

    def measure(self, duration_s: float) -> Outcome:
        url = self._database()
        self._runs += 1
        prefix = f"pgbench-{self._runs}"
        output = self._pgbench(
            [
                "-c",
                str(CLIENTS),
                "-j",
                str(THREADS),
                "-M",
                "prepared",
                "-T",
                str(max(1, round(duration_s))),
                "-l",
                "--log-prefix",
                prefix,
                url,
            ]
        )
        processed = _number(r"number of transactions actually processed: (\d+)", output)
        failed = _number(r"number of failed transactions: (\d+)", output, default=0)
        tps = _float(r"tps = ([\d.]+) \(without initial connection time\)", output)
        latencies = []
        for log in self.scratch.glob(f"{prefix}.*"):
            for line in log.read_text().splitlines():
                fields = line.split()
                latencies.append(int(fields[2]) / 1e6)  # microseconds
            log.unlink()
        grown = self._history(url)  # pgbench empties it before each run
        check(failed == 0, f"pgbench reports {failed} failed transactions")
        check(processed > 0, "pgbench processed no transaction")
        check(grown == processed, f"pgbench_history holds {grown} rows, {processed} reported")
        check(len(latencies) == processed, f"{len(latencies)} logged of {processed} transactions")
        return Outcome(
            Run(
                processed,
                processed / tps,  # pgbench's own clock, without connection set-up
                latencies,
                [
                    f"{processed} TPC-B transactions, none failed",
                    f"pgbench_history holds {grown} rows, one per transaction",
                ],
            )
        )

    def close(self) -> None:
        self._stack.close()


def _number(pattern: str, text: str, default: int | None = None) -> int:
    found = re.search(pattern, text)
    if found is None:
        if default is None:
            raise RuntimeError(f"pgbench output without {pattern!r}: {text[-500:]}")
        return default
    return int(found.group(1))


def _float(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"pgbench output without {pattern!r}: {text[-500:]}")
    return float(found.group(1))
