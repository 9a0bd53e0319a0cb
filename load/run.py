"""One load run: the profile checked, the target (the local topology started here, or HOST), the accounts, Locust
headless in processes of its own (gevent stays there), the profile's faults switched on at their times, the
generator's CPU watched, then the SLO gate. Reports under reports/<profile>-<timestamp>/."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests
import yaml

from app.settings import environment_without_settings
from load.accounts import make_accounts, read_accounts, write_accounts
from load.profile import Profile
from load.slo import Verdict, judge, read_locust_csv
from simulators.client import SyncSimulatorClient

ROOT = Path(__file__).resolve().parents[1]
LOCAL_PASSWORD = "a load test passphrase"  # noqa: S105 - local accounts only; staging's come with LOAD_PASSWORD
PROVIDERS = ("payments", "catalog", "notify")  # the order of `make run`'s simulator ports


class TargetError(Exception):
    """The service to load cannot be reached or prepared: nothing was sent."""


@dataclass(frozen=True)
class Target:
    url: str
    verify: bool | str
    accounts_file: Path
    password: str
    simulators: dict[str, str]


@dataclass(frozen=True)
class Options:
    host: str | None
    processes: int
    insecure: bool
    accounts: Path | None
    reports: Path


def run(profile: Profile, options: Options) -> Verdict:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = options.reports / f"{profile.name}-{stamp}"
    if options.host is not None:
        target = _remote(profile, options)  # refused before anything is written or sent
        out.mkdir(parents=True)
        verdict = _load(profile, options, target, out)
    else:
        out.mkdir(parents=True)
        with _local(profile, out) as target:
            verdict = _load(profile, options, target, out)
    (out / "verdict.json").write_text(verdict.as_json())
    print(verdict.table())
    print(f"reports: {out}")
    return verdict


def _remote(profile: Profile, options: Options) -> Target:
    url = (options.host or "").rstrip("/")
    verify: bool | str = False if options.insecure else os.environ.get("LOAD_CA_FILE") or True
    _until_healthy(url, verify, deadline=10)
    if options.accounts is None or not options.accounts.is_file():
        raise TargetError(
            "against HOST, the accounts come from `python -m load accounts` run with the deployment's DB_URI and "
            "TOKEN_KEYS: give its file as LOAD_ACCOUNTS"
        )
    password = os.environ.get("LOAD_PASSWORD")
    if not password:
        raise TargetError("against HOST, LOAD_PASSWORD is the accounts' password")
    simulators = {name: address for name in PROVIDERS if (address := os.environ.get(f"SIM_{name.upper()}_URL"))}
    if profile.service:
        print(f"{profile.name} expects the service to run with: {profile.service}")
    return Target(url, verify, options.accounts, password, simulators)


@contextlib.contextmanager
def _local(profile: Profile, out: Path) -> Iterator[Target]:
    """`make run`'s topology on ports of its own: PostgreSQL, the simulators, the worker and the API, with the
    profile's service settings; stopped when the block ends."""
    from app.dev.embedded_postgres import embedded_postgres

    data = ROOT / ".data" / "load"
    port, simulators_base = _free_port(), _free_port_block(len(PROVIDERS))
    keys = "load:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    with embedded_postgres(data / "postgres") as database_uri:
        environment = _clean_environment() | {
            "PROFILE": "dev", "DB_URI": database_uri, "TOKEN_KEYS": keys, "DATA_DIR": str(data),
            "LISTEN_PORT": str(port), "SIMULATOR_BASE_PORT": str(simulators_base), "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING", **profile.service,
        }  # fmt: skip
        with (out / "service.log").open("wb") as log:
            service = subprocess.Popen(
                [sys.executable, "-m", "app", "dev"], env=environment, cwd=out, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                url = f"https://localhost:{port}"
                verify = str(data / "tls" / "localhost.crt")
                _until_healthy(url, verify, deadline=120, process=service)
                _until_catalog_synced(url, verify)
                accounts = make_accounts(  # each simulated user signs in with an account of its own
                    2 * profile.peak_users, profile.totp_share, LOCAL_PASSWORD,
                    {**environment, "PROFILE": "test"}, cwd=out,
                )  # fmt: skip
                accounts_file = out / "accounts.json"
                write_accounts(accounts, accounts_file)
                simulators = {
                    name: f"http://127.0.0.1:{simulators_base + offset}" for offset, name in enumerate(PROVIDERS)
                }
                yield Target(url, verify, accounts_file, LOCAL_PASSWORD, simulators)
            finally:
                service.terminate()
                try:
                    service.wait(60)
                except subprocess.TimeoutExpired:
                    service.kill()
                    service.wait()


def _load(profile: Profile, options: Options, target: Target, out: Path) -> Verdict:
    stats_dir = out / "generator"
    profile_file = out / "profile.yaml"  # the generator runs exactly the profile checked here, wherever it came from
    profile_file.write_text(yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False))
    environment = _clean_environment() | {
        "LOAD_PROFILE": str(profile_file), "LOAD_ACCOUNTS": str(target.accounts_file), "LOAD_PASSWORD": target.password,
        "LOAD_PROCESSES": str(options.processes), "LOAD_STATS_DIR": str(stats_dir),
        **({"LOAD_INSECURE": "1"} if target.verify is False else {}),
        **({"LOAD_CA_FILE": target.verify} if isinstance(target.verify, str) else {}),
    }  # fmt: skip
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "load" / "locustfile.py"), "--headless",
        "--host", target.url, "--csv", str(out / "locust"), "--html", str(out / "locust.html"),
        "--run-time", f"{int(profile.duration) + 30}s", "--stop-timeout", "10", "--only-summary",
        "--exit-code-on-error", "0", "--loglevel", "WARNING",
    ]  # fmt: skip
    if options.processes > 1:
        command += ["--processes", str(options.processes)]
    if not read_accounts(target.accounts_file):
        raise TargetError("there are no accounts to sign in with")
    generator = subprocess.Popen(command, env=environment, cwd=ROOT)  # noqa: S603 - our interpreter and Locust
    stop = threading.Event()
    samples: list[float] = []
    watchers = [
        threading.Thread(target=_watch_cpu, args=(generator.pid, samples, stop), daemon=True),
        threading.Thread(target=_switch_faults, args=(profile, target.simulators, stop), daemon=True),
    ]
    for watcher in watchers:
        watcher.start()
    try:
        generator.wait()
    finally:
        stop.set()
        for watcher in watchers:
            watcher.join(10)
        if generator.poll() is None:
            generator.kill()
    if not Path(f"{out / 'locust'}_stats.csv").is_file():
        raise TargetError(
            f"the generator (Locust) ended with {generator.returncode} and no statistics: nothing to judge"
        )
    started = sum(json.loads(path.read_text())["started"] for path in stats_dir.glob("journeys-*.json"))
    return judge(profile, read_locust_csv(out / "locust", started, samples))


def _watch_cpu(pid: int, samples: list[float], stop: threading.Event) -> None:
    """Each second, the busiest generator process's share of a core (Locust's processes are its children)."""
    root = psutil.Process(pid)
    watched: dict[int, psutil.Process] = {}
    while not stop.wait(1.0):
        with contextlib.suppress(psutil.Error):
            for process in [root, *root.children(recursive=True)]:
                if process.pid not in watched:
                    watched[process.pid] = process
                    process.cpu_percent()  # the first reading only starts the count
        busiest = 0.0
        for process in list(watched.values()):
            try:
                busiest = max(busiest, process.cpu_percent())
            except psutil.Error:
                watched.pop(process.pid, None)
        samples.append(busiest)
    del samples[:2]  # start-up: imports and the first users' sign-ins


def _switch_faults(profile: Profile, simulators: dict[str, str], stop: threading.Event) -> None:
    """Each fault on at its time, for its duration (the simulator drops the rule itself after `ttl_seconds`)."""
    if not profile.faults:
        return
    if missing := sorted({fault.provider for fault in profile.faults} - simulators.keys()):
        print(f"faults on {', '.join(missing)} skipped: no simulator URL (SIM_<PROVIDER>_URL)")
    started = time.monotonic()
    for fault in sorted(profile.faults, key=lambda fault: fault.at):
        if fault.provider not in simulators:
            continue
        if stop.wait(max(0.0, started + fault.at - time.monotonic())):
            return
        client = SyncSimulatorClient(simulators[fault.provider])
        try:
            client.add_fault(**fault.rule, ttl_seconds=fault.duration)
            print(f"{fault.at:g} s: fault on {fault.provider} for {fault.duration:g} s: {fault.rule}")
        finally:
            client.close()


def _until_healthy(
    url: str, verify: bool | str, deadline: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    ends = time.monotonic() + deadline
    last = "no answer"
    while time.monotonic() < ends:
        if process is not None and process.poll() is not None:
            raise TargetError(f"the local topology exited ({process.returncode}): see service.log")
        try:
            answer = requests.get(f"{url}/api/common/ready", timeout=3, verify=verify)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text[:200]}"
        except OSError as error:  # refused, timed out, or the certificate not written yet
            last = str(error)
        time.sleep(0.5)  # another process coming up: nothing to await
    raise TargetError(f"{url} is not ready after {deadline:g} s: {last}")


def _until_catalog_synced(url: str, verify: bool | str) -> None:
    """The worker mirrors the catalog as it starts; until then the catalog answers 503."""
    ends = time.monotonic() + 60
    while time.monotonic() < ends:
        answer = requests.get(f"{url}/api/catalog/items", headers={"X-Client-Id": "load-setup"}, timeout=3,
                              verify=verify)  # fmt: skip
        if answer.status_code == 200:
            return
        time.sleep(0.5)
    raise TargetError("the local topology's catalog was not mirrored within 60 s: see service.log")


def _clean_environment() -> dict[str, str]:
    """This process's environment without the service's settings nor the load test's own (LOAD_*)."""
    return {
        name: value for name, value in environment_without_settings(os.environ).items() if not name.startswith("LOAD_")
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _free_port_block(size: int) -> int:
    """The first of `size` consecutive free ports."""
    for _ in range(50):
        base = secrets.randbelow(20_000) + 20_000
        try:
            with contextlib.ExitStack() as held:
                for port in range(base, base + size):
                    probe = held.enter_context(socket.socket())
                    probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise TargetError("no block of free ports for the simulators")
